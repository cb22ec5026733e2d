"""Dispatch planning as a use case: slots before start minus lead, creates held to their slot,
released slots reused, and the rate lowered on 429 and restored. The plan and the rate live in a
real (emulated) table; the provider is the in-memory one, whose failures a test can queue."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.adapters.dispatch_plan import DynamoProviderRate, DynamoSlotBook
from meetpilot.app.dispatch import (
    DispatchConfig,
    DispatchOutcome,
    MeetingRequest,
    RateGuard,
    dispatch_meeting,
    plan_dispatch,
    submit_meeting,
)
from meetpilot.app.meeting_requests import withdraw_meeting_request
from meetpilot.app.ports import BotRequest
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.dispatch_plan import SlotGrid
from meetpilot.errors import ProviderRateLimited
from meetpilot_dev.fakes.aws import MemoryDispatchScheduler, MemorySecrets
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    DynamoBackend,
    ddb_backend,
    dynamodb_local,
    moto_server,
)

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
LEAD = 120
RATE = 2.0
CONFIG = DispatchConfig(
    bot_name="Notetaker",
    public_base_url="https://hooks.example.test",
    transcript_provider="deepgram",
    lead_time_seconds=LEAD,
    create_rate_per_second=RATE,
)


def _url(i: int) -> str:
    return f"https://meet.google.com/abc-{i:04d}-xyz"


def _submit(repo: MemoryRepository, clock: FixedClock, i: int, start: datetime) -> str:
    return submit_meeting(MeetingRequest(_url(i), start, user_id="alice"), repo=repo, clock=clock).meeting_key


def test_a_burst_bigger_than_rate_times_lead_is_planned_earlier_and_held_to_its_slots() -> None:
    clock, repo, provider = FixedClock(T0), MemoryRepository(), MemoryBotProvider()
    scheduler = MemoryDispatchScheduler(create_rate_per_second=RATE)
    start = T0 + timedelta(minutes=20)
    keys = [_submit(repo, clock, i, start + timedelta(seconds=i % 60)) for i in range(600)]  # 300 s of creates
    plans = [
        plan_dispatch(repo.get_meeting(k), scheduler=scheduler, repo=repo, config=CONFIG, clock=clock) for k in keys
    ]

    slots = [p.dispatch_at for p in plans]
    assert all(
        at is not None and at <= p.meeting.start - timedelta(seconds=LEAD) for at, p in zip(slots, plans, strict=True)
    )
    assert max(Counter(slots).values()) <= RATE
    assert min(s for s in slots if s) <= start - timedelta(seconds=LEAD + 240)  # spread earlier, well ahead
    # Each schedule fires a minute ahead of its slot's minute; the dispatcher waits for the slot.
    first = min(plans, key=lambda p: p.dispatch_at or start)
    assert first.dispatch_at is not None and scheduler.schedules[first.meeting.meeting_key] < first.dispatch_at
    clock.set(scheduler.schedules[first.meeting.meeting_key])
    early = dispatch_meeting(
        first.meeting.meeting_key,
        attempt=0,
        repo=repo,
        provider=provider,
        secrets=MemorySecrets(),
        config=CONFIG,
        clock=clock,
    )
    assert early.outcome is DispatchOutcome.NOT_YET and not provider.bots
    assert early.retry_in == (first.dispatch_at - clock.now()).total_seconds()
    clock.set(first.dispatch_at)
    on_time = dispatch_meeting(
        first.meeting.meeting_key,
        attempt=0,
        repo=repo,
        provider=provider,
        secrets=MemorySecrets(),
        config=CONFIG,
        clock=clock,
    )
    assert on_time.outcome is DispatchOutcome.CREATED
    (bot,) = provider.bots.values()
    assert bot.request.join_at == first.meeting.start  # created ahead, joins at the start


def test_a_cancelled_meeting_gives_its_slot_to_the_next_one() -> None:
    clock, repo, provider = FixedClock(T0), MemoryRepository(), MemoryBotProvider()
    scheduler = MemoryDispatchScheduler(create_rate_per_second=1.0)
    config = DispatchConfig(
        bot_name="n",
        public_base_url="https://h.test",
        transcript_provider=None,
        lead_time_seconds=LEAD,
        create_rate_per_second=1.0,
    )
    start = T0 + timedelta(minutes=30)
    first = _submit(repo, clock, 1, start)
    planned = plan_dispatch(repo.get_meeting(first), scheduler=scheduler, repo=repo, config=config, clock=clock)
    assert planned.dispatch_at == start - timedelta(seconds=LEAD + 1)  # its one-second slot ends at the deadline
    withdrawn = withdraw_meeting_request(first, repo=repo, scheduler=scheduler, provider=provider, clock=clock)
    assert withdrawn == "cancelled"
    assert first not in scheduler.schedules
    other = _submit(repo, clock, 2, start)
    again = plan_dispatch(repo.get_meeting(other), scheduler=scheduler, repo=repo, config=config, clock=clock)
    assert again.dispatch_at == planned.dispatch_at  # the freed slot, not the one before it


@pytest.fixture
def guard(ddb_backend: DynamoBackend) -> RateGuard:  # noqa: F811
    return RateGuard(
        rate=DynamoProviderRate(ddb_backend.client, ddb_backend.table_name, cache_seconds=0),
        gate=DynamoSlotBook(ddb_backend.client, ddb_backend.table_name, kind="GATE"),
        sleep=lambda _: None,
    )


def test_the_rate_is_lowered_while_the_provider_answers_429_and_restored_when_it_stops(guard: RateGuard) -> None:
    clock, repo, provider = FixedClock(T0), MemoryRepository(), MemoryBotProvider()
    config = DispatchConfig(
        bot_name="n",
        public_base_url="https://h.test",
        transcript_provider=None,
        lead_time_seconds=LEAD,
        create_rate_per_second=10.0,
    )
    start = T0 + timedelta(seconds=LEAD + 30)
    keys = [_submit(repo, clock, i, start) for i in range(40)]

    def dispatch(key: str):
        return dispatch_meeting(
            key,
            attempt=0,
            repo=repo,
            provider=provider,
            secrets=MemorySecrets(),
            config=config,
            clock=clock,
            guard=guard,
        )

    provider.failures["create_bot"] = [ProviderRateLimited("Request was throttled.", status=429, retry_after=1)]
    assert dispatch(keys[0]).outcome is DispatchOutcome.RETRY
    assert guard.rate.current().lowered_to == 5.0
    # At 5 a second the gate admits five creates a second over the next moment (the two seconds
    # that are over by its horizon: 10 places) and sends the rest to come back later.
    outcomes = Counter(dispatch(k).outcome for k in keys[1:26])
    grid = SlotGrid.for_rate(5.0)
    per_slot = DynamoSlotBook.counts(guard.gate, grid, clock.now(), clock.now() + timedelta(seconds=3))  # type: ignore[arg-type]
    assert max(per_slot.values()) <= 5
    assert outcomes == {DispatchOutcome.CREATED: 10, DispatchOutcome.NOT_YET: 15}
    assert sum(per_slot.values()) == 10
    # The 429s stop: after the hold the rate climbs back, and at the configured rate the gate is off.
    clock.advance(30 + 120 + 1)
    assert dispatch(keys[0]).outcome is DispatchOutcome.CREATED
    created_before = len(provider.bots)
    assert all(dispatch(k).outcome is DispatchOutcome.CREATED for k in keys[26:40])
    assert len(provider.bots) == created_before + 14


def test_a_dispatch_sends_join_at_the_start_and_the_bot_request_is_unchanged_by_planning() -> None:
    clock, repo, provider = FixedClock(T0), MemoryRepository(), MemoryBotProvider()
    scheduler = MemoryDispatchScheduler(create_rate_per_second=RATE)
    start = T0 + timedelta(seconds=LEAD + 30)
    key = _submit(repo, clock, 7, start)
    plan = plan_dispatch(repo.get_meeting(key), scheduler=scheduler, repo=repo, config=CONFIG, clock=clock)
    assert plan.dispatch_now and plan.dispatch_at == start - timedelta(seconds=LEAD + 1)  # too close for a schedule
    assert key not in scheduler.schedules
    clock.set(plan.dispatch_at)
    done = dispatch_meeting(
        key, attempt=0, repo=repo, provider=provider, secrets=MemorySecrets(), config=CONFIG, clock=clock
    )
    assert done.outcome is DispatchOutcome.CREATED
    (bot,) = provider.bots.values()
    assert isinstance(bot.request, BotRequest) and bot.request.join_at == start


def test_a_rate_lowered_below_one_create_every_two_seconds_still_admits_creates(guard: RateGuard) -> None:
    # At 1 a second a 429 halves the rate to 0.5: the gate's slots are two seconds long. A dispatch
    # that arrives inside a slot must get the next one, not be deferred for ever (no bot at all).
    clock, repo, provider = FixedClock(T0), MemoryRepository(), MemoryBotProvider()
    config = DispatchConfig(
        bot_name="n",
        public_base_url="https://h.test",
        transcript_provider=None,
        lead_time_seconds=LEAD,
        create_rate_per_second=1.0,
    )
    start = T0 + timedelta(seconds=LEAD + 60)
    keys = [_submit(repo, clock, i, start) for i in range(3)]

    def dispatch(key: str):
        return dispatch_meeting(
            key,
            attempt=0,
            repo=repo,
            provider=provider,
            secrets=MemorySecrets(),
            config=config,
            clock=clock,
            guard=guard,
        )

    provider.failures["create_bot"] = [ProviderRateLimited("Request was throttled.", status=429, retry_after=1)]
    assert dispatch(keys[0]).outcome is DispatchOutcome.RETRY
    assert guard.rate.current().lowered_to == 0.5
    created = []
    for offset in (0.5, 1.3, 0.7, 1.9, 0.4, 1.1):  # never on a slot boundary
        clock.advance(offset)
        created += [k for k in keys if k not in created and dispatch(k).outcome is DispatchOutcome.CREATED]
    assert sorted(created) == sorted(keys)
    # ...and never two in one gate slot: the lowered rate holds.
    grid = SlotGrid.for_rate(0.5)
    per_slot = DynamoSlotBook.counts(guard.gate, grid, T0, clock.now() + timedelta(seconds=4))  # type: ignore[arg-type]
    assert sum(per_slot.values()) == 3 and max(per_slot.values()) == 1
