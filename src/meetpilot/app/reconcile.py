"""Converge what the webhooks should have told us: the reconciler.

MeetStream does not retry webhooks and sometimes never sends the one we wait for. Every few
minutes the reconciler takes the meetings and sessions whose attention time has passed (from the
sparse ``attention`` index) and converges each: a meeting past its dispatch time without a bot is
dispatched again; a session is read back from the provider (``/bots/{id}/detail``) and the missing
transitions are applied through the same code path as webhooks; a stopped session without a
transcript gets a transcript job; after ``max_attempts`` checks without an outcome it is flagged.
A last, optional step renews calendar push channels that are about to expire.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from meetpilot.app.bot_events import transcript_job
from meetpilot.app.messages import DispatchMeeting
from meetpilot.app.ports import BotProvider, Meetings, MessageQueue, Reconciling, Sessions
from meetpilot.app.sessions import update_session
from meetpilot.domain.clock import Clock
from meetpilot.domain.events import normalise_event
from meetpilot.domain.meeting import DesiredState, DispatchState
from meetpilot.domain.punctuality import Punctuality
from meetpilot.domain.session import (
    EventVerdict,
    Session,
    TranscriptMode,
    TranscriptState,
    apply_event,
    timeline_payloads,
)
from meetpilot.domain.status import Outcome
from meetpilot.errors import InvalidEvent, ProviderNotFound, ProviderRetryable


@dataclass(frozen=True)
class ReconcileConfig:
    max_attempts: int = 6
    meeting_recheck: timedelta = timedelta(minutes=10)
    batch_limit: int = 500


@dataclass
class ReconcileReport:
    checked: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    # Join figures recovered from the provider's record, by meeting key (published once each).
    punctuality: list[tuple[str, Punctuality]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"checked": self.checked, **dict(self.actions)}


def reconcile(
    *,
    repo: Reconciling,
    provider: BotProvider,
    dispatch_queue: MessageQueue,
    transcript_queue: MessageQueue,
    clock: Clock,
    config: ReconcileConfig | None = None,
    calendar_step: Callable[[], Mapping[str, int]] | None = None,
) -> ReconcileReport:
    """One round. ``calendar_step`` (channel renewal) runs after the meetings and sessions; its
    counts join the report's actions. What the round changes is announced from the table's stream,
    like every other write."""
    cfg = config or ReconcileConfig()
    report = ReconcileReport()
    for kind, ident in repo.due_for_attention(clock.now(), limit=cfg.batch_limit):
        report.checked += 1
        try:
            if kind == "meeting":
                action = _meeting(ident, repo, dispatch_queue, clock, cfg)
            else:
                action = reconcile_session(
                    ident,
                    repo=repo,
                    provider=provider,
                    transcript_queue=transcript_queue,
                    clock=clock,
                    config=cfg,
                    recorded=report.punctuality,
                )
        except Exception as exc:  # one item's trouble (throttling, a timeout) must not end the round
            action = f"error: {type(exc).__name__}"
        report.actions[action] += 1
    if calendar_step is not None:
        report.actions.update(calendar_step())
    return report


def _meeting(key: str, repo: Meetings, dispatch_queue: MessageQueue, clock: Clock, cfg: ReconcileConfig) -> str:
    meeting = repo.get_meeting(key)
    if meeting is None:
        return "missing"
    if meeting.desired is not DesiredState.RECORD or meeting.dispatch_state not in (
        DispatchState.PENDING,
        DispatchState.CLAIMED,
    ):
        return "settled"
    # Its schedule or its dispatch message was lost (or is stuck in a DLQ): dispatch again. The
    # claim and the stored idempotency key make this safe even if the first attempt got through.
    dispatch_queue.send(DispatchMeeting(meeting_key=key, attempt=0, source="reconcile").to_body())
    repo.postpone_meeting_attention(key, clock.now() + cfg.meeting_recheck)
    return "meeting_redispatched"


def reconcile_session(
    session_id: str,
    *,
    repo: Sessions,
    provider: BotProvider,
    transcript_queue: MessageQueue,
    clock: Clock,
    config: ReconcileConfig | None = None,
    recorded: list[tuple[str, Punctuality]] | None = None,
) -> str:
    """Converge one session with the provider's record of its bot; returns what was done.

    Join figures the record decided are appended to ``recorded`` (meeting key, figures)."""
    cfg = config or ReconcileConfig()
    session = repo.get_session(session_id)
    if session is None:
        return "missing"
    if session.outcome is not None:
        update_session(repo, session_id, lambda s: s, clock)  # rewrite drops it from the index
        return "settled"
    if session.reconcile_attempts >= cfg.max_attempts:
        reason = f"no outcome after {session.reconcile_attempts} reconciler checks (last status {session.status.value})"
        _flag(repo, session_id, reason, clock)
        return "flagged"
    if session.bot_id is None:
        _count_attempt(repo, session_id, clock)
        return "waiting_for_dispatch"
    try:
        detail = provider.bot_detail(session.bot_id)
    except ProviderNotFound:
        _flag(repo, session_id, f"the provider does not know bot {session.bot_id}", clock)
        return "flagged"
    except ProviderRetryable:
        return "provider_unavailable"  # the attention time stays; next round tries again

    applied = apply_provider_timeline(repo, session_id, session.bot_id, detail, clock, recorded=recorded)

    latest = repo.get_session(session_id)
    assert latest is not None
    if (
        latest.outcome is None
        and latest.status.is_terminal
        and (
            latest.transcript_mode is TranscriptMode.POST_CALL
            or (latest.transcript_mode is TranscriptMode.STREAMING and latest.live_transcript)
        )
        and latest.transcript_state is TranscriptState.NONE
    ):
        # Stopped without a transcript job: ask for the transcript (202 just means "not yet").
        def queue_job(current: Session) -> Session | None:
            if current.transcript_state is not TranscriptState.NONE or current.outcome is not None:
                return None
            current.transcript_state = TranscriptState.QUEUED
            current.transcript_job_pending = True
            return current

        latest = update_session(repo, session_id, queue_job, clock) or latest
    if (
        latest.outcome is None
        and latest.transcript_state is TranscriptState.QUEUED
        and not latest.transcript_job_pending
    ):
        if latest.transcript_tries != latest.transcript_tries_seen:
            # The fetcher has tried since the last look (the transcript is slow, not lost): its own
            # budget decides when to give up, so this check does not count against the session.
            _mark_seen(repo, session_id, latest.transcript_tries, clock)
            return "transcript_in_progress"
        # No fetch since the last look: the job may be lost (or parked in the DLQ). Send another;
        # a second copy of a live job is harmless (the fetcher stores a transcript once).
        latest.transcript_job_pending = True
    if latest.transcript_job_pending:
        transcript_queue.send(transcript_job(latest, clock.now()).to_body())

        def sent(current: Session) -> Session | None:
            current.transcript_job_pending = False
            return current

        update_session(repo, session_id, sent, clock)
        _count_attempt(repo, session_id, clock)
        return "transcript_requested"
    _count_attempt(repo, session_id, clock)
    return "transitions_applied" if applied else "no_change"


def apply_provider_timeline(
    repo: Sessions,
    session_id: str,
    bot_id: str,
    detail: Mapping[str, Any],
    clock: Clock,
    *,
    recorded: list[tuple[str, Punctuality]] | None = None,
) -> int:
    """Apply every transition the provider's record shows; return how many changed the session."""
    return sum(
        _apply_payload(repo, session_id, payload, clock, recorded) for payload in timeline_payloads(bot_id, detail)
    )


