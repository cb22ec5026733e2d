"""``meetpilot demo``: a mixed set of meetings through the whole pipeline on the embedded stack.

Each meeting is set up for an outcome (recorded, not admitted, denied, transcription failed, a long
transcript, the same meeting submitted twice); the demo runs until every session is final, or
until nothing has moved for a while (no status, outcome, transcript try or queue count changed, and
no queue holds a job), then checks every outcome against what it was set up for, from DynamoDB
and S3. What the functions write (JSON logs, EMF metric lines) goes to a log file in the output
folder, as a Lambda's output goes to CloudWatch Logs; the console shows only the table (or a line
per outcome) and the summary.
Alongside the ad-hoc meetings, four users' calendars, connected through the management API as a
product connects its customers' (two ICS feeds served on loopback, a Google and a Microsoft 365
calendar at the local fakes), bring a meeting all four share (one bot), a recurring series with an
exception, a moved and a cancelled meeting, a Teams link hidden in a description, and a meeting a
calendar's rule skips (see ``meetpilot_dev.demo_calendars``). After the summary line the demo shows
the calendars as the API lists them, the shared meeting's one bot, and the reason the API gives for
each event that got no bot.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from rich.live import Live
from rich.table import Table

from meetpilot.app.calendar_sync import enqueue_due_syncs
from meetpilot.domain.meeting import DesiredState, DispatchState, Meeting, meeting_key
from meetpilot.domain.session import Session, TranscriptState
from meetpilot.domain.status import Outcome
from meetpilot.handlers.observability import logger
from meetpilot_dev.client import ApiError, ManagementClient, quote_segment
from meetpilot_dev.demo_calendars import CONNECTIONS, plan_calendars
from meetpilot_dev.fakes.feeds import FeedServer
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.stack.embedded import LocalStack, QueueCount, StackOptions

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
# How long the demo waits without any progress before it gives up (and says what is still in flight).
PATIENCE_SECONDS = 60.0
SQS_MAX_DELAY_SECONDS = 900.0  # a delayed message (a retry) is back within this
LOG_NAME = "demo.log"
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
    # record: a bot records it; no_bot: cancelled or moved away; later: scheduled beyond the run;
    # skipped: a rule of its calendar says no, and the API gives ``reason`` for it
    expect: str = "record"
    reason: str | None = None

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
    # The last two slots are one meeting submitted twice, as from two calendars (when there is room for it).
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
    # Meetings without an outcome when the demo gave up that something still holds (a queue, a
    # schedule, the reconciler): where each one is.
    in_flight: list[str] = field(default_factory=list)
    log_path: Path | None = None
    # What the management API shows of the calendars: printed after the summary line.
    calendar_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.lost == 0 and not self.in_flight

    def summary_line(self) -> str:
        flagged = sum(self.flagged.values())
        order = list(FLAG_LABELS.values())
        ranked = sorted(self.flagged.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
        detail = ", ".join(f"{label} {n}" for label, n in ranked)
        flags = f"{flagged} flagged ({detail})" if flagged else "0 flagged"
        from_calendars = f" ({self.calendar_meetings} from calendars)" if self.calendar_meetings else ""
        in_flight = f", {len(self.in_flight)} still in flight" if self.in_flight else ""
        return (
            f"demo: {self.meetings} meetings{from_calendars}, {self.bots} bots, {self.stored} transcripts stored, "
            f"{flags}{in_flight}, {self.lost} lost"
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "meeting"


@dataclass(frozen=True)
class Look:
    """One reading of a meeting's items: its meeting and, once dispatched, its session."""

    meeting: Meeting | None
    session: Session | None

    @property
    def outcome(self) -> Outcome | None:
        return self.session.outcome if self.session else None


def _look(stack: LocalStack, m: DemoMeeting) -> Look:
    assert stack.container is not None
    repo = stack.container.repository
    meeting = repo.get_meeting(m.key)
    session = repo.get_session(meeting.session_id) if meeting is not None and meeting.session_id else None
    return Look(meeting, session)


def _title(m: DemoMeeting) -> str:
    return f"{m.title} [{m.user_id}]" if m.source == "calendar" else m.title


def _row(m: DemoMeeting, look: Look) -> tuple[str, str, str, str]:
    title = _title(m)
    session, meeting = look.session, look.meeting
    if meeting is not None and meeting.desired is DesiredState.CANCELLED:
        return title, "cancelled", (session.bot_id or "-")[:8] if session else "-", "-"
    if m.expect == "skipped" and session is None:
        return title, "skipped by a rule", "-", "-"
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


