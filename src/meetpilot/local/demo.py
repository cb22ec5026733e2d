"""``meetpilot demo``: a mixed set of meetings through the whole pipeline on the embedded stack.

Each meeting is set up for an outcome (recorded, not admitted, denied, transcription failed, a long
transcript, the same meeting submitted twice); the demo runs until every session is final or a
timeout passes, then checks every outcome against what it was set up for, from DynamoDB and S3.
Alongside the ad-hoc meetings, two users' ICS calendars (``demo_calendar.ics``, served on loopback)
bring a shared meeting, a recurring series with an exception, a moved and a cancelled meeting, and
a Teams link hidden in a description (see ``meetpilot.local.demo_calendars``).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from meetpilot.domain.meeting import DesiredState, DispatchState, meeting_key
from meetpilot.domain.status import Outcome
from meetpilot.local.stack import LocalStack, StackOptions
from meetpilot.simulator import Scenario

EXPECTED: dict[Scenario, Outcome] = {
    Scenario.NORMAL: Outcome.TRANSCRIPT_STORED,
    Scenario.LONG_TRANSCRIPT: Outcome.TRANSCRIPT_STORED,
    Scenario.NOT_ADMITTED: Outcome.NOT_ADMITTED,
    Scenario.DENIED: Outcome.DENIED,
    Scenario.TRANSCRIPTION_FAILED: Outcome.TRANSCRIPTION_FAILED,
    Scenario.EMPTY_TRANSCRIPT: Outcome.EMPTY,
    Scenario.KICKED: Outcome.TRANSCRIPT_STORED,
}
FLAG_LABELS = {
    Outcome.NOT_ADMITTED: "not admitted",
    Outcome.DENIED: "denied",
    Outcome.TRANSCRIPTION_FAILED: "transcription failed",
    Outcome.BOT_FAILED: "bot failed",
    Outcome.GAVE_UP: "gave up",
    Outcome.STREAMING_ONLY: "streaming only",
    Outcome.NO_TRANSCRIPT: "no transcript",
    Outcome.DISPATCH_FAILED: "dispatch failed",
    Outcome.EMPTY: "empty",
    Outcome.CANCELLED: "cancelled",
}
_TITLES = [
    "Weekly sync", "Design review", "Customer call", "Hiring panel", "Board prep", "Retro",
    "Roadmap", "1:1", "Incident review", "Sales demo", "Planning", "All hands", "Standup", "Budget",
]  # fmt: skip


@dataclass
class DemoMeeting:
    title: str
    url: str
    start: datetime
    scenario: Scenario
    user_id: str
    source: str = "adhoc"  # or "calendar"
    # record: a bot records it; no_bot: cancelled or moved away; later: scheduled beyond the run
    expect: str = "record"

    @property
    def expected(self) -> Outcome:
        return EXPECTED[self.scenario]

    @property
    def key(self) -> str:
        return meeting_key(self.url, self.start)


def plan_meetings(count: int, now: datetime, *, first_start: float = 20.0, spacing: float = 1.5) -> list[DemoMeeting]:
    """The demo's mix: one of each flagged kind, a long transcript, one meeting twice, the rest normal."""
    if count < 1:
        raise ValueError("the demo needs at least one meeting")
    special = [Scenario.NOT_ADMITTED, Scenario.DENIED, Scenario.TRANSCRIPTION_FAILED, Scenario.LONG_TRANSCRIPT]
    scenarios = (special + [Scenario.NORMAL] * count)[:count]
    # The last two slots are one meeting on two people's calendars (when there is room for it).
    duplicate = count >= 6
    meetings: list[DemoMeeting] = []
    for i, scenario in enumerate(scenarios):
        start = (now + timedelta(seconds=first_start + i * spacing)).replace(microsecond=0)
        code = f"{chr(97 + i % 26)}{i:02d}-demo-{i:03d}"
        url = f"https://meet.google.com/{code[:3]}-{code[4:8]}-{code[-3:]}"
        meetings.append(DemoMeeting(_TITLES[i % len(_TITLES)], url, start, scenario, f"user{i + 1}"))
    if duplicate:
        original = meetings[-2]
        # Same meeting, written the way another calendar might: host case, a tracking parameter.
        other_url = original.url.replace("meet.google.com", "Meet.Google.com") + "?utm_source=calendar"
        meetings[-1] = DemoMeeting(original.title, other_url, original.start, original.scenario, "user-second-calendar")
    return meetings