def _apply_payload(
    repo: Sessions,
    session_id: str,
    payload: dict[str, object],
    clock: Clock,
    recorded: list[tuple[str, Punctuality]] | None = None,
) -> bool:
    """One recovered transition, through the same state machine as a webhook. True if it changed."""
    try:
        event = normalise_event(payload)
    except InvalidEvent:
        return False

    decided: list[Punctuality] = []

    def change(current: Session) -> Session | None:
        decision = apply_event(current, event, clock.now(), source="reconcile")
        decided[:] = [decision.punctuality]
        return decision.session if decision.verdict is EventVerdict.APPLIED else None

    written = update_session(repo, session_id, change, clock)
    if written is not None and recorded is not None and not decided[0].empty:
        recorded.append((written.meeting_key, decided[0]))
    return written is not None


def _count_attempt(repo: Sessions, session_id: str, clock: Clock) -> None:
    def bump(current: Session) -> Session | None:
        if current.outcome is not None:
            return None
        current.reconcile_attempts += 1
        return current

    update_session(repo, session_id, bump, clock)


def _mark_seen(repo: Sessions, session_id: str, tries: int, clock: Clock) -> None:
    def mark(current: Session) -> Session | None:
        if current.outcome is not None:
            return None
        current.transcript_tries_seen = tries
        return current

    update_session(repo, session_id, mark, clock)


def _flag(repo: Sessions, session_id: str, reason: str, clock: Clock) -> None:
    def flag(current: Session) -> Session | None:
        if current.outcome is not None:
            return None
        current.outcome = Outcome.GAVE_UP
        current.outcome_reason = reason[:500]
        return current

    update_session(repo, session_id, flag, clock)