def _table(meetings: list[DemoMeeting], looks: list[Look]) -> Any:
    table = Table(title="meetpilot demo", expand=False)
    for column in ("meeting", "status", "bot", "transcript"):
        table.add_column(column)
    for m, look in zip(meetings, looks, strict=True):
        table.add_row(*_row(m, look))
    return table


def _outcome_line(m: DemoMeeting, look: Look) -> str:
    """One line for a meeting that reached its end (for a console that is not a terminal)."""
    title, status, bot, transcript = _row(m, look)
    if m.expect == "later":
        return f"{title}: scheduled for later, no bot yet"
    if m.expect in ("no_bot", "skipped"):
        return f"{title}: {status}, no bot"
    if look.outcome is Outcome.TRANSCRIPT_STORED:
        return f"{title}: transcript stored, {transcript} (bot {bot})"
    return f"{title}: {transcript if transcript != '-' else status} (bot {bot})"


def _final(m: DemoMeeting, look: Look) -> bool:
    return m.expect != "record" or look.outcome is not None


def _progress_mark(looks: list[Look], counts: dict[str, QueueCount]) -> Hashable:
    """What counts as progress when it changes: a dispatch, a status, an outcome, a transcript try,
    or any message arriving in, leaving or moving within a queue."""
    states = tuple(
        (
            look.meeting.dispatch_state if look.meeting else None,
            look.session.status if look.session else None,
            look.outcome,
            look.session.transcript_state if look.session else None,
            look.session.transcript_tries if look.session else 0,
        )
        for look in looks
    )
    return states, tuple(sorted(counts.items()))


class ProgressWatch:
    """Says whether anything moved within the last ``patience`` seconds (of the monotonic clock).

    While a queue still holds a job (a retry waiting out its delay, say), the wait is SQS's own
    longest delay instead: the job is bound to come back, so the run is waiting, not stuck.
    """

    def __init__(self, patience: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self.patience = patience
        self._now = now
        self._mark: Hashable = None
        self._moved_at = now()

    def moving(self, mark: Hashable, *, job_queued: bool = False) -> bool:
        """Record one look; False once the allowed time has passed without a change."""
        now = self._now()
        if mark != self._mark:
            self._mark, self._moved_at = mark, now
        allowed = max(self.patience, SQS_MAX_DELAY_SECONDS) if job_queued else self.patience
        return now - self._moved_at < allowed

    @property
    def idle_seconds(self) -> float:
        return self._now() - self._moved_at


_QUEUE_LABELS = {"DispatchFunction": "dispatch queue", "BotEventsFunction": "bot events queue",
                 "TranscriptFetchFunction": "transcript queue"}  # fmt: skip


def _whereabouts(look: Look, counts: dict[str, QueueCount]) -> tuple[str, str | None]:
    """Status and holder of a meeting without an outcome; no holder means nothing will finish it."""

    def queue(function: str) -> str | None:
        count = counts.get(function)
        return f"{_QUEUE_LABELS[function]}: {count.describe()}" if count and count.total else None

    meeting, session = look.meeting, look.session
    if session is not None:
        status = f"bot {session.status.value}"
        if session.transcript_state is TranscriptState.QUEUED:
            status += f", transcript not ready after {session.transcript_tries} tries"
            held = queue("TranscriptFetchFunction")
        else:
            held = queue("BotEventsFunction")
        # A session without an outcome carries an attention time: the reconciler polls the provider.
        return status, held or "the reconciler (attention index)"
    if meeting is None:
        return "submitted, no meeting stored", queue("DispatchFunction")
    if meeting.schedule_name and meeting.dispatch_state is DispatchState.PENDING:
        return "waiting for its dispatch time", f"schedule {meeting.schedule_name}"
    if meeting.dispatch_state in (DispatchState.PENDING, DispatchState.CLAIMED):
        held = queue("DispatchFunction") or "the reconciler (missed dispatch)"
        return f"dispatch {meeting.dispatch_state.value}", held
    return f"dispatch {meeting.dispatch_state.value}, no session", None


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
    """Outcomes as DynamoDB and S3 hold them, checked against what each meeting was set up for.

    A meeting without an outcome is "in flight" while a queue, a schedule or the reconciler still
    holds it, and "lost" only when nothing does.
    """
    assert stack.container is not None
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    mismatches = _check_calendar_only(stack, [m for m in meetings if m.expect != "record"])
    meetings = [m for m in meetings if m.expect == "record"]
    distinct = {m.key for m in meetings}
    flagged: Counter[str] = Counter()
    stored = lost = 0
    in_flight: list[str] = []
    counted: set[str] = set()
    counts: dict[str, QueueCount] | None = None
    for m in meetings:
        look = _look(stack, m)
        session = look.session
        if session is None or session.outcome is None:
            counts = counts if counts is not None else stack.queue_counts()
            status, held = _whereabouts(look, counts)
            if held is None:
                lost += 1
                mismatches.append(f"{_title(m)}: lost ({status}; no queue, schedule or reconciler holds it)")
            else:
                in_flight.append(f"{_title(m)}: {status}; in {held}")
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
    if bots != len(distinct) and not in_flight:
        mismatches.append(f"{bots} bots for {len(distinct)} distinct meetings")
    from_calendars = sum(1 for m in meetings if m.source == "calendar")
    return DemoReport(
        len(meetings), bots, stored, flagged, lost, mismatches, calendar_meetings=from_calendars, in_flight=in_flight
    )


def _check_calendar_only(stack: LocalStack, entries: list[DemoMeeting]) -> list[str]:
    """Cancelled, moved-away and skipped meetings have no bot; a meeting beyond the run is scheduled."""
    assert stack.container is not None
    problems = []
    for m in entries:
        meeting = stack.container.repository.get_meeting(m.key)
        if m.expect == "skipped":
            if meeting is not None and (meeting.desired is DesiredState.RECORD or meeting.session_id):
                problems.append(f"{_title(m)}: expected no bot (skipped by a rule), meeting is {meeting.desired.value}")
        elif m.expect == "no_bot":
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
        google_fake=True,  # carol's calendar
        microsoft_fake=True,  # dave's calendar
        lead_time_seconds=10,  # dispatch 10 s before start, through a real schedule
        schedule_margin_seconds=0,
        scheduler_interval_seconds=0.25,
        # The simulator runs 600 times faster than life; retry waits (a transcript not processed
        # yet: 15 s, 30 s, 60 s...) and leases shrink with it, or one slow fetch holds the run.
        time_scale=0.1,
        simulator_overrides={"long_transcript_segments": 4000},
        # The functions' logs go to demo.log, not the console: keep their INFO lines there.
        quiet_logs=False,
    )


