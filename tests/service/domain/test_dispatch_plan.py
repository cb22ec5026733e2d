"""The dispatch planner's guarantees: no slot over the rate, no create later than start minus lead,
kept through adds, moves and cancels; and fast enough for a working day of meetings."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from meetpilot.domain.dispatch_plan import (
    CapacityPlan,
    RateControl,
    RateState,
    SlotGrid,
    after_throttle,
    effective_rate,
)

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
LEAD = timedelta(seconds=120)


def _check(plan: CapacityPlan, placed: dict[int, tuple[datetime, datetime]]) -> None:
    grid = plan.grid
    per_slot = Counter(grid.slot_at_or_before(at) for at, _ in placed.values())
    assert all(n <= grid.capacity for n in per_slot.values())
    assert all(at <= start - LEAD for at, start in placed.values())
    assert all(at >= NOW for at, _ in placed.values())
    # What the plan counts is what the meetings hold: releases gave back exactly their slots.
    assert {s: n for s, n in plan.counts().items() if n} == dict(per_slot)


def _any_window_fits(grid: SlotGrid, times: list[datetime], window_slots: int) -> None:
    slots = sorted(grid.slot_at_or_before(t) for t in times)
    j = 0
    for i, slot in enumerate(slots):
        while slots[j] <= slot - window_slots:
            j += 1
        assert i - j + 1 <= grid.capacity * window_slots


operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "move", "cancel"]),
        st.integers(min_value=0, max_value=40),  # meeting id
        st.integers(min_value=130, max_value=400),  # start, seconds after NOW
    ),
    max_size=150,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(rate=st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.5, 10.0]), ops=operations)
def test_adds_moves_and_cancels_never_overbook_and_never_pass_the_deadline(
    rate: float, ops: list[tuple[str, int, int]]
) -> None:
    plan = CapacityPlan(SlotGrid.for_rate(rate))
    placed: dict[int, tuple[datetime, datetime]] = {}
    for op, meeting, offset in ops:
        start = NOW + timedelta(seconds=offset)
        if op in ("move", "cancel") and meeting in placed:
            plan.release(placed.pop(meeting)[0])
        if op in ("add", "move") and meeting not in placed:
            at = plan.claim(latest=start - LEAD, earliest=NOW)
            if at is None:
                # Refused only when every slot up to the deadline is taken.
                grid = plan.grid
                lo, hi = grid.slot_at_or_after(NOW), grid.last_slot_ending_by(start - LEAD)
                assert all(plan.count(s) >= grid.capacity for s in range(lo, hi + 1))
            else:
                placed[meeting] = (at, start)
        _check(plan, placed)
    _any_window_fits(plan.grid, [at for at, _ in placed.values()], window_slots=3)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    rate=st.sampled_from([1.0, 5.0, 10.0]),
    meetings=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_a_burst_on_one_start_spreads_earlier_and_fits_when_the_time_allows(
    rate: float, meetings: int, seed: int
) -> None:
    plan = CapacityPlan(SlotGrid.for_rate(rate))
    start = NOW + LEAD + timedelta(seconds=400)
    starts = [start + timedelta(seconds=random.Random(seed + i).randrange(60)) for i in range(meetings)]
    placed = {i: (plan.claim(latest=s - LEAD, earliest=NOW), s) for i, s in enumerate(starts)}
    assert all(at is not None for at, _ in placed.values())  # 400 s at >= 1/s holds 400 creates
    _check(plan, {i: (at, s) for i, (at, s) in placed.items() if at is not None})


def test_a_working_day_of_100000_meetings_with_10000_in_one_minute_plans_in_under_10_s_of_cpu() -> None:
    rng = random.Random(15)
    day = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    lead = timedelta(seconds=600)
    top = day + timedelta(hours=4)  # 12:00, the minute everybody meets
    starts = [top + timedelta(seconds=rng.randrange(60)) for _ in range(10_000)]
    starts += [day + timedelta(seconds=1800 + rng.randrange(9 * 3600)) for _ in range(90_000)]
    rng.shuffle(starts)  # meetings arrive in no particular order
    plan = CapacityPlan(SlotGrid.for_rate(10.0))
    earliest = day - timedelta(hours=1)

    began = time.process_time()
    placed = [plan.claim(latest=s - lead, earliest=earliest) for s in starts]
    # A tenth of the day moves and a tenth is cancelled, as calendars do.
    for i in range(0, 20_000, 2):
        at = placed[i]
        assert at is not None
        plan.release(at)
        if i % 4 == 0:
            starts[i] += timedelta(minutes=30)
            placed[i] = plan.claim(latest=starts[i] - lead, earliest=earliest)
        else:
            placed[i] = None
    cpu = time.process_time() - began

    kept = [(at, s) for at, s in zip(placed, starts, strict=True) if at is not None]
    assert len(kept) == 95_000
    assert all(at <= s - lead for at, s in kept)
    per_second = Counter(plan.grid.slot_at_or_before(at) for at, _ in kept)
    assert max(per_second.values()) <= 10
    assert dict(per_second) == {s: n for s, n in plan.counts().items() if n}
    print(f"planner: 100,000 meetings + 10,000 moves/cancels in {cpu:.2f} s of CPU")
    assert cpu < 10.0


def test_slots_for_a_rate_below_one_per_second_are_longer() -> None:
    assert SlotGrid.for_rate(0.25) == SlotGrid(4, 1)
    assert SlotGrid.for_rate(10.0) == SlotGrid(1, 10)
    assert SlotGrid.for_rate(2.5).rate <= 2.5


def test_the_rate_halves_on_a_429_once_per_overload_and_climbs_back_when_they_stop() -> None:
    control = RateControl(configured=10.0, cooldown_seconds=5, hold_seconds=30, restore_seconds=120)
    state = RateState()
    assert effective_rate(control, state, NOW) == 10.0
    lowered = after_throttle(control, state, NOW)
    assert lowered is not None and effective_rate(control, lowered, NOW) == 5.0
    # The other 429s of the same overload do not halve it again.
    assert after_throttle(control, lowered, NOW + timedelta(seconds=1)) is None
    again = after_throttle(control, lowered, NOW + timedelta(seconds=6))
    assert again is not None and again.lowered_to == 2.5
    floor = again
    for i in range(10):
        floor = after_throttle(control, floor, NOW + timedelta(seconds=12 + 6 * i)) or floor
    assert floor.lowered_to == 1.0  # never below a tenth of the configured rate
    assert floor.throttled_at is not None
    quiet = floor.throttled_at
    assert effective_rate(control, floor, quiet + timedelta(seconds=29)) == 1.0
    assert effective_rate(control, floor, quiet + timedelta(seconds=90)) == 5.5
    assert effective_rate(control, floor, quiet + timedelta(seconds=150)) == 10.0
