"""Dispatch a bot for a meeting: claim it, persist the idempotency key, ask the provider once.

Exactly one bot per meeting holds under duplicate messages, concurrent dispatchers and a crash
between "the provider created the bot" and "we recorded it": the claim is a conditional write,
and a retry reuses the stored Idempotency-Key, which MeetStream answers with the original bot.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from meetpilot.app.bot_settings import resolve_bot
from meetpilot.app.cancellation import withdraw_bot
from meetpilot.app.ports import (
    BotProvider,
    BotRequest,
    BotSettingsLookup,
    ClaimUnavailable,
    DispatchRepository,
    DispatchScheduler,
    Meetings,
    MeetingsAndSessions,
    ProviderRate,
    Secrets,
    SlotGate,
)
from meetpilot.app.sessions import update_session
from meetpilot.domain.bot_settings import EffectiveBot
from meetpilot.domain.clock import Clock
from meetpilot.domain.dispatch_plan import RateControl, SlotGrid, after_throttle, effective_rate
from meetpilot.domain.meeting import DesiredState, DispatchState, Meeting
from meetpilot.domain.retry import retry_delay
from meetpilot.domain.session import Session, TranscriptMode
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.domain.webhook_auth import capability_token
from meetpilot.errors import (
    InvalidInput,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderRetryable,
)

# The original design's automatic_leave values: leave a waiting room after 5 minutes, an empty
# meeting after 1, a silent one after 10.
DEFAULT_AUTOMATIC_LEAVE: Mapping[str, int] = {
    "waiting_room_timeout": 300,
    "everyone_left_timeout": 60,
    "voice_inactivity_timeout": 600,
}


@dataclass(frozen=True)
class DispatchConfig:
    bot_name: str
    public_base_url: str
    transcript_provider: str | None
    lease_seconds: int = 90
    # Dispatch this long before the start (the scheduled bot then waits for join_at).
    lead_time_seconds: int = 600
    # EventBridge Scheduler fires within the minute; a dispatch due sooner than this goes now.
    schedule_margin_seconds: int = 60
    # Send join_at only when the meeting starts at least this far ahead; otherwise join now.
    join_margin_seconds: int = 15
    # Stop retrying once the meeting has been running this long without a bot.
    give_up_after_start_seconds: int = 900
    # A cancelled meeting whose bot is already in the call: remove it (True) or let it record.
    remove_bot_on_cancel: bool = True
    automatic_leave: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_AUTOMATIC_LEAVE))
    # Ask for live transcription (its own capability-token URL); the settings turn it on for
    # streaming providers by default.
    live_transcripts: bool = False
    # The provider's create rate (creates a second): dispatch times are planned so that no slot holds
    # more creates than this. None: no plan, every meeting is dispatched at start minus lead time.
    create_rate_per_second: float | None = None

    @property
    def plan_grid(self) -> SlotGrid | None:
        return SlotGrid.for_rate(self.create_rate_per_second) if self.create_rate_per_second else None

    @property
    def rate_control(self) -> RateControl | None:
        return RateControl(self.create_rate_per_second) if self.create_rate_per_second else None


@dataclass(frozen=True)
class RateGuard:
    """What a dispatcher needs to keep to the provider's rate while it answers 429: the rate state
    and the gate that spreads creates at the lowered rate (see ``domain.dispatch_plan.RateControl``)."""

    rate: ProviderRate
    gate: SlotGate
    sleep: Callable[[float], None] = time.sleep
    # A gate slot this close is waited for in the invocation; a later one is a delayed message.
    wait_seconds: float = 2.0


class DispatchOutcome(StrEnum):
    CREATED = "created"
    REPLAYED = "replayed"  # the provider returned the bot it created on an earlier attempt
    ALREADY_DISPATCHED = "already_dispatched"
    SKIPPED = "skipped"  # cancelled, failed earlier, or unknown meeting
    RETRY = "retry"  # try again after retry_in seconds
    NOT_YET = "not_yet"  # its planned slot (or the lowered rate's next free one) is retry_in seconds away
    FAILED = "failed"  # the provider refused the bot; the meeting is marked failed
    CANCELLED = "cancelled"  # the meeting was cancelled while its bot was being created; bot withdrawn


@dataclass(frozen=True)
class DispatchResult:
    outcome: DispatchOutcome
    meeting_key: str
    bot_id: str | None = None
    session_id: str | None = None
    retry_in: float | None = None
    reason: str | None = None
    planned_at: datetime | None = None  # when the bot was meant to be dispatched (schedule or start - lead)
    calendar_event_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeetingRequest:
    """An ad-hoc "record this meeting" request."""

    meeting_url: str
    start: datetime
    end: datetime | None = None
    title: str = ""
    user_id: str | None = None


def submit_meeting(request: MeetingRequest, *, repo: Meetings, clock: Clock) -> Meeting:
    """Record an ad-hoc meeting (or add this user to the same meeting submitted before).

    Asking for a meeting that was cancelled in the calendars brings it back (with a fresh session).
    """
    now = clock.now()
    end = request.end or request.start + timedelta(hours=1)
    if end <= now:
        raise InvalidInput("the meeting has already ended; nothing to record")
    meeting = Meeting.new(
        request.meeting_url, request.start, end=request.end, title=request.title, user_id=request.user_id, adhoc=True
    )
    stored, _ = repo.add_meeting(meeting, now)
    if stored.desired is DesiredState.CANCELLED:
        stored = repo.revive_meeting(stored.meeting_key) or stored
    return stored


@dataclass(frozen=True)
class Plan:
    """When a meeting's bot will be dispatched: now, or by a schedule at ``dispatch_at``."""

    meeting: Meeting
    dispatch_now: bool
    dispatch_at: datetime | None = None
    schedule_name: str | None = None