def run_demo(
    count: int = 12,
    *,
    patience: float = PATIENCE_SECONDS,
    out_dir: Path = Path(".demo"),
    console: Any = None,
    live: bool = True,
    options: StackOptions | None = None,
    first_start: float = 20.0,
    calendars: bool = True,
) -> DemoReport:
    """Run ``count`` ad-hoc meetings, plus the demo calendars' meetings unless ``calendars`` is off.

    It goes on while anything moves and gives up after ``patience`` seconds without progress.
    ``console`` (a rich Console) gets a live table when it is a terminal and ``live`` is on, else
    one line per meeting as it ends; the functions' own output goes to ``out_dir``/demo.log.
    """

    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_NAME
    if console is not None:
        console.file = console.file  # keep the terminal: stdout becomes the functions' log below
    with (
        functions_output_to(log_path),
        LocalStack(options or demo_options()) as stack,
        FeedServer() as feeds,
        _api_client(stack) as api,
    ):
        assert stack.simulator is not None
        now = stack.clock.now()
        meetings = plan_meetings(count, now, first_start=first_start)
        connected = DemoConnections(api)
        if calendars:
            meetings += _start_calendars(stack, feeds, connected, now, first_start=first_start, patience=patience)
        for m in meetings:
            if m.source != "adhoc":
                continue
            stack.simulator.set_scenario(m.url, m.scenario)
            stack.submit_meeting(m.url, m.start, title=m.title, user_id=m.user_id)
        if calendars:
            _publish_changes(stack, feeds, connected, now, first_start=first_start, patience=patience)
        if live and console is not None and console.is_terminal:
            # Nothing else writes to the terminal meanwhile, so Live need not redirect stdout.
            with Live(console=console, refresh_per_second=4, redirect_stdout=False, redirect_stderr=False) as view:
                follow(stack, meetings, patience, show=lambda looks: view.update(_table(meetings, looks)))
            # Live's last act is a cursor control sequence: end its line, so whatever follows
            # (the summary) starts a line of its own, as `grep '^demo:'` expects.
            console.line()
        else:
            printed: set[int] = set()

            def print_outcomes(looks: list[Look]) -> None:
                for i, (m, look) in enumerate(zip(meetings, looks, strict=True)):
                    if i not in printed and m.expect == "record" and look.outcome is not None:
                        printed.add(i)
                        if console is not None:
                            console.print(_outcome_line(m, look), soft_wrap=True, markup=False, highlight=False)

            looks = follow(stack, meetings, patience, show=print_outcomes)
            for i, (m, look) in enumerate(zip(meetings, looks, strict=True)):
                if i not in printed and console is not None:
                    console.print(_outcome_line(m, look), soft_wrap=True, markup=False, highlight=False)
        report = evaluate(stack, meetings)
        if calendars:
            try:
                lines, problems = show_calendars(stack, connected, meetings)
            except ApiError as exc:
                lines, problems = [], [f"the management API did not list the calendars: {exc}"]
            report.calendar_lines = lines
            report.mismatches += connected.problems + problems
        _write_transcripts(stack, meetings, out_dir)
        (out_dir / "summary.json").write_text(
            json.dumps(
                {
                    "summary": report.summary_line(),
                    "calendars": report.calendar_lines,
                    "ok": report.ok,
                    "mismatches": report.mismatches,
                    "in_flight": report.in_flight,
                },
                indent=2,
            )
        )
        report.out_dir = out_dir
        report.log_path = log_path
    report.seconds = time.monotonic() - started
    return report


