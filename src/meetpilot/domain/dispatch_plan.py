"""Dispatch planning: every bot create gets a slot, and no slot holds more creates than the provider admits.

Time is cut into slots (one second, or longer when the provider admits less than one create a
second) that each hold ``capacity`` creates, so the creates due in any run of slots fit the
provider's rate. A meeting takes the *latest* free slot at or before its deadline (start minus
lead): a pile-up on one start spreads backwards from the deadline, never past it. Slots are
grouped in buckets of ``BUCKET_SLOTS`` with a running total, so a full bucket is skipped in one
step; that is also the unit the table stores (one small item per bucket, see
``meetpilot.adapters.dispatch_plan``).

    plan = CapacityPlan(SlotGrid.for_rate(10.0))
    at = plan.claim(latest=start - lead, earliest=now)  # None: no free slot before the deadline
    plan.release(at)                                     # the meeting was cancelled or moved

Taking the latest free slot in any arrival order succeeds whenever some assignment would: a
claim fails only when every slot from ``earliest`` to its deadline is full.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BUCKET_SLOTS = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SlotGrid:
    """Slots of ``slot_seconds`` that each admit ``capacity`` creates: ``capacity / slot_seconds`` <= rate."""

    slot_seconds: int
    capacity: int

    @classmethod
    def for_rate(cls, creates_per_second: float) -> SlotGrid:
        if not creates_per_second > 0:
            raise ValueError("the provider's create rate must be positive")
        if creates_per_second >= 1:
            return cls(1, math.floor(creates_per_second))
        return cls(math.ceil(1 / creates_per_second), 1)

    @property
    def rate(self) -> float:
        return self.capacity / self.slot_seconds

    def slot_at_or_before(self, when: datetime) -> int:
        return math.floor((when - _EPOCH).total_seconds() / self.slot_seconds)

    def last_slot_ending_by(self, when: datetime) -> int:
        """The last slot that is over by ``when``: any create placed in it goes out before then."""
        return self.slot_at_or_before(when) - 1

    def slot_at_or_after(self, when: datetime) -> int:
        return math.ceil((when - _EPOCH).total_seconds() / self.slot_seconds)

    def start_of(self, slot: int) -> datetime:
        return _EPOCH + timedelta(seconds=slot * self.slot_seconds)

    def place(self, slot: int, taken: int) -> datetime:
        """The moment of the ``taken``-th create of ``slot`` (1-based): a slot's creates are spread
        evenly over it, so they go out at the rate rather than in a burst at its start."""
        offset = (min(max(taken, 1), self.capacity) - 1) * self.slot_seconds / self.capacity
        return self.start_of(slot) + timedelta(seconds=offset)


def bucket_of(slot: int) -> int:
    return slot // BUCKET_SLOTS


def bucket_range(bucket: int, lo: int, hi: int) -> tuple[int, int]:
    """The slots of ``bucket`` that lie within ``[lo, hi]`` (empty when first > last)."""
    return max(lo, bucket * BUCKET_SLOTS), min(hi, bucket * BUCKET_SLOTS + BUCKET_SLOTS - 1)


def latest_free_slot(counts: Mapping[int, int], capacity: int, lo: int, hi: int) -> int | None:
    """The latest slot in ``[lo, hi]`` whose count is below ``capacity`` (counts: slot -> creates)."""
    for slot in range(hi, lo - 1, -1):
        if counts.get(slot, 0) < capacity:
            return slot
    return None


def earliest_free_slot(counts: Mapping[int, int], capacity: int, lo: int, hi: int) -> int | None:
    for slot in range(lo, hi + 1):
        if counts.get(slot, 0) < capacity:
            return slot
    return None


class CapacityPlan:
    """The plan in memory: creates per slot, totals per bucket. The table adapter keeps the same
    counts as items and claims them with conditional writes; this one serves tests and the planner
    benchmark."""

    def __init__(self, grid: SlotGrid) -> None:
        self.grid = grid
        self._counts: dict[int, int] = {}
        self._totals: dict[int, int] = {}

    def count(self, slot: int) -> int:
        return self._counts.get(slot, 0)

    def counts(self) -> Mapping[int, int]:
        return self._counts

    def claim(self, *, latest: datetime, earliest: datetime) -> datetime | None:
        """Take the latest free slot from ``earliest`` that is over by ``latest``; the create's moment
        in it, or None if all are full."""
        grid = self.grid
        lo, hi = grid.slot_at_or_after(earliest), grid.last_slot_ending_by(latest)
        full = grid.capacity * BUCKET_SLOTS
        for bucket in range(bucket_of(hi), bucket_of(lo) - 1, -1) if hi >= lo else ():
            if self._totals.get(bucket, 0) >= full:
                continue
            first, last = bucket_range(bucket, lo, hi)
            slot = latest_free_slot(self._counts, grid.capacity, first, last)
            if slot is not None:
                self._counts[slot] = self._counts.get(slot, 0) + 1
                self._totals[bucket] = self._totals.get(bucket, 0) + 1
                return grid.place(slot, self._counts[slot])
        return None

    def release(self, at: datetime) -> None:
        """Give back the slot a claim returned (a cancelled or moved meeting). Unknown: nothing."""
        slot = self.grid.slot_at_or_before(at)
        if self._counts.get(slot, 0) <= 0:
            return
        self._counts[slot] -= 1
        self._totals[bucket_of(slot)] -= 1


def dispatch_deadline(start: datetime, lead: timedelta) -> datetime:
    """The latest moment a meeting's bot may be created: its start minus the lead time."""
    return start - lead


# --- the provider's rate while it answers 429 ------------------------------------------------------


@dataclass(frozen=True)
class RateControl:
    """How the create rate follows the provider's 429s.

    On a 429 the rate halves (never below ``floor_share`` of the configured rate), at most once
    per ``cooldown_seconds`` so that the burst of 429s one overload produces counts once. It holds
    while 429s keep coming, and ``hold_seconds`` after the last one it climbs back linearly to the
    configured rate over ``restore_seconds``: multiplicative decrease, additive increase, with the
    increase a function of time so restoring it costs no writes.
    """

    configured: float
    floor_share: float = 0.1
    cooldown_seconds: float = 5.0
    hold_seconds: float = 30.0
    restore_seconds: float = 120.0


@dataclass(frozen=True)
class RateState:
    """The rate the provider was last throttled down to, and when (None: never throttled)."""

    lowered_to: float | None = None
    throttled_at: datetime | None = None


def effective_rate(control: RateControl, state: RateState, now: datetime) -> float:
    """The rate dispatchers may use now."""
    if state.lowered_to is None or state.throttled_at is None:
        return control.configured
    quiet = (now - state.throttled_at).total_seconds() - control.hold_seconds
    if quiet <= 0:
        return state.lowered_to
    share = min(1.0, quiet / control.restore_seconds) if control.restore_seconds > 0 else 1.0
    return state.lowered_to + (control.configured - state.lowered_to) * share


def after_throttle(control: RateControl, state: RateState, now: datetime) -> RateState | None:
    """The state after a 429 at ``now``; None when this 429 belongs to an overload already counted."""
    if state.throttled_at is not None and (now - state.throttled_at).total_seconds() < control.cooldown_seconds:
        return None
    lowered = max(control.configured * control.floor_share, effective_rate(control, state, now) / 2)
    return RateState(lowered_to=lowered, throttled_at=now)