# A slot this close is waited for in the invocation (an SQS delay is whole seconds).
HOLD_IN_PROCESS_SECONDS = 1.0
# The name stored for a dispatch placed by a delayed SQS message rather than a schedule.
QUEUED = "queued"


def plan_dispatch(
    meeting: Meeting, *, scheduler: DispatchScheduler, repo: Meetings, config: DispatchConfig, clock: Clock
) -> Plan:
    """Give the meeting its dispatch slot and schedule it, or say it is due now.

    With a create rate, the slot is the latest free one at or before start minus lead time (a
    burst spreads earlier); a burst too big even for that takes the latest free slot before the
    join time. The schedule fires a minute ahead of the slot (Scheduler's ``at()`` is precise to
    the minute) and the dispatcher holds the message back to the slot. A slot closer than the
    Scheduler can place comes back as ``dispatch_now`` with ``dispatch_at``: the caller sends the
    message with that delay. Planning a meeting again keeps its slot and moves its one schedule.
    """
    if meeting.dispatch_state is not DispatchState.PENDING or meeting.desired is not DesiredState.RECORD:
        return Plan(meeting, dispatch_now=False)
    now = clock.now()
    deadline = meeting.start - timedelta(seconds=config.lead_time_seconds)
    grid = config.plan_grid
    at = deadline
    fire_at = deadline
    if grid is not None:
        claimed = meeting.dispatch_at or _claim(meeting, scheduler, deadline, config, now)
        if claimed is None:
            return Plan(meeting, dispatch_now=True)  # not a free slot before the join time: now
        at = claimed
        fire_at = (at - timedelta(seconds=60)).replace(second=0, microsecond=0)
    if fire_at <= now + timedelta(seconds=config.schedule_margin_seconds):
        if grid is None:
            return Plan(meeting, dispatch_now=True)
        if meeting.dispatch_at != at:
            repo.set_dispatch_schedule(meeting.meeting_key, QUEUED, at)
        return Plan(meeting, dispatch_now=True, dispatch_at=at)
    name = scheduler.schedule(meeting.meeting_key, fire_at)
    repo.set_dispatch_schedule(meeting.meeting_key, name, at)
    return Plan(meeting, dispatch_now=False, dispatch_at=at, schedule_name=name)