def follow(
    stack: LocalStack,
    meetings: list[DemoMeeting],
    patience: float = PATIENCE_SECONDS,
    *,
    show: Callable[[list[Look]], None] = lambda looks: None,
) -> list[Look]:
    """Look at every meeting until all are final, or nothing has moved for ``patience`` seconds."""
    watch = ProgressWatch(patience)
    while True:
        looks = [_look(stack, m) for m in meetings]
        show(looks)
        if all(_final(m, look) for m, look in zip(meetings, looks, strict=True)):
            return looks
        counts = stack.queue_counts()
        if not watch.moving(_progress_mark(looks, counts), job_queued=any(c.total for c in counts.values())):
            return looks
        _drive(stack)


@contextmanager
def _api_client(stack: LocalStack) -> Iterator[ManagementClient]:
    """The management API behind the stack's gateway, signed with the stack's credentials."""
    assert stack.gateway is not None
    client = ManagementClient.for_dev({"gateway": stack.gateway.url, "environment": stack.environment()})
    try:
        yield client
    finally:
        client.close()


@dataclass
class DemoConnections:
    """The demo's calendars as ``POST /v1/calendars`` answered: user -> calendar id and provider."""

    api: ManagementClient
    ids: dict[str, str] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # a connection or notification that failed


def _start_calendars(
    stack: LocalStack, feeds: Any, connected: DemoConnections, now: datetime, *, first_start: float, patience: float
) -> list[DemoMeeting]:
    """Publish the ICS feeds and put carol's and dave's events at the fakes, connect the four
    calendars through the management API as a product would, and wait for their first syncs."""
    plan = plan_calendars(now, first_start=first_start)
    for mailbox, events in plan.google.items():
        for event in events:
            stack.google.put_event(mailbox, event)
    for mailbox, events in plan.microsoft.items():
        stack.graph.add_user(mailbox)
        for event in events:
            stack.graph.put_event(mailbox, event)
    for connection in CONNECTIONS:
        if connection.provider == "ics":
            secret = {"feed_url": feeds.publish(connection.user_id, plan.before[connection.user_id])}
        elif connection.provider == "google":
            secret = {"refresh_token": stack.google_consent(primary=connection.owner_email)}
        else:
            secret = {"refresh_token": stack.microsoft_consent(connection.owner_email)}
        try:
            _, made = connected.api.post("/v1/calendars", connection.body(secret))
        except ApiError as exc:
            connected.problems.append(f"{connection.user_id}'s {connection.provider} calendar: not connected ({exc})")
            continue
        connected.ids[connection.user_id] = made["calendar_id"]
        connected.providers[connection.user_id] = made["provider"]
    _wait_for_syncs(stack, list(connected.ids.values()), since=None, patience=patience)
    return [
        DemoMeeting(
            e.title, e.url, e.start, Scenario.NORMAL, e.user_id, source="calendar", expect=e.expect, reason=e.reason
        )
        for e in sorted(plan.entries, key=lambda e: e.start)
    ]