@dataclass
class DemoReport:
    meetings: int
    bots: int
    stored: int
    flagged: Counter[str]
    lost: int
    mismatches: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    seconds: float = 0.0
    calendar_meetings: int = 0  # of ``meetings``, how many came from calendar events

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.lost == 0

    def summary_line(self) -> str:
        flagged = sum(self.flagged.values())
        order = list(FLAG_LABELS.values())
        ranked = sorted(self.flagged.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
        detail = ", ".join(f"{label} {n}" for label, n in ranked)
        flags = f"{flagged} flagged ({detail})" if flagged else "0 flagged"
        from_calendars = f" ({self.calendar_meetings} from calendars)" if self.calendar_meetings else ""
        return (
            f"demo: {self.meetings} meetings{from_calendars}, {self.bots} bots, {self.stored} transcripts stored, "
            f"{flags}, {self.lost} lost"
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "meeting"


def _row(stack: LocalStack, m: DemoMeeting) -> tuple[str, str, str, str]:
    title = f"{m.title} [{m.user_id}]" if m.source == "calendar" else m.title
    session = stack.session_for(m.key)
    meeting = stack.container.repository.get_meeting(m.key) if stack.container else None
    if meeting is not None and meeting.desired is DesiredState.CANCELLED:
        return title, "cancelled", (session.bot_id or "-")[:8] if session else "-", "-"
    if session is None:
        state = meeting.dispatch_state.value if meeting else ("in calendar" if m.source == "calendar" else "submitted")
        if meeting and meeting.schedule_name:
            state = "scheduled"
        return title, state, "-", "-"
    transcript = "-"
    if session.outcome is Outcome.TRANSCRIPT_STORED:
        transcript = f"{session.transcript.get('words', 0)} words"
    elif session.outcome is not None:
        transcript = FLAG_LABELS.get(session.outcome, session.outcome.value)
    return title, session.status.value, (session.bot_id or "-")[:8], transcript


def _table(stack: LocalStack, meetings: list[DemoMeeting]) -> Any:
    from rich.table import Table

    table = Table(title="meetpilot demo", expand=False)
    for column in ("meeting", "status", "bot", "transcript"):
        table.add_column(column)
    for m in meetings:
        table.add_row(*_row(stack, m))
    return table


def _finished(stack: LocalStack, meetings: list[DemoMeeting]) -> bool:
    for m in meetings:
        if m.expect != "record":
            continue
        session = stack.session_for(m.key)
        if session is None or session.outcome is None:
            return False
    return True


def _write_transcripts(stack: LocalStack, meetings: list[DemoMeeting], out_dir: Path) -> None:
    assert stack.container is not None
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    folder = out_dir / "transcripts"
    if folder.exists():  # a previous run's files would mix with this run's
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seen: set[str] = set()
    for m in meetings:
        session = stack.session_for(m.key)
        if session is None or m.key in seen or not session.transcript.get("keys"):
            continue
        seen.add(m.key)
        for fmt in ("txt", "vtt", "json"):
            key = session.transcript["keys"][fmt]
            target = folder / f"{_slug(m.title)}-{(session.bot_id or '')[:8]}.{fmt}"
            s3.download_file(bucket, key, str(target))


def evaluate(stack: LocalStack, meetings: list[DemoMeeting]) -> DemoReport:
    """Outcomes as DynamoDB and S3 hold them, checked against what each meeting was set up for."""
    assert stack.container is not None
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    mismatches = _check_calendar_only(stack, [m for m in meetings if m.expect != "record"])
    meetings = [m for m in meetings if m.expect == "record"]
    distinct = {m.key for m in meetings}
    flagged: Counter[str] = Counter()
    stored = lost = 0
    counted: set[str] = set()
    for m in meetings:
        session = stack.session_for(m.key)
        if session is None or session.outcome is None:
            lost += 1
            mismatches.append(f"{m.title}: no outcome (status {session.status.value if session else 'none'})")
            continue
        if session.outcome is not m.expected:
            mismatches.append(f"{m.title}: expected {m.expected.value}, got {session.outcome.value}")
        if m.key in counted:
            continue
        counted.add(m.key)
        if session.outcome is Outcome.TRANSCRIPT_STORED:
            for key in session.transcript["keys"].values():
                s3.head_object(Bucket=bucket, Key=key)  # raises if the object is missing
            stored += 1
        else:
            flagged[FLAG_LABELS.get(session.outcome, session.outcome.value)] += 1
    bots = len(stack.simulator.bots())
    if bots != len(distinct):
        mismatches.append(f"{bots} bots for {len(distinct)} distinct meetings")
    from_calendars = sum(1 for m in meetings if m.source == "calendar")
    return DemoReport(len(meetings), bots, stored, flagged, lost, mismatches, calendar_meetings=from_calendars)


def _check_calendar_only(stack: LocalStack, entries: list[DemoMeeting]) -> list[str]:
    """Cancelled and moved-away meetings have no bot; a meeting beyond the run is scheduled."""
    assert stack.container is not None
    problems = []
    for m in entries:
        meeting = stack.container.repository.get_meeting(m.key)
        if m.expect == "no_bot":
            if meeting is not None and (meeting.desired is not DesiredState.CANCELLED or meeting.session_id):
                problems.append(f"{m.title}: expected no bot, meeting is {meeting.desired.value}")
        elif m.expect == "later" and (
            meeting is None or meeting.dispatch_state is not DispatchState.PENDING or not meeting.schedule_name
        ):
            problems.append(f"{m.title}: expected a schedule for later")
    return problems


def demo_options(speed: float = 600.0, background: bool = True) -> StackOptions:
    return StackOptions(
        speed=speed,
        background_pollers=background,
        lead_time_seconds=10,  # dispatch 10 s before start, through a real schedule
        schedule_margin_seconds=0,
        scheduler_interval_seconds=0.25,
        simulator_overrides={"long_transcript_segments": 4000},
    )


def run_demo(
    count: int = 12,
    *,
    timeout: float = 90.0,
    out_dir: Path = Path(".demo"),
    console: Any = None,
    live: bool = True,
    options: StackOptions | None = None,
    first_start: float = 20.0,
    calendars: bool = True,
) -> DemoReport:
    """Run ``count`` ad-hoc meetings, plus the demo calendars' meetings unless ``calendars`` is off."""
    from meetpilot.local.feed_server import FeedServer

    started = time.monotonic()
    with LocalStack(options or demo_options()) as stack, FeedServer() as feeds:
        assert stack.simulator is not None
        now = stack.clock.now()
        meetings = plan_meetings(count, now, first_start=first_start)
        deadline = time.monotonic() + timeout
        if calendars:
            meetings += _start_calendars(stack, feeds, now, first_start=first_start, deadline=deadline)
        for m in meetings:
            if m.source != "adhoc":
                continue
            stack.simulator.set_scenario(m.url, m.scenario)
            stack.submit_meeting(m.url, m.start, title=m.title, user_id=m.user_id)
        if calendars:
            _publish_changes(stack, feeds, now, first_start=first_start, deadline=deadline)
        if live and console is not None:
            from rich.live import Live

            with Live(_table(stack, meetings), console=console, refresh_per_second=4) as view:
                while time.monotonic() < deadline and not _finished(stack, meetings):
                    _drive(stack)
                    view.update(_table(stack, meetings))
                view.update(_table(stack, meetings))
        else:
            while time.monotonic() < deadline and not _finished(stack, meetings):
                _drive(stack)
        report = evaluate(stack, meetings)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_transcripts(stack, meetings, out_dir)
        (out_dir / "summary.json").write_text(
            json.dumps({"summary": report.summary_line(), "ok": report.ok, "mismatches": report.mismatches}, indent=2)
        )
        report.out_dir = out_dir
    report.seconds = time.monotonic() - started
    return report


def _start_calendars(
    stack: LocalStack, feeds: Any, now: datetime, *, first_start: float, deadline: float
) -> list[DemoMeeting]:
    """Publish the first version of both users' feeds, register them and wait for their first sync."""
    from meetpilot.app.calendars import IcsRegistration, add_ics_calendar
    from meetpilot.local.demo_calendars import plan_calendars

    assert stack.container is not None
    c = stack.container
    plan = plan_calendars(now, first_start=first_start)
    for user, text in plan.before.items():
        url = feeds.publish(user, text)
        registration = IcsRegistration(user, url, owner_email=f"{user}@acme.demo", label=f"{user}'s work calendar")
        add_ics_calendar(
            registration,
            repo=c.repository,
            sync_queue=c.calendar_sync_queue,
            clock=c.clock,
            check_address=c.feed_guard.vet_url,
        )
    _wait_for_syncs(stack, since=None, deadline=deadline)
    return [
        DemoMeeting(e.title, e.url, e.start, Scenario.NORMAL, e.user_id, source="calendar", expect=e.expect)
        for e in sorted(plan.entries, key=lambda e: e.start)
    ]


def _publish_changes(stack: LocalStack, feeds: Any, now: datetime, *, first_start: float, deadline: float) -> None:
    """The second version of the feeds (a meeting moved, one cancelled), then a poll, as every 10 minutes."""
    from meetpilot.app.calendar_sync import enqueue_due_syncs
    from meetpilot.local.demo_calendars import plan_calendars

    assert stack.container is not None
    c = stack.container
    for user, text in plan_calendars(now, first_start=first_start).after.items():
        feeds.publish(user, text)
    mark = c.clock.now()
    enqueue_due_syncs(repo=c.repository, queue=c.calendar_sync_queue, clock=c.clock)
    _wait_for_syncs(stack, since=mark, deadline=deadline)


def _wait_for_syncs(stack: LocalStack, *, since: datetime | None, deadline: float) -> None:
    assert stack.container is not None
    repo = stack.container.repository
    while time.monotonic() < deadline:
        calendars = repo.list_calendars()
        if calendars and all(
            c.last_synced_at is not None and (since is None or c.last_synced_at > since) for c in calendars
        ):
            return
        _drive(stack)


def _drive(stack: LocalStack) -> None:
    """Background pollers do the work; without them, drive the queues here."""
    if stack.options.background_pollers:
        time.sleep(0.25)
    else:
        stack.drain()
        time.sleep(0.05)
