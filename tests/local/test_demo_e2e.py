"""A small demo through the gateway, pollers and scheduler runner; outcomes read from DynamoDB and S3."""

from __future__ import annotations

import time
from pathlib import Path

from meetpilot.domain.status import Outcome
from meetpilot.local.demo import demo_options, evaluate, plan_meetings, run_demo
from meetpilot.local.stack import LocalStack


def test_small_demo_reaches_every_planned_outcome_through_schedules_and_pollers():
    with LocalStack(demo_options()) as stack:
        meetings = plan_meetings(4, stack.clock.now(), first_start=14.0)
        for m in meetings:
            stack.simulator.set_scenario(m.url, m.scenario)
            stack.submit_meeting(m.url, m.start, title=m.title, user_id=m.user_id)
        # Every meeting starts beyond the lead time, so each dispatch goes through a schedule.
        scheduler = stack.container.client("scheduler")
        group = stack.container.settings.schedule_group
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(scheduler.list_schedules(GroupName=group)["Schedules"]) < 4:
            time.sleep(0.1)
        assert len(scheduler.list_schedules(GroupName=group)["Schedules"]) == 4
        assert stack.simulator.create_calls == 0

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sessions = [stack.session_for(m.key) for m in meetings]
            if all(s is not None and s.outcome is not None for s in sessions):
                break
            time.sleep(0.2)

        report = evaluate(stack, meetings)
        assert report.ok, report.mismatches
        assert report.bots == 4 and report.stored == 1 and report.lost == 0
        outcomes = {m.scenario.value: stack.session_for(m.key).outcome for m in meetings}
        assert outcomes == {
            "not_admitted": Outcome.NOT_ADMITTED,
            "denied": Outcome.DENIED,
            "transcription_failed": Outcome.TRANSCRIPTION_FAILED,
            "long_transcript": Outcome.TRANSCRIPT_STORED,
        }
        # the schedules fired and, being ActionAfterCompletion=DELETE, are gone
        assert stack.scheduler_runner.fired >= 4
        assert scheduler.list_schedules(GroupName=group)["Schedules"] == []
        long_session = stack.session_for(meetings[3].key)
        s3 = stack.container.client("s3")
        head = s3.head_object(
            Bucket=stack.container.settings.transcript_bucket, Key=long_session.transcript["keys"]["json"]
        )
        assert head["ContentLength"] > 1_000_000
        assert stack.handler_errors == []


def test_demo_writes_transcripts_and_a_summary_line(tmp_path: Path):
    report = run_demo(6, timeout=60, out_dir=tmp_path, live=False, first_start=6.0)
    assert report.ok, report.mismatches
    # Six ad-hoc meetings (one on two calendars) and five calendar events: one meeting shared by
    # two users, a series' moved instance, a moved meeting, a Teams link in a description. The
    # cancelled meeting and the moved meeting's old time get no bot (report.ok checks it).
    assert report.summary_line() == (
        "demo: 11 meetings (5 from calendars), 9 bots, 6 transcripts stored, 3 flagged "
        "(not admitted 1, denied 1, transcription failed 1), 0 lost"
    )
    files = sorted(p.suffix for p in (tmp_path / "transcripts").iterdir())
    assert files == [".json"] * 6 + [".txt"] * 6 + [".vtt"] * 6


def test_demo_without_calendars_runs_only_the_ad_hoc_meetings(tmp_path: Path):
    report = run_demo(6, timeout=60, out_dir=tmp_path, live=False, first_start=6.0, calendars=False)
    assert report.ok, report.mismatches
    assert report.summary_line() == (
        "demo: 6 meetings, 5 bots, 2 transcripts stored, 3 flagged "
        "(not admitted 1, denied 1, transcription failed 1), 0 lost"
    )
