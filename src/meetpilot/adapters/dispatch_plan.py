"""The dispatch plan and the provider's current rate, in the single table.

- plan bucket ``PLAN#<slot seconds>#<bucket>`` / ``PLAN``: creates per slot of one bucket
  (``BUCKET_SLOTS`` slots, attributes ``s0``..``s59``) and their ``total``. A claim reads the buckets
  from the deadline backwards (one BatchGetItem for up to 16 of them, eventually consistent) and
  takes a slot with one conditional ``ADD`` (``s<n> < capacity``): two planners that read the same
  counts cannot both take the last place of a slot, the loser moves on to the next free one.
- rate gate ``GATE#<slot seconds>#<bucket>`` / ``GATE``: the same counters at the lowered rate,
  claimed earliest-first at dispatch time, used only while the provider is throttling us.
- rate ``RATE#<provider>`` / ``RATE``: what the last 429 lowered the rate to, and when. Written
  once per overload (conditional on the cooldown); read at most every few seconds per warm instance.

Items expire (TTL) a day after their last slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import TableAdapter, is_condition_failure, item, plain, when
from meetpilot.domain.clock import to_iso
from meetpilot.domain.dispatch_plan import (
    BUCKET_SLOTS,
    RateState,
    SlotGrid,
    bucket_of,
    bucket_range,
    earliest_free_slot,
    latest_free_slot,
)

BATCH_BUCKETS = 16
KEEP_AFTER = timedelta(days=1)


class DynamoSlotBook(TableAdapter):
    """Slot counters claimed with conditional writes; ``kind`` is ``PLAN`` or ``GATE``."""

    def __init__(self, client: Any, table_name: str, *, kind: str = "PLAN") -> None:
        super().__init__(client, table_name)
        self._kind = kind

    def _key(self, grid: SlotGrid, bucket: int) -> dict[str, Any]:
        return {"pk": f"{self._kind}#{grid.slot_seconds}#{bucket}", "sk": self._kind}

    def _read(self, grid: SlotGrid, buckets: list[int]) -> dict[int, dict[int, int]]:
        counts: dict[int, dict[int, int]] = {b: {} for b in buckets}
        keys: list[dict[str, Any]] = [item(self._key(grid, b)) for b in buckets]
        by_pk = {self._key(grid, b)["pk"]: b for b in buckets}
        while keys:
            resp = self._ddb.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ProjectionExpression": "pk, " + _SLOT_ATTRS}}
            )
            for raw in resp.get("Responses", {}).get(self._table, []):
                found = plain(raw)
                bucket = by_pk[found["pk"]]
                base = bucket * BUCKET_SLOTS
                slots = {k: v for k, v in found.items() if k.startswith("s") and k != "sk"}
                counts[bucket] = {base + int(k[1:]): int(v) for k, v in slots.items()}
            keys = (resp.get("UnprocessedKeys") or {}).get(self._table, {}).get("Keys", [])
        return counts

    def _take(self, grid: SlotGrid, slot: int, capacity: int) -> int | None:
        """Take a place in ``slot``: which one (1-based), or None when it is full."""
        bucket = bucket_of(slot)
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item(self._key(grid, bucket)),
                UpdateExpression="ADD #s :one, #t :one SET expires_at = :exp",
                ConditionExpression="attribute_not_exists(#s) OR #s < :cap",
                ExpressionAttributeNames={"#s": f"s{slot - bucket * BUCKET_SLOTS}", "#t": "total"},
                ExpressionAttributeValues=item({":one": 1, ":cap": capacity, ":exp": _expiry(grid, bucket)}),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        name = f"s{slot - bucket * BUCKET_SLOTS}"
        return int(plain(resp.get("Attributes", {})).get(name, 1))

    def claim(
        self,
        grid: SlotGrid,
        *,
        latest: datetime,
        earliest: datetime,
        capacity: int | None = None,
        latest_first: bool = True,
    ) -> datetime | None:
        """Take a free slot in ``[earliest, latest]`` (the latest one, or the earliest); its start or None."""
        cap = capacity or grid.capacity
        lo, hi = grid.slot_at_or_after(earliest), grid.last_slot_ending_by(latest)
        if hi < lo:
            return None
        step = -1 if latest_first else 1
        first_bucket, last_bucket = (bucket_of(hi), bucket_of(lo)) if latest_first else (bucket_of(lo), bucket_of(hi))
        buckets = list(range(first_bucket, last_bucket + step, step))
        pick = latest_free_slot if latest_first else earliest_free_slot
        for start in range(0, len(buckets), BATCH_BUCKETS):
            chunk = buckets[start : start + BATCH_BUCKETS]
            counts = self._read(grid, chunk)
            for bucket in chunk:
                seen = counts[bucket]
                first, last = bucket_range(bucket, lo, hi)
                while (slot := pick(seen, cap, first, last)) is not None:
                    taken = self._take(grid, slot, cap)
                    if taken is not None:
                        return grid.place(slot, taken)
                    seen[slot] = cap  # another planner took its last place meanwhile: the next one
        return None

    def release(self, grid: SlotGrid, at: datetime) -> None:
        """Give a slot back (a cancelled or moved meeting); a slot already at zero stays there."""
        slot = grid.slot_at_or_before(at)
        bucket = bucket_of(slot)
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=item(self._key(grid, bucket)),
                UpdateExpression="ADD #s :minus, #t :minus",
                ConditionExpression="#s > :zero",
                ExpressionAttributeNames={"#s": f"s{slot - bucket * BUCKET_SLOTS}", "#t": "total"},
                ExpressionAttributeValues=item({":minus": -1, ":zero": 0}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def counts(self, grid: SlotGrid, first: datetime, last: datetime) -> dict[int, int]:
        """Creates per slot from ``first`` to ``last`` (for tests and the bench)."""
        lo, hi = grid.slot_at_or_before(first), grid.slot_at_or_before(last)
        out: dict[int, int] = {}
        for seen in self._read(grid, list(range(bucket_of(lo), bucket_of(hi) + 1))).values():
            out.update({s: n for s, n in seen.items() if lo <= s <= hi and n})
        return out


_SLOT_ATTRS = ", ".join(f"s{i}" for i in range(BUCKET_SLOTS))


def _expiry(grid: SlotGrid, bucket: int) -> int:
    end = grid.start_of((bucket + 1) * BUCKET_SLOTS)
    return int((end + KEEP_AFTER).timestamp())


class DynamoProviderRate(TableAdapter):
    """The provider's rate state (see ``domain.dispatch_plan.RateControl``), cached per warm instance."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        provider: str = "meetstream",
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(client, table_name)
        self._key = item({"pk": f"RATE#{provider}", "sk": "RATE"})
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cached: tuple[float, RateState] | None = None

    def current(self) -> RateState:
        if self._cached is not None and self._monotonic() - self._cached[0] < self._cache_seconds:
            return self._cached[1]
        raw = self._ddb.get_item(TableName=self._table, Key=self._key).get("Item")
        found = plain(raw) if raw else {}
        lowered = found.get("lowered_to")
        state = RateState(
            lowered_to=float(lowered) if lowered is not None else None, throttled_at=when(found.get("throttled_at"))
        )
        self._cached = (self._monotonic(), state)
        return state

    def lower(self, state: RateState, *, unless_since: datetime) -> bool:
        """Store ``state`` unless another dispatcher lowered the rate at or after ``unless_since``."""
        assert state.throttled_at is not None and state.lowered_to is not None
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET lowered_to = :rate, throttled_at = :at, expires_at = :exp",
                ConditionExpression="attribute_not_exists(throttled_at) OR throttled_at < :since",
                ExpressionAttributeValues=item(
                    {
                        ":rate": state.lowered_to,
                        ":at": to_iso(state.throttled_at),
                        ":since": to_iso(unless_since),
                        ":exp": int((state.throttled_at + KEEP_AFTER).timestamp()),
                    }
                ),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                self._cached = None
                return False
            raise
        self._cached = (self._monotonic(), state)
        return True
