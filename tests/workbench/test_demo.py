"""A small demo through the gateway, pollers and scheduler runner; outcomes read from DynamoDB and S3.

The runs wait for progress, not for a wall-clock budget: each gives up only after a minute in which
nothing moved, so a slow or busy machine makes them slower, not red. The calendar runs connect four
calendars through the management API (two ICS feeds, Google and Microsoft 365 at the local fakes).
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from meetpilot.domain.status import Outcome
from meetpilot_dev.cli import app
from meetpilot_dev.demo import (
    DemoReport,
    ProgressWatch,
    demo_options,
    evaluate,
    follow,
    plan_meetings,
    run_demo,
)
from meetpilot_dev.stack.embedded import LocalStack, StackOptions

PATIENCE = 60.0
# What the demo prints after its summary line about the calendars, as the management API shows them.
CONNECTED = "calendars: 4 connected (google 1, microsoft 1, ics 2)"
SHARED = 'shared: "Quarterly planning" on 4 calendars (alice ics, bob ics, carol google, dave microsoft), 1 bot ('
SKIPPED = 'skipped: "Design 1:1" [dave, microsoft] rule only-external: all attendees at contoso.demo'


def _microsoft_line(lines: list[str]) -> str:
    (line,) = [line for line in lines if line.startswith("  dave (microsoft): ")]
    return line


def test_small_demo_reaches_every_planned_outcome_through_schedules_and_pollers():
    with LocalStack(demo_options()) as stack:
        meetings = plan_meetings(4, stack.clock.now(), first_start=14.0)
        for m in meetings:
            stack.simulator.set_scenario(m.url, m.scenario)
            stack.submit_meeting(m.url, m.start, title=m.title, user_id=m.user_id)
        # Every meeting starts beyond the lead time, so each dispatch goes through a schedule.
        scheduler = stack.container.client("scheduler")
        group = stack.container.settings.schedule_group

        def schedules() -> int:
            return len(scheduler.list_schedules(GroupName=group)["Schedules"])

        watch = ProgressWatch(PATIENCE)
        while schedules() < 4 and watch.moving((schedules(), tuple(stack.queue_counts().items()))):
            time.sleep(0.1)
        assert schedules() == 4
        assert stack.simulator.create_calls == 0

        follow(stack, meetings, PATIENCE)

        report = evaluate(stack, meetings)
        assert report.ok, report.mismatches + report.in_flight
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


def test_demo_writes_transcripts_and_a_summary_line(tmp_path: Path, capfd):
    screen = io.StringIO()  # not a terminal: one line per meeting, no live table
    report = run_demo(6, patience=PATIENCE, out_dir=tmp_path, console=Console(file=screen), first_start=6.0)
    assert report.ok, report.mismatches + report.in_flight
    # Six ad-hoc meetings (one on two calendars) and seven calendar events: one meeting on all four
    # calendars (ICS, ICS, Google, Microsoft), a series' moved instance, a moved meeting, a Teams link
    # in a description. The cancelled meeting, the moved meeting's old time and the meeting dave's
    # rule skips get no bot (report.ok checks it).
    assert report.summary_line() == (
        "demo: 13 meetings (7 from calendars), 9 bots, 6 transcripts stored, 3 flagged "
        "(not admitted 1, denied 1, transcription failed 1), 0 lost"
    )
    files = sorted(p.suffix for p in (tmp_path / "transcripts").iterdir())
    assert files == [".json"] * 6 + [".txt"] * 6 + [".vtt"] * 6

    # The calendars as the API lists them: the Microsoft one connected and synced, with its rule;
    # the shared meeting's one bot; the skipped meeting and the reason its decision gives.
    lines = screen.getvalue().splitlines()
    calendars = report.calendar_lines
    assert calendars[0] == CONNECTED, calendars
    assert ": connected, synced " in _microsoft_line(calendars) and "rule only-external" in _microsoft_line(calendars)
    planning = {line.rsplit("(bot ", 1)[1].rstrip(")") for line in lines if line.startswith("Quarterly planning [")}
    assert len(planning) == 1, lines  # alice's, bob's, carol's and dave's copies: the same bot
    assert [line for line in calendars if line.startswith("shared: ")] == [SHARED + planning.pop() + ")"]
    assert SKIPPED in calendars
    assert json.loads((tmp_path / "summary.json").read_text())["calendars"] == calendars

    # 13 meetings recorded, 3 without a bot (cancelled, moved away, skipped by a rule), 1 scheduled
    # beyond the run.
    assert len(lines) == 17, lines
    assert "Design review: denied" in "\n".join(lines)
    assert "Design 1:1 [dave]: skipped by a rule, no bot" in lines
    assert sum("transcript stored" in line for line in lines) == 10  # two meetings are on several calendars
    assert not [line for line in lines if line.lstrip().startswith("{")]
    # Nothing reached the process's own stdout or stderr either: the functions wrote to the log.
    out, err = capfd.readouterr()
    assert '"_aws"' not in out + err and '"level"' not in out + err
    log = report.log_path.read_text().splitlines()
    metric_lines = [json.loads(line) for line in log if line.startswith('{"_aws"')]
    assert metric_lines and all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "meetpilot" for m in metric_lines)
    # Join punctuality: at most one lateness line per bot (9), each with the Platform dimension set.
    joined = [m for m in metric_lines if "JoinLateness" in m]
    assert 1 <= len(joined) <= 9, len(joined)
    for line in joined:
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "Platform"]]
        assert line["Platform"] in ("Google Meet", "Zoom", "Teams", "Webex", "Other")
        assert line["JoinLateness"][0] >= 0 and line["JoinEarliness"][0] >= 0
    assert len([m for m in metric_lines if "AdmissionWait" in m]) <= len(joined)


def test_demo_command_on_a_terminal_draws_the_table_then_a_summary_line_of_its_own(tmp_path: Path):
    result = CliRunner().invoke(
        app,
        ["demo", "--meetings", "6", "--no-calendars", "--patience", str(PATIENCE), "--out", str(tmp_path)],
        env={"FORCE_COLOR": "1", "COLUMNS": "100"},  # rich draws the live table, as on a terminal
    )
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stdout
    assert "meetpilot demo" in result.stdout and "┏━" in result.stdout  # the live table's title and frame
    summaries = [line for line in lines if line.startswith("demo:")]
    assert summaries == [
        "demo: 6 meetings, 5 bots, 2 transcripts stored, 3 flagged (not admitted 1, denied 1, transcription failed 1), "
        "0 lost"
    ]
    assert not [line for line in lines if line.startswith(("calendars:", "shared:", "skipped:"))]
    assert f"log: {(tmp_path / 'demo.log').resolve()}" in lines
    assert '"_aws"' not in result.stdout and '"level"' not in result.stdout
    assert '"_aws"' in (tmp_path / "demo.log").read_text()


def test_a_meeting_a_queue_still_holds_is_in_flight_and_only_one_nothing_holds_is_lost():
    with LocalStack(StackOptions(background_pollers=False)) as stack:
        meetings = plan_meetings(1, stack.clock.now(), first_start=30.0)
        stack.submit_meeting(meetings[0].url, meetings[0].start, title=meetings[0].title)

        waiting = evaluate(stack, meetings)  # the submit waits in the dispatch queue
        assert waiting.lost == 0 and not waiting.ok
        assert waiting.in_flight == ["Weekly sync: submitted, no meeting stored; in dispatch queue: 1 waiting"]
        assert waiting.summary_line().endswith(", 1 still in flight, 0 lost")

        stack.container.client("sqs").purge_queue(QueueUrl=stack.feeders["DispatchFunction"].queue_url)
        gone = evaluate(stack, meetings)
        assert gone.lost == 1 and gone.in_flight == []
        assert gone.mismatches[0] == (
            "Weekly sync: lost (submitted, no meeting stored; no queue, schedule or reconciler holds it)"
        )


def test_progress_watch_gives_up_only_after_patience_without_a_change():
    now = [0.0]
    watch = ProgressWatch(60.0, now=lambda: now[0])
    for t, mark in [(0, "a"), (50, "a"), (100, "b"), (159, "b")]:
        now[0] = t
        assert watch.moving(mark), (t, mark)  # a change at 100 s restarts the minute
    now[0] = 160.0
    assert not watch.moving("b")
    assert watch.idle_seconds == 60.0


def test_progress_watch_waits_out_a_queued_retry_up_to_sqs_longest_delay():
    now = [0.0]
    watch = ProgressWatch(60.0, now=lambda: now[0])
    assert watch.moving("a", job_queued=True)
    now[0] = 899.0  # a transcript retry waiting out its delay: nothing changes meanwhile
    assert watch.moving("a", job_queued=True)
    assert not watch.moving("a")  # the queue emptied and nothing moved for a minute
    now[0] = 900.0
    assert not watch.moving("a", job_queued=True)


def test_demo_command_prints_the_calendars_after_the_summary_line(tmp_path: Path, monkeypatch):
    import meetpilot_dev.demo as demo_module

    shown = [CONNECTED, "  dave (microsoft): connected, synced 10:00:00, rule only-external; 2 events, 1 with a bot",
             SHARED + "b0b0b0b0)", SKIPPED]  # fmt: skip
    report = DemoReport(13, 9, 6, Counter(), 0, calendar_meetings=7, calendar_lines=shown)
    monkeypatch.setattr(demo_module, "run_demo", lambda *args, **kwargs: report)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    at = lines.index(report.summary_line())
    assert lines[at + 1 : at + 1 + len(shown)] == shown