def _claim(
    meeting: Meeting, scheduler: DispatchScheduler, deadline: datetime, config: DispatchConfig, now: datetime
) -> datetime | None:
    earliest = now + timedelta(seconds=1)
    at = scheduler.claim_slot(latest=deadline, earliest=earliest)
    if at is None:
        join_by = meeting.start - timedelta(seconds=config.join_margin_seconds)
        at = scheduler.claim_slot(latest=join_by, earliest=earliest)
    return at


def delay_until(at: datetime | None, now: datetime) -> int:
    """Whole seconds from ``now`` to ``at``, rounded down (the dispatcher waits out the rest), 0
    when it has come."""
    return max(0, math.floor((at - now).total_seconds())) if at is not None else 0


def callback_url(base_url: str, session_id: str, secret: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/meetstream/{session_id}/{capability_token(secret, session_id)}"


def live_transcript_url(base_url: str, session_id: str, secret: str) -> str:
    token = capability_token(secret, session_id, live=True)
    return f"{base_url.rstrip('/')}/webhooks/meetstream/live/{session_id}/{token}"


def bot_for(meeting: Meeting, *, lookup: BotSettingsLookup, config: DispatchConfig) -> EffectiveBot:
    """The settings of the meeting's bot, read now: a change made after the meeting was scheduled counts.

    Owning calendar event's override > that calendar > its user > the stack (see ``app.bot_settings``).
    """
    return resolve_bot(
        meeting,
        lookup=lookup,
        bot_name=config.bot_name,
        transcript_provider=config.transcript_provider,
        live_transcripts=config.live_transcripts,
        automatic_leave=dict(config.automatic_leave),
    )


def dispatch_meeting(
    meeting_key: str,
    *,
    attempt: int,
    repo: DispatchRepository,
    provider: BotProvider,
    secrets: Secrets,
    config: DispatchConfig,
    clock: Clock,
    guard: RateGuard | None = None,
) -> DispatchResult:
    """Create the meeting's bot, not before its planned slot and not above the provider's rate."""
    now = clock.now()
    meeting = repo.get_meeting(meeting_key)
    if meeting is None:
        return DispatchResult(DispatchOutcome.SKIPPED, meeting_key, reason="no such meeting")
    if meeting.desired is not DesiredState.RECORD:
        return DispatchResult(DispatchOutcome.SKIPPED, meeting_key, reason="meeting was cancelled")
    if meeting.dispatch_state is DispatchState.DISPATCHED:
        return DispatchResult(
            DispatchOutcome.ALREADY_DISPATCHED,
            meeting_key,
            bot_id=meeting.bot_id,
            session_id=meeting.session_id,
        )
    if meeting.dispatch_state is DispatchState.FAILED:
        return DispatchResult(DispatchOutcome.SKIPPED, meeting_key, reason=meeting.failure_reason)
    wait = _wait_for_slot(meeting, config, guard, now)
    if wait > 0:
        return DispatchResult(DispatchOutcome.NOT_YET, meeting_key, retry_in=wait)
    now = clock.now()

    try:
        claimed = repo.claim_meeting(
            meeting_key,
            now=now,
            lease_seconds=config.lease_seconds,
            session_id=uuid.uuid4().hex,
            idempotency_key=str(uuid.uuid4()),
        )
    except ClaimUnavailable as busy:
        if busy.retry_in_seconds is not None:
            # Another dispatcher holds the lease; come back when it expires, in case it crashed.
            return DispatchResult(DispatchOutcome.RETRY, meeting_key, retry_in=busy.retry_in_seconds)
        return DispatchResult(DispatchOutcome.SKIPPED, meeting_key, reason=f"meeting is {busy.state}")

    session_id = claimed.session_id
    idempotency_key = claimed.idempotency_key
    assert session_id is not None and idempotency_key is not None
    bot = bot_for(claimed, lookup=repo, config=config)
    fresh = Session(
        session_id=session_id,
        meeting_key=meeting_key,
        transcript_mode=TranscriptMode.for_provider(bot.transcript_provider),
        live_transcript=bot.live_transcripts,
        meeting_start=claimed.start,
    )
    # A replayed claim finds its session already made: then it is read before the bot is recorded.
    created_session = repo.create_session(fresh, now)
    secret = secrets.token_secrets()[0]

    join_at = claimed.start if claimed.start > now + timedelta(seconds=config.join_margin_seconds) else None
    request = BotRequest(
        meeting_url=claimed.meeting_url,
        bot_name=bot.bot_name,
        callback_url=callback_url(config.public_base_url, session_id, secret),
        deduplication_key=claimed.deduplication_key,
        join_at=join_at,
        custom_attributes={"meeting_key": meeting_key, "session_id": session_id},
        transcript_provider=bot.transcript_provider,
        automatic_leave=bot.automatic_leave,
        live_transcription_url=(
            live_transcript_url(config.public_base_url, session_id, secret) if bot.live_transcripts else None
        ),
    )
    try:
        created = provider.create_bot(request, idempotency_key=idempotency_key)
    except ProviderAuthError:
        repo.release_claim(meeting_key, session_id)
        raise  # a configuration problem: let the message fail, reach the DLQ, and be redriven
    except ProviderRetryable as exc:
        repo.release_claim(meeting_key, session_id)
        if isinstance(exc, ProviderRateLimited) and guard is not None:
            _slow_down(guard, config, clock.now())
        if now > claimed.start + timedelta(seconds=config.give_up_after_start_seconds):
            reason = f"provider still unavailable {config.give_up_after_start_seconds // 60} min after start: {exc}"
            _fail(repo, meeting_key, session_id, reason, clock)
            return DispatchResult(DispatchOutcome.FAILED, meeting_key, session_id=session_id, reason=reason)
        return DispatchResult(
            DispatchOutcome.RETRY,
            meeting_key,
            session_id=session_id,
            retry_in=retry_delay(attempt, exc.retry_after),
            reason=str(exc),
        )
    except ProviderRejected as exc:
        reason = f"MeetStream refused the bot: {exc}"
        _fail(repo, meeting_key, session_id, reason, clock)
        return DispatchResult(DispatchOutcome.FAILED, meeting_key, session_id=session_id, reason=reason)

    status = BotStatus.SCHEDULED if join_at is not None else BotStatus.JOINING

    def record(session: Session) -> Session | None:
        unchanged = session.bot_id == created.bot_id and session.transcript_id == created.transcript_id
        if unchanged and session.status.rank >= status.rank:
            return None
        if session.bot_id not in (None, created.bot_id):
            # Should be impossible with idempotency keys; keep the first bot and shout about it.
            raise InvalidInput(
                f"session {session.session_id} already has bot {session.bot_id}, provider returned {created.bot_id}"
            )
        session.bot_id = created.bot_id
        session.transcript_id = created.transcript_id or session.transcript_id
        if session.status.rank < status.rank:
            session.status = status
        return session

    update_session(repo, session_id, record, clock, read=fresh if created_session else None)
    finished = repo.finish_dispatch(
        meeting_key, state=DispatchState.DISPATCHED, bot_id=created.bot_id, session_id=session_id
    )
    # The meeting may have been cancelled (and even revived with a new session) while the provider
    # was creating this bot: the canceller could not know the bot yet, so withdraw it here.
    latest = repo.get_meeting(meeting_key)
    if not finished or latest is None or latest.desired is not DesiredState.RECORD or latest.session_id != session_id:
        action = withdraw_bot(
            session_id,
            repo=repo,
            provider=provider,
            clock=clock,
            remove_in_meeting=True,  # it was never wanted in this meeting, whatever the setting
            reason="the meeting was cancelled while its bot was being created",
        )
        return DispatchResult(
            DispatchOutcome.CANCELLED, meeting_key, bot_id=created.bot_id, session_id=session_id, reason=action
        )
    return DispatchResult(
        DispatchOutcome.REPLAYED if created.replayed else DispatchOutcome.CREATED,
        meeting_key,
        bot_id=created.bot_id,
        session_id=session_id,
        planned_at=_planned_at(claimed, config),
        calendar_event_ids=tuple(claimed.calendar_event_ids),
    )


def _wait_for_slot(meeting: Meeting, config: DispatchConfig, guard: RateGuard | None, now: datetime) -> int:
    """Seconds to hold the message back: until (about) the planned slot, then while the lowered
    rate's gate has no place in the next moment. 0: create now."""
    if config.plan_grid is None:
        return 0
    sleep = guard.sleep if guard is not None else time.sleep
    if meeting.dispatch_at is not None and meeting.dispatch_at > now:
        # An SQS delay is whole seconds: wait for the slot's last second here, so the creates of
        # one slot do not spill into the next one's and together exceed the rate.
        early = (meeting.dispatch_at - now).total_seconds()
        if early > HOLD_IN_PROCESS_SECONDS:
            return math.floor(early)
        sleep(early)
    control = config.rate_control
    if guard is None or control is None:
        return 0
    rate = effective_rate(control, guard.rate.current(), now)
    if rate >= control.configured:
        # The plan already keeps every slot within the rate. Sending creates that missed their
        # slot through the gate too was measured on the local burst: once the dispatcher is behind,
        # every late create bounced off a full gate again and again (8 records and 39 AWS calls a
        # meeting against 5.6 and about 9), which put it further behind.
        return 0
    grid = SlotGrid.for_rate(rate)
    at = guard.gate.claim(grid, latest=_gate_horizon(grid, guard, now), earliest=now, latest_first=False)
    if at is None:
        # Every place in the next moment is taken: come back when the creates queued ahead of this
        # one have had their turn (spread, so the deferred do not all return in the same second).
        return max(1, math.ceil(grid.slot_seconds * (1 + (hash(meeting.meeting_key) % 10))))
    if at > now:
        guard.sleep((at - now).total_seconds())
    return 0


def _gate_horizon(grid: SlotGrid, guard: RateGuard, now: datetime) -> datetime:
    """The gate's ``latest`` for a claim at ``now``: every slot that *starts* within the next
    ``max(wait_seconds, slot_seconds)`` is over by it.

    A claim takes slots that are over by ``latest``; ``now + horizon`` alone holds no whole slot
    when the horizon is one slot long and ``now`` falls inside a slot (a lowered rate under one
    create every two seconds): the gate would then never admit a create and every meeting would
    be deferred past its start. Rounding up to the next slot boundary always leaves the next slot.
    """
    horizon = timedelta(seconds=max(guard.wait_seconds, grid.slot_seconds))
    return grid.start_of(grid.slot_at_or_after(now + horizon))


def _slow_down(guard: RateGuard, config: DispatchConfig, now: datetime) -> None:
    """The provider answered 429: lower the shared rate, once per overload (the rule's cooldown)."""
    control = config.rate_control
    if control is None:
        return
    lowered = after_throttle(control, guard.rate.current(), now)
    if lowered is not None:
        guard.rate.lower(lowered, unless_since=now - timedelta(seconds=control.cooldown_seconds))


def _planned_at(meeting: Meeting, config: DispatchConfig) -> datetime:
    """When the bot was due to be dispatched: its schedule, else start minus lead time, but never
    before the meeting was known (a meeting added at the last minute is not late by design)."""
    planned = meeting.dispatch_at or meeting.start - timedelta(seconds=config.lead_time_seconds)
    if meeting.created_at is not None and meeting.created_at > planned:
        return meeting.created_at
    return planned


def _fail(repo: MeetingsAndSessions, meeting_key: str, session_id: str, reason: str, clock: Clock) -> None:
    def mark(session: Session) -> Session | None:
        if session.outcome is not None:
            return None
        session.status = BotStatus.DISPATCH_FAILED
        session.outcome = Outcome.DISPATCH_FAILED
        session.outcome_reason = reason[:500]
        return session

    update_session(repo, session_id, mark, clock)
    repo.finish_dispatch(meeting_key, state=DispatchState.FAILED, reason=reason, session_id=session_id)