def _publish_changes(
    stack: LocalStack, feeds: Any, connected: DemoConnections, now: datetime, *, first_start: float, patience: float
) -> None:
    """The second version of the feeds (a meeting moved, one cancelled), then a poll, as every 10
    minutes; and dave's new meeting at Microsoft, which Graph notifies through the gateway."""
    assert stack.container is not None
    c = stack.container
    plan = plan_calendars(now, first_start=first_start)
    for user, text in plan.after.items():
        feeds.publish(user, text)
    mark = c.clock.now()
    waiting = [connected.ids[user] for user in plan.after if user in connected.ids]
    for mailbox, events in plan.microsoft_added.items():
        for event in events:
            stack.graph.put_event(mailbox, event)
        answers = stack.graph.deliver(mailbox)
        user = next(k.user_id for k in CONNECTIONS if k.owner_email == mailbox)
        if answers and all(200 <= status < 300 for status in answers) and user in connected.ids:
            waiting.append(connected.ids[user])
        else:
            connected.problems.append(f"{user}'s change notification was answered {answers or 'by nobody'}")
    enqueue_due_syncs(repo=c.repository, queue=c.calendar_sync_queue, clock=c.clock)
    _wait_for_syncs(stack, waiting, since=mark, patience=patience)


def _wait_for_syncs(stack: LocalStack, calendar_ids: list[str], *, since: datetime | None, patience: float) -> None:
    """Until each of ``calendar_ids`` has synced (after ``since``), while anything moves."""
    assert stack.container is not None
    repo = stack.container.repository
    watch = ProgressWatch(patience)
    while True:
        calendars = [repo.get_calendar(calendar_id) for calendar_id in calendar_ids]
        synced = [c.last_synced_at if c is not None else None for c in calendars]
        if all(at is not None and (since is None or at > since) for at in synced):
            return
        if not watch.moving((tuple(synced), tuple(sorted(stack.queue_counts().items())))):
            return  # the run goes on; evaluate() reports the calendar meetings that never came
        _drive(stack)


def show_calendars(
    stack: LocalStack, connected: DemoConnections, meetings: list[DemoMeeting]
) -> tuple[list[str], list[str]]:
    """The calendars, the shared meeting and every event without a bot as the management API shows
    them (``GET /v1/calendars`` and ``GET /v1/calendars/{id}/events``), and what differs from the plan.

    Lines: one for the calendars, one per calendar, one per meeting on several calendars (its bots),
    one per event that got no bot, with the reason the API gives.
    """
    assert stack.simulator is not None
    api = connected.api
    problems: list[str] = []
    listed = {c["calendar_id"]: c for c in api.get("/v1/calendars")["items"]}
    users = {calendar_id: user for user, calendar_id in connected.ids.items()}
    decisions = {
        calendar_id: api.get(f"/v1/calendars/{quote_segment(calendar_id)}/events")["items"] for calendar_id in users
    }
    ours = [listed[calendar_id] for calendar_id in users if calendar_id in listed]
    live = [c for c in ours if c["status"] == "connected"]
    by_provider = Counter(c["provider"] for c in live)
    counts = ", ".join(f"{p} {by_provider[p]}" for p in ("google", "microsoft", "ics") if by_provider[p])
    lines = [f"calendars: {len(live)} connected ({counts})"]
    for connection in CONNECTIONS:
        calendar_id = connected.ids.get(connection.user_id)
        shown = listed.get(calendar_id or "")
        if shown is None:
            problems.append(f"{connection.user_id}'s {connection.provider} calendar is not listed by the API")
            continue
        items = decisions[shown["calendar_id"]]
        rules = [f"rule {_RULE_NAMES.get(name, name)}" for name, on in (shown.get("rules") or {}).items() if on is True]
        recorded = sum(1 for d in items if d["recorded"])
        sync = f"synced {shown['last_synced_at'][11:19]}" if shown["last_synced_at"] else "never synced"
        lines.append(
            f"  {connection.user_id} ({shown['provider']}): {shown['status']}, {sync}"
            f"{', ' + ', '.join(rules) if rules else ''}; {_plural(len(items), 'event')}, {recorded} with a bot"
        )
        if shown["status"] != "connected" or not shown["last_synced_at"] or shown["last_error"]:
            problems.append(
                f"{connection.user_id}'s {shown['provider']} calendar: {shown['status']}, "
                f"last error {shown['last_error'] or shown['disconnected_reason'] or '-'}"
            )
    lines += _shared_lines(stack, connected, decisions, meetings, problems)
    for calendar_id, items in decisions.items():
        user = users[calendar_id]
        for d in items:
            if not d["recorded"]:
                lines.append(f'skipped: "{d["title"]}" [{user}, {connected.providers[user]}] {d["reason"]}')
    for m in meetings:
        if m.expect != "skipped":
            continue
        calendar_id = connected.ids.get(m.user_id, "")
        said = [d["reason"] for d in decisions.get(calendar_id, []) if d["title"] == m.title and not d["recorded"]]
        if said != [m.reason]:
            problems.append(f"{_title(m)}: expected the API to say {m.reason!r}, it says {said or 'nothing'}")
    return lines, problems


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_RULE_NAMES = {"external_only": "only-external", "organizer_only": "organiser-only", "accepted_only": "accepted-only"}


