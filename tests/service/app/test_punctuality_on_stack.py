"""Join punctuality on the embedded stack: the simulator's webhooks (or, when they are lost, its
/detail record) give each session its figures, and the EMF line for them is written once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetpilot.app.reconcile import ReconcileConfig, reconcile
from meetpilot.domain.clock import FixedClock, parse_iso
from meetpilot.domain.status import BotStatus
from meetpilot_dev.simulator import Faults
from tests.support.stacks import run_until

MEET = "https://meet.google.com/pun-ctua-lit"
ZOOM = "https://zoom.us/j/85550001111"


def _metric_lines(out: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            blob = json.loads(line)
            if any(m["Name"] == name for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]):
                found.append(blob)
    return found


def _timeline(stack: Any, bot_id: str) -> dict[str, datetime]:
    details = stack.container.provider.bot_detail(bot_id)
    return {key: parse_iso(step["timestamp"]) for key, step in details["StatusTimeline"].items()}


def test_every_figure_comes_from_the_providers_timestamps_and_its_metric_is_written_once(
    stack_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_factory()
    stack.simulator.set_faults(Faults(duplicate_webhook=1.0))  # every webhook twice
    start = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=250_000)
    key = stack.submit_meeting(MEET, start)
    capsys.readouterr()
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.status.rank >= 50, 60)
    session = stack.session_for(key)
    assert session.meeting_start == start  # to the second (and below), not the key's minute
    times = _timeline(stack, session.bot_id)
    lateness = round((times["WaitingRoom"] - start) / timedelta(milliseconds=1))
    wait = round((times["InMeeting"] - times["WaitingRoom"]) / timedelta(milliseconds=1))
    # /detail writes its times to the millisecond, the webhooks to the microsecond.
    assert abs(session.join_lateness_ms - lateness) <= 1 and abs(session.admission_wait_ms - wait) <= 2
    assert session.admission_wait_ms > 0

    out = capsys.readouterr().out
    (late_line,) = _metric_lines(out, "JoinLateness")  # the duplicate bot.in_waiting_room wrote nothing
    (wait_line,) = _metric_lines(out, "AdmissionWait")
    for line in (late_line, wait_line):
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "Platform"]]
        assert line["Platform"] == "Google Meet" and line["service"] == "meetpilot"
    late = session.join_lateness_ms / 1000
    assert late_line["JoinLateness"] == [max(late, 0.0)] and late_line["JoinEarliness"] == [max(-late, 0.0)]
    assert wait_line["AdmissionWait"] == [session.admission_wait_ms / 1000]


def test_figures_are_recovered_from_the_providers_record_when_every_webhook_was_lost(stack: Any) -> None:
    stack.simulator.set_faults(Faults(drop_webhook=1.0))
    start = datetime.now(UTC) + timedelta(seconds=1)
    key = stack.submit_meeting(ZOOM, start)
    stack.drain()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(b["status"] == "Recording" for b in stack.simulator.bots()):
        time.sleep(0.05)
    session = stack.session_for(key)
    assert session.status.rank < BotStatus.IN_WAITING_ROOM.rank and session.join_lateness_ms is None

    c = stack.container
    report = reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=FixedClock(datetime.now(UTC) + timedelta(minutes=40)),
        config=ReconcileConfig(),
    )
    session = stack.session_for(key)
    times = _timeline(stack, session.bot_id)
    # Both figures are whole milliseconds from the start, so the wait is their difference.
    arrived, admitted = (
        round((times[step] - session.meeting_start) / timedelta(milliseconds=1))
        for step in ("WaitingRoom", "InMeeting")
    )
    expected = (arrived, admitted - arrived)
    assert (session.join_lateness_ms, session.admission_wait_ms) == expected
    # One entry per figure decided, each for this meeting: what the reconcile handler publishes.
    assert [(k, p.lateness_ms, p.admission_wait_ms) for k, p in report.punctuality] == [
        (key, expected[0], None),
        (key, None, expected[1]),
    ]
