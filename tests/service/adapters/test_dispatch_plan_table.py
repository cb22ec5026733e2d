"""The dispatch plan and the provider's rate in the table: concurrent planners never overbook a
slot, a release gives its place back, and a 429 overload lowers the rate once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from meetpilot.adapters.dispatch_plan import DynamoProviderRate, DynamoSlotBook
from meetpilot.domain.dispatch_plan import RateControl, RateState, SlotGrid, after_throttle
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    DynamoBackend,
    ddb_backend,
    dynamodb_local,
    moto_server,
)

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def test_concurrent_planners_never_overbook_a_slot(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    grid = SlotGrid.for_rate(3.0)
    deadline = NOW + timedelta(seconds=500)

    def planner(n: int) -> list[datetime | None]:
        book = DynamoSlotBook(ddb_backend.client, ddb_backend.table_name)  # each its own view
        return [book.claim(grid, latest=deadline, earliest=NOW) for _ in range(30)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        claimed = [at for batch in pool.map(planner, range(6)) for at in batch]

    assert all(at is not None for at in claimed)
    per_slot = Counter(grid.slot_at_or_before(at) for at in claimed if at is not None)
    assert max(per_slot.values()) <= 3
    assert all(at is not None and NOW <= at <= deadline for at in claimed)
    # 180 creates at 3 a second: packed into the 60 seconds before the deadline, none earlier.
    assert min(a for a in claimed if a is not None) >= deadline - timedelta(seconds=60)
    stored = DynamoSlotBook(ddb_backend.client, ddb_backend.table_name).counts(grid, NOW, deadline)
    assert stored == dict(per_slot)


def test_a_full_range_is_refused_and_a_release_gives_its_place_back(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    grid = SlotGrid.for_rate(1.0)
    book = DynamoSlotBook(ddb_backend.client, ddb_backend.table_name)
    deadline = NOW + timedelta(seconds=4)
    taken = [book.claim(grid, latest=deadline, earliest=NOW) for _ in range(4)]  # 4 slots over by then
    assert None not in taken and len(set(taken)) == 4
    assert book.claim(grid, latest=deadline, earliest=NOW) is None
    middle = taken[2]
    assert middle is not None
    book.release(grid, middle)
    book.release(grid, NOW + timedelta(seconds=3600))  # never claimed: stays at zero
    assert book.claim(grid, latest=deadline, earliest=NOW) == middle
    assert book.counts(grid, NOW, NOW + timedelta(seconds=3600)) == {grid.slot_at_or_before(a): 1 for a in taken}


def test_an_overload_of_429s_lowers_the_shared_rate_once(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    control = RateControl(configured=10.0, cooldown_seconds=5)
    ticks = [0.0]
    reader = DynamoProviderRate(ddb_backend.client, ddb_backend.table_name, monotonic=lambda: ticks[0])
    assert reader.current() == RateState()

    def on_429(_: int) -> bool:
        store = DynamoProviderRate(ddb_backend.client, ddb_backend.table_name)
        lowered = after_throttle(control, store.current(), NOW)
        if lowered is None:
            return False  # it read the rate another dispatcher had lowered for this overload
        return store.lower(lowered, unless_since=NOW - timedelta(seconds=control.cooldown_seconds))

    with ThreadPoolExecutor(max_workers=4) as pool:
        won = list(pool.map(on_429, range(8)))
    # A dispatcher that read the lowered rate leaves it; those that raced on "never throttled" all
    # tried to write the same halved rate, and the condition let one through: it halves once.
    assert won.count(True) == 1
    assert reader.current() == RateState()  # cached for a few seconds per warm instance
    ticks[0] += 10
    assert reader.current() == RateState(lowered_to=5.0, throttled_at=NOW)