def _shared_lines(
    stack: LocalStack,
    connected: DemoConnections,
    decisions: dict[str, list[dict[str, Any]]],
    meetings: list[DemoMeeting],
    problems: list[str],
) -> list[str]:
    """One line per meeting on several calendars: on which, and its bots (one, or it is a mismatch)."""
    assert stack.simulator is not None
    lines = []
    planned: dict[str, list[DemoMeeting]] = {}
    for m in meetings:
        if m.source == "calendar" and m.expect == "record":
            planned.setdefault(m.key, []).append(m)
    for key, copies in planned.items():
        if len(copies) < 2:
            continue
        start = copies[0].start
        bots = [b for b in stack.simulator.bots() if meeting_key(b["meeting_link"], start) == key]
        where = []
        for m in copies:
            calendar_id = connected.ids.get(m.user_id, "")
            found = [d for d in decisions.get(calendar_id, []) if d["meeting_key"] == key and d["recorded"]]
            where.append(f"{m.user_id} {connected.providers.get(m.user_id, '?')}")
            if not found:
                problems.append(f"{_title(m)}: the API shows no recorded decision for it")
        ids = ", ".join(b["bot_id"][:8] for b in bots) or "none"
        on = f"on {len(copies)} calendars ({', '.join(where)})"
        lines.append(f'shared: "{copies[0].title}" {on}, {_plural(len(bots), "bot")} ({ids})')
        if len(bots) != 1:
            problems.append(f"{copies[0].title}: {len(bots)} bots for one meeting on {len(copies)} calendars")
    return lines


def _drive(stack: LocalStack) -> None:
    """Background pollers do the work; without them, drive the queues here."""
    if stack.options.background_pollers:
        time.sleep(0.5)
    else:
        stack.drain()
        time.sleep(0.05)


class _LineWriter:
    """A text stream many threads write whole lines to: each thread's text is held until its
    newline, so one JSON log or EMF line never has another thread's text inside it."""

    encoding = "utf-8"

    def __init__(self, target: IO[str]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        head, newline, tail = buffered.rpartition("\n")
        self._pending.text = tail
        if newline:
            with self._lock:
                self._target.write(head + newline)
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        pass  # whole lines are written through at once; a partial line waits for its newline

    def isatty(self) -> bool:
        return False


@contextmanager
def functions_output_to(path: Path) -> Iterator[Path]:
    """Send what the functions write to ``path``: stdout (EMF metric lines are printed there), the
    service's JSON logger and every other logger (the simulator's, werkzeug's). A Lambda's output
    goes to CloudWatch Logs, not to the terminal of whoever invoked it."""

    with path.open("w", encoding="utf-8") as log:
        writer: Any = _LineWriter(log)
        service_handler = logger.registered_handler
        previous_stream = None
        if isinstance(service_handler, logging.StreamHandler):
            previous_stream = service_handler.setStream(writer)
        others = logging.StreamHandler(writer)
        others.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(others)
        saved_stdout = sys.stdout
        sys.stdout = writer
        try:
            yield path
        finally:
            sys.stdout = saved_stdout
            root.removeHandler(others)
            if isinstance(service_handler, logging.StreamHandler) and previous_stream is not None:
                service_handler.setStream(previous_stream)
