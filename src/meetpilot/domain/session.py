"""The bot session state machine: forward-only status, deduplicated events, one outcome per session.

A session is meetpilot's record of one bot in one meeting. Webhook events are applied here; the
result says what changed and which side effect (a transcript job) the caller must perform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from meetpilot.domain.clock import to_iso
from meetpilot.domain.events import BotEvent
from meetpilot.domain.meeting import start_of_meeting_key
from meetpilot.domain.punctuality import Punctuality, newly_recorded, observe
from meetpilot.domain.status import BotStatus, EventKind, Outcome, StopReason, TranscriptSignal

HISTORY_CAP = 100  # entries kept on the item; DynamoDB items are capped at 400 KB
SEEN_CAP = 300  # dedupe hashes kept; a bot sends a few dozen events in its life
MAX_JOINING_EVENTS = 3  # MeetStream retries a join up to three times


class TranscriptMode(StrEnum):
    """What kind of transcript the bot was created with."""

    POST_CALL = "post_call"  # a transcript_id exists and can be fetched after the call
    STREAMING = "streaming"  # live only; get_transcript answers 202 forever
    NONE = "none"  # no transcription requested (or native captions)

    @classmethod
    def for_provider(cls, provider: str | None) -> TranscriptMode:
        if not provider or provider in ("none", "meeting_captions"):
            return cls.NONE
        if provider.endswith("_streaming"):
            return cls.STREAMING
        return cls.POST_CALL


class TranscriptState(StrEnum):
    NONE = "none"
    QUEUED = "queued"  # one transcript job was enqueued
    STORED = "stored"
    FAILED = "failed"


@dataclass
class Session:
    session_id: str
    meeting_key: str
    transcript_mode: TranscriptMode
    bot_id: str | None = None
    status: BotStatus = BotStatus.PENDING
    stop_reason: StopReason | None = None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    transcript_id: str | None = None
    transcript_state: TranscriptState = TranscriptState.NONE
    transcript_job_pending: bool = False  # set with QUEUED, cleared once the job is in the queue
    transcript: dict[str, Any] = field(default_factory=dict)  # S3 keys and summary figures once stored
    joining_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    unknown_events: int = 0
    reconcile_attempts: int = 0  # reconciler checks without the session reaching an outcome
    transcript_tries: int = 0  # transcript fetches that found nothing yet (the fetcher's progress)
    transcript_tries_seen: int = 0  # transcript_tries as the reconciler last saw it
    # Live transcription was requested: final segments are kept under the session and assembled
    # into a transcript when no post-call one comes (streaming-only provider, failed transcription).
    live_transcript: bool = False
    # The meeting's start to the second, as dispatch knew it (the key holds only its minute), and
    # the join punctuality measured against it (domain/punctuality.py).
    meeting_start: datetime | None = None
    join_lateness_ms: int | None = None
    admission_wait_ms: int | None = None
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Events accepted since the session was read, as (dedupe key, history entry): the store keeps
    # each one as an item of its own instead of rewriting the whole history on every change.
    new_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list, repr=False, compare=False)
    # What the store last read or wrote (its own attribute form), so that a write carries only what
    # changed and an index key is written only when it moves.
    stored: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def needs_review(self) -> bool:
        return self.outcome is not None and self.outcome.needs_review

    @property
    def punctuality(self) -> Punctuality:
        return Punctuality(self.join_lateness_ms, self.admission_wait_ms)

    @property
    def starts_at(self) -> datetime | None:
        """The meeting's start: as dispatch recorded it, else the minute its key carries."""
        return self.meeting_start or start_of_meeting_key(self.meeting_key)


class EventVerdict(StrEnum):
    APPLIED = "applied"  # new event, recorded (status may or may not have moved)
    DUPLICATE = "duplicate"  # seen before; nothing changed
    WRONG_BOT = "wrong_bot"  # names a different bot than the session's; rejected


@dataclass(frozen=True)
class EventDecision:
    verdict: EventVerdict
    session: Session
    status_changed: bool = False
    enqueue_transcript: bool = False
    outcome_decided: bool = False
    punctuality: Punctuality = field(default_factory=Punctuality)  # the figures this event decided (published once)


