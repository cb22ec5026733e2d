"""Dispatch as a use case, on the in-memory ports: no stack, no server.

The same invariants the stack tests hold end to end (one bot per meeting, the key persisted before
the call, a retry replays rather than duplicates), held here by the use case itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.dispatch import (
    DispatchConfig,
    DispatchOutcome,
    MeetingRequest,
    dispatch_meeting,
    plan_dispatch,
    submit_meeting,
)
from meetpilot.app.ports import BotRequest
from meetpilot.app.reconcile import reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DispatchState
from meetpilot.domain.status import BotStatus
from meetpilot.errors import ProviderRejected, ProviderUnavailable
from meetpilot_dev.fakes.aws import MemoryDispatchScheduler, MemoryQueue, MemorySecrets
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
URL = "https://zoom.us/j/123456789?pwd=abc"
CONFIG = DispatchConfig(
    bot_name="Notetaker", public_base_url="https://hooks.example.test", transcript_provider="deepgram"
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def repo() -> MemoryRepository:
    return MemoryRepository()


@pytest.fixture
def provider() -> MemoryBotProvider:
    return MemoryBotProvider()


def _submit(repo: MemoryRepository, clock: FixedClock, start: datetime, user: str = "alice") -> str:
    meeting = submit_meeting(MeetingRequest(URL, start, user_id=user), repo=repo, clock=clock)
    return meeting.meeting_key


def _dispatch(key: str, repo: MemoryRepository, provider: MemoryBotProvider, clock: FixedClock, attempt: int = 0):
    return dispatch_meeting(
        key, attempt=attempt, repo=repo, provider=provider, secrets=MemorySecrets(), config=CONFIG, clock=clock
    )


def test_dispatch_creates_one_bot_and_the_meeting_names_it(repo, provider, clock) -> None:
    key = _submit(repo, clock, T0 + timedelta(minutes=5))
    result = _dispatch(key, repo, provider, clock)

    assert result.outcome is DispatchOutcome.CREATED
    (bot,) = provider.bots.values()
    meeting = repo.get_meeting(key)
    assert meeting is not None and meeting.dispatch_state is DispatchState.DISPATCHED
    assert meeting.bot_id == bot.bot_id == result.bot_id
    session = repo.get_session(result.session_id or "")
    assert session is not None and session.bot_id == bot.bot_id
    assert session.status is BotStatus.SCHEDULED  # created ahead with join_at
    assert f"/webhooks/meetstream/{session.session_id}/" in bot.request.callback_url


def test_a_redelivered_dispatch_makes_no_second_bot(repo, provider, clock) -> None:
    key = _submit(repo, clock, T0 + timedelta(minutes=5))
    first = _dispatch(key, repo, provider, clock)
    again = _dispatch(key, repo, provider, clock)

    assert again.outcome is DispatchOutcome.ALREADY_DISPATCHED
    assert again.bot_id == first.bot_id
    assert len(provider.bots) == 1


def test_a_retry_after_a_provider_outage_sends_the_same_idempotency_key(repo, provider, clock) -> None:
    key = _submit(repo, clock, T0 + timedelta(minutes=5))
    provider.failures["create_bot"] = [ProviderUnavailable("MeetStream create_bot failed (HTTP 503)")]

    first = _dispatch(key, repo, provider, clock)
    assert first.outcome is DispatchOutcome.RETRY and first.retry_in
    pending = repo.get_meeting(key)
    assert pending is not None and pending.dispatch_state is DispatchState.PENDING  # the lease was given back

    second = _dispatch(key, repo, provider, clock, attempt=1)
    assert second.outcome is DispatchOutcome.CREATED
    keys = [ident for op, ident in provider.calls if op == "create_bot"]
    assert len(keys) == 2 and keys[0] == keys[1] == pending.idempotency_key
    assert len(provider.bots) == 1


def test_a_crash_after_the_bot_was_made_replays_it_instead_of_making_another(repo, provider, clock) -> None:
    key = _submit(repo, clock, T0 + timedelta(minutes=5))
    claimed = repo.claim_meeting(key, now=T0, lease_seconds=90, session_id="s-crashed", idempotency_key="idem-1")
    assert claimed.idempotency_key == "idem-1"
    provider.create_bot(  # the call got through...
        BotRequest(
            meeting_url=URL, bot_name="Notetaker", callback_url="https://hooks.example.test/x", deduplication_key="k"
        ),
        idempotency_key="idem-1",
    )
    clock.advance(CONFIG.lease_seconds + 1)  # ...and the dispatcher died before recording it

    result = _dispatch(key, repo, provider, clock, attempt=1)
    assert result.outcome is DispatchOutcome.REPLAYED
    assert len(provider.bots) == 1
    meeting = repo.get_meeting(key)
    assert meeting is not None and meeting.session_id == "s-crashed" and meeting.bot_id == result.bot_id


def test_a_refused_bot_fails_the_meeting_with_the_reason(repo, provider, clock) -> None:
    key = _submit(repo, clock, T0 + timedelta(minutes=5))
    provider.failures["create_bot"] = [ProviderRejected("meeting_url is not a supported meeting link")]

    result = _dispatch(key, repo, provider, clock)

    assert result.outcome is DispatchOutcome.FAILED
    meeting = repo.get_meeting(key)
    assert meeting is not None and meeting.dispatch_state is DispatchState.FAILED
    assert "not a supported meeting link" in (meeting.failure_reason or "")
    session = repo.get_session(result.session_id or "")
    assert session is not None and session.status is BotStatus.DISPATCH_FAILED


def test_a_meeting_far_ahead_is_scheduled_at_start_minus_the_lead_time(repo, clock) -> None:
    start = T0 + timedelta(days=1)
    key = _submit(repo, clock, start)
    scheduler = MemoryDispatchScheduler()
    meeting = repo.get_meeting(key)
    assert meeting is not None

    plan = plan_dispatch(meeting, scheduler=scheduler, repo=repo, config=CONFIG, clock=clock)

    assert not plan.dispatch_now
    assert scheduler.schedules == {key: start - timedelta(seconds=CONFIG.lead_time_seconds)}
    stored = repo.get_meeting(key)
    assert stored is not None and stored.schedule_name == plan.schedule_name


def test_a_lost_schedule_is_found_by_the_reconciler_after_the_configured_lead_time() -> None:
    # Twenty minutes of lead: the meeting is due for a bot 20 min before its start, and the
    # reconciler looks a grace period after that, not after a fixed 10 minutes.
    lead = timedelta(minutes=20)
    clock = FixedClock(T0)
    repo = MemoryRepository(lead_time=lead)
    start = T0 + timedelta(hours=2)
    key = _submit(repo, clock, start)
    queue = MemoryQueue()

    def round_at(when: datetime) -> list[dict]:
        clock.set(when)
        reconcile(
            repo=repo,
            provider=MemoryBotProvider(),
            dispatch_queue=queue,
            transcript_queue=MemoryQueue(),
            clock=clock,
        )
        return queue.bodies()

    assert round_at(start - lead + timedelta(minutes=4)) == []
    assert round_at(start - lead + timedelta(minutes=5)) == [{"meeting_key": key, "attempt": 0, "source": "reconcile"}]
