"""Apply one stored webhook delivery to its bot session: normalise, dedupe, move forward only,
and enqueue exactly one transcript job when the transcript is ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from meetpilot.app.messages import BotEventDelivery, TranscriptJob
from meetpilot.app.ports import MessageQueue, Sessions
from meetpilot.app.sessions import update_session
from meetpilot.domain.clock import Clock
from meetpilot.domain.events import BotEvent, read_event
from meetpilot.domain.punctuality import Punctuality
from meetpilot.domain.session import EventVerdict, Session, TranscriptMode, apply_event
from meetpilot.domain.status import Outcome
from meetpilot.errors import InvalidEvent


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    WRONG_BOT = "wrong_bot"  # rejected: the event names another bot than the token's session
    INVALID = "invalid"  # unreadable payload; dropped and counted
    UNKNOWN_SESSION = "unknown_session"


@dataclass(frozen=True)
class ApplyResult:
    outcome: ApplyOutcome
    session_id: str | None = None
    event: BotEvent | None = None
    status_changed: bool = False
    transcript_job_sent: bool = False
    session: Session | None = None
    punctuality: Punctuality = field(default_factory=Punctuality)  # join figures it decided (published once)

    @property
    def rejected(self) -> bool:
        """Logged and dropped: retrying cannot make the delivery valid."""
        return self.outcome in (ApplyOutcome.WRONG_BOT, ApplyOutcome.INVALID, ApplyOutcome.UNKNOWN_SESSION)


def transcript_job(session: Session, now: datetime, *, live_fallback: bool = False) -> TranscriptJob:
    job = TranscriptJob(session_id=session.session_id, bot_id=session.bot_id, attempt=0, first_attempt_at=now)
    return job.updated(live_fallback=True) if live_fallback else job


def apply_delivery(
    message: BotEventDelivery,
    *,
    repo: Sessions,
    transcript_queue: MessageQueue,
    clock: Clock,
) -> ApplyResult:
    try:
        event = read_event(message.body)  # the edge ran the same reading before it acknowledged the delivery
    except InvalidEvent:
        return ApplyResult(ApplyOutcome.INVALID)

    session = _find_session(message, event, repo)
    if session is None:
        return ApplyResult(ApplyOutcome.UNKNOWN_SESSION, event=event)

    holder: dict[str, Any] = {}

    def change(current: Session) -> Session | None:
        decision = apply_event(current, event, clock.now())
        holder["decision"] = decision
        if decision.verdict is not EventVerdict.APPLIED:
            holder["current"] = current
            return None
        return decision.session

    written = update_session(repo, session.session_id, change, clock, read=session)
    decision = holder["decision"]
    if decision.verdict is EventVerdict.WRONG_BOT:
        return ApplyResult(ApplyOutcome.WRONG_BOT, session.session_id, event)

    latest = written if written is not None else holder["current"]
    sent = False
    # The job is marked pending in the same write that decided it; it is sent afterwards and the
    # mark cleared. A crash in between leaves the mark, and the next delivery for the session
    # (even a duplicate) sends it again: at least once, and transcript_fetch is idempotent.
    if latest.transcript_job_pending:
        transcript_queue.send(transcript_job(latest, clock.now()).to_body())
        sent = True
        latest = _clear_pending(repo, latest, clock) or latest

    if decision.verdict is EventVerdict.APPLIED and _lost_post_call(decision.session, decision.outcome_decided):
        # The post-call transcription failed: the live transcript, if any, is kept as a partial one.
        transcript_queue.send(transcript_job(latest, clock.now(), live_fallback=True).to_body())
        sent = True

    if decision.verdict is EventVerdict.DUPLICATE:
        return ApplyResult(ApplyOutcome.DUPLICATE, session.session_id, event, transcript_job_sent=sent, session=latest)
    return ApplyResult(
        ApplyOutcome.APPLIED,
        session.session_id,
        event,
        status_changed=decision.status_changed,
        transcript_job_sent=sent,
        session=latest,
        punctuality=decision.punctuality,
    )


def _lost_post_call(session: Session, outcome_decided: bool) -> bool:
    return (
        outcome_decided
        and session.live_transcript
        and session.transcript_mode is TranscriptMode.POST_CALL
        and session.outcome is Outcome.TRANSCRIPTION_FAILED
    )


def _clear_pending(repo: Sessions, latest: Session, clock: Clock) -> Session | None:
    def clear(current: Session) -> Session | None:
        if not current.transcript_job_pending:
            return None
        current.transcript_job_pending = False
        return current

    return update_session(repo, latest.session_id, clear, clock, read=latest)


def _find_session(message: BotEventDelivery, event: BotEvent, repo: Sessions) -> Session | None:
    session_id = message.session_id
    if session_id:
        # The capability token named this session; only it may be touched.
        return repo.get_session(session_id)
    # Signed workspace delivery: our custom_attributes carry the session id; else look up the bot.
    attr_session = event.custom_attributes.get("session_id")
    if isinstance(attr_session, str) and attr_session:
        found = repo.get_session(attr_session)
        if found is not None:
            return found
    if event.bot_id:
        return repo.find_session_by_bot(event.bot_id)
    return None