def _decide_outcome(session: Session, event: BotEvent) -> tuple[Outcome, str] | None:
    """The outcome an event settles, if any, before any transcript is fetched."""
    if event.kind is EventKind.TERMINAL:
        reason = event.stop_reason
        if reason is StopReason.NOT_ALLOWED:
            return Outcome.NOT_ADMITTED, "the bot was never admitted from the waiting room"
        if reason is StopReason.DENIED:
            return Outcome.DENIED, "a host refused to let the bot in"
        if session.transcript_mode is TranscriptMode.STREAMING and not session.live_transcript:
            return Outcome.STREAMING_ONLY, "the transcript provider streams only; no post-call transcript"
        if session.transcript_mode is TranscriptMode.NONE:
            if reason is StopReason.FAILED:
                return Outcome.BOT_FAILED, "the bot crashed in the meeting"
            return Outcome.NO_TRANSCRIPT, "no transcription was requested for this bot"
        return None
    if event.transcript_signal is TranscriptSignal.FAILED:
        return Outcome.TRANSCRIPTION_FAILED, event.message or "the provider could not transcribe the call"
    if event.transcript_signal is TranscriptSignal.SKIPPED and session.transcript_mode is TranscriptMode.POST_CALL:
        return Outcome.TRANSCRIPTION_FAILED, event.message or "the provider skipped transcription"
    return None


def _wants_transcript_job(session: Session, event: BotEvent) -> bool:
    if session.transcript_state is not TranscriptState.NONE or session.outcome is not None:
        return False
    if session.transcript_mode is TranscriptMode.STREAMING and session.live_transcript:
        # No post-call transcript will come: once the bot is out, assemble the live segments.
        return event.kind is EventKind.TERMINAL and bool(event.stop_reason and event.stop_reason.has_media)
    if session.transcript_mode is not TranscriptMode.POST_CALL:
        return False
    if event.transcript_signal is TranscriptSignal.PROCESSED:
        return True
    # bot.done is the provider's last event: if the transcription event was lost, fetch anyway;
    # a 202 answer will tell us it is not there yet.
    return event.kind is EventKind.DONE and session.stop_reason not in (
        StopReason.NOT_ALLOWED,
        StopReason.DENIED,
    )


def apply_event(session: Session, event: BotEvent, now: datetime, *, source: str = "webhook") -> EventDecision:
    """Apply one normalised event to a session, forward-only and at most once.

    ``source`` says where it came from: a webhook, or the reconciler reading the provider's record.
    """
    if event.bot_id is not None and session.bot_id is not None and event.bot_id != session.bot_id:
        return EventDecision(EventVerdict.WRONG_BOT, session)
    if event.dedupe_key in session.seen:
        return EventDecision(EventVerdict.DUPLICATE, session)

    new = replace(
        session,
        history=list(session.history),
        seen=set(session.seen),
        new_events=list(session.new_events),
    )
    if new.bot_id is None and event.bot_id is not None:
        new.bot_id = event.bot_id  # the first authenticated event may arrive before dispatch records it
    new.seen.add(event.dedupe_key)
    if len(new.seen) > SEEN_CAP:
        # Forget arbitrary old hashes; the forward-only status still protects against stale replays.
        for stale in list(new.seen)[: len(new.seen) - SEEN_CAP]:
            if stale != event.dedupe_key:
                new.seen.discard(stale)
    entry = event.history_entry()
    entry["received_at"] = to_iso(now)
    if source != "webhook":
        entry["source"] = source
    new.history.append(entry)
    new.new_events.append((event.dedupe_key, entry))
    if len(new.history) > HISTORY_CAP:
        # Keep the first entries (how it started) and the most recent ones.
        new.history = new.history[:10] + new.history[-(HISTORY_CAP - 10) :]

    if event.kind is EventKind.UNKNOWN:
        new.unknown_events += 1
    if event.name == "bot.joining":
        new.joining_count += 1

    measured = observe(session.punctuality, event, status_before=session.status, meeting_start=session.starts_at)
    new.join_lateness_ms, new.admission_wait_ms = measured.lateness_ms, measured.admission_wait_ms

    status_changed = False
    if event.status is not None and event.status.rank > new.status.rank:
        new.status = event.status
        status_changed = True
    if event.kind is EventKind.TERMINAL and new.stop_reason is None:
        new.stop_reason = event.stop_reason
        # A terminal event also proves the bot reached STOPPED even if it arrives after bot.done.
        if BotStatus.STOPPED.rank > new.status.rank:
            new.status = BotStatus.STOPPED
            status_changed = True

    enqueue = _wants_transcript_job(new, event)
    if enqueue:
        new.transcript_state = TranscriptState.QUEUED
        new.transcript_job_pending = True

    outcome_decided = False
    if new.outcome is None and new.transcript_state is not TranscriptState.STORED:
        decided = _decide_outcome(new, event)
        if decided is not None:
            new.outcome, new.outcome_reason = decided
            outcome_decided = True
            if decided[0] is Outcome.TRANSCRIPTION_FAILED:
                new.transcript_state = TranscriptState.FAILED
    new.updated_at = now
    return EventDecision(
        EventVerdict.APPLIED,
        new,
        status_changed=status_changed,
        enqueue_transcript=enqueue,
        outcome_decided=outcome_decided,
        punctuality=newly_recorded(session.punctuality, measured),
    )


def attention_basis(session: Session) -> tuple[Any, ...]:
    """What the reconciler's next look at a session depends on. While none of it changes (another
    participant joined, a transcript fetch found nothing yet), the deadline stays where it was."""
    return (
        session.status,  # the deadline is the status's
        session.outcome is not None,  # none once settled
        session.reconcile_attempts,  # the reconciler looked: next look one deadline later
        session.transcript_tries_seen,
    )


def attention_due(
    session: Session, now: datetime, previous: tuple[tuple[Any, ...], datetime | None] | None = None
) -> datetime | None:
    """When the reconciler should look at this session again; None once it has an outcome.

    ``previous`` is the basis and due time as last stored: when the basis is unchanged the due time
    is kept, so a write that changes nothing the reconciler cares about does not move the session in
    the attention index (each move is a delete and a put of the index entry)."""
    if previous is not None and previous[0] == attention_basis(session):
        return previous[1]
    if session.outcome is not None:
        return None
    deadlines = {
        BotStatus.PENDING: timedelta(minutes=10),
        BotStatus.SCHEDULED: timedelta(minutes=30),
        BotStatus.JOINING: timedelta(minutes=15),
        BotStatus.IN_WAITING_ROOM: timedelta(minutes=30),
        BotStatus.STOPPED: timedelta(minutes=30),
        BotStatus.DONE: timedelta(minutes=30),
    }
    return now + deadlines.get(session.status, timedelta(hours=5))


# The provider's StatusTimeline keys (GET /bots/{id}/detail), as the webhook each one stands for:
# (event, bot_event). Order matters: it is the order the events happen in.
TIMELINE_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("Scheduled", "bot.scheduled", "bot.scheduled"),
    ("Joining", "bot.joining", "bot.joining"),
    ("WaitingRoom", "bot.in_waiting_room", "bot.in_waiting_room"),
    ("InMeeting", "bot.inmeeting", "bot.inmeeting"),
    ("Recording", "bot.recording", "bot.recording"),
    ("Leaving", "bot.leaving", "bot.leaving"),
    ("Stopped", "bot.stopped", "bot.stopped"),
    ("BotNotAllowed", "bot.stopped", "bot.notallowed"),
    ("BotRejected", "bot.stopped", "bot.denied"),
    ("Error", "bot.stopped", "bot.failed"),
    ("TranscriptionReady", "transcription.processed", "transcription.processed"),
    ("Done", "bot.done", "bot.done"),
)


def timeline_payloads(bot_id: str, detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Webhook-shaped payloads for every step the provider's StatusTimeline records as reached.

    The reconciler feeds them through the same normalise/apply path as real webhooks, so a lost
    webhook's transition is recovered exactly as if it had arrived.
    """
    details = detail.get("bot_details", detail)
    timeline = details.get("StatusTimeline") if isinstance(details, Mapping) else None
    if not isinstance(timeline, Mapping):
        return []
    payloads: list[dict[str, Any]] = []
    terminal_seen = False
    for key, event, bot_event in TIMELINE_EVENTS:
        step = timeline.get(key)
        if not isinstance(step, Mapping) or not step.get("status"):
            continue
        if event == "bot.stopped":
            if terminal_seen:
                continue  # one terminal per bot; the first recorded reason wins
            terminal_seen = True
        payload: dict[str, Any] = {"event": event, "bot_event": bot_event, "bot_id": bot_id}
        if isinstance(step.get("timestamp"), str):
            payload["timestamp"] = step["timestamp"]
        payload["message"] = step.get("message") if isinstance(step.get("message"), str) else f"{key} (from detail)"
        payloads.append(payload)
    # A failure reason outranks a plain Stopped entry that some records also carry.
    reasons = [p for p in payloads if p["event"] == "bot.stopped"]
    if reasons and reasons[0]["bot_event"] == "bot.stopped":
        for key, _, bot_event in TIMELINE_EVENTS[7:10]:
            step = timeline.get(key)
            if isinstance(step, Mapping) and step.get("status"):
                reasons[0]["bot_event"] = bot_event
                break
    return payloads
