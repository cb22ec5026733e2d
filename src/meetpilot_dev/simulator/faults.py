"""Fault injection: seeded draws, a token bucket for create_bot, and a count of what was injected."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from random import Random

from meetpilot_dev.simulator.config import Faults

FAULT_KINDS = (
    "rate_limit",
    "create_rate_limit",
    "server_error",
    "timeout",
    "duplicate_webhook",
    "reorder_webhook",
    "drop_webhook",
    "slow_transcript",
)


@dataclass(frozen=True)
class RequestFault:
    """What to do to one API request instead of (or after) answering it normally."""

    kind: str  # "rate_limit", "create_rate_limit", "server_error" or "timeout"
    status: int = 0
    retry_after: str | None = None
    hold_seconds: float = 0.0


@dataclass(frozen=True)
class DeliveryFault:
    drop: bool = False
    duplicate: bool = False
    reorder: bool = False


class FaultInjector:
    """Thread-safe: the HTTP handler threads and the webhook workers draw from one seeded stream."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(FAULT_KINDS, 0)
        self._faults = faults
        self._random = Random(faults.seed)
        self._tokens = 0.0
        self._refilled_at = time.monotonic()
        self.set(faults)

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the fault settings; the random stream restarts from the new seed."""
        with self._lock:
            self._faults = faults
            self._random = Random(faults.seed)
            rate = faults.create_rate_per_second
            self._tokens = _bucket_size(rate) if rate else 0.0
            self._refilled_at = time.monotonic()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def for_request(self, path: str, *, is_create: bool) -> RequestFault | None:
        """Decide the fate of one API request. Rate limits are checked before anything else."""
        with self._lock:
            faults = self._faults
            if is_create and faults.create_rate_per_second:
                wait = self._take_token(faults.create_rate_per_second)
                if wait > 0:
                    self._counts["create_rate_limit"] += 1
                    return RequestFault("create_rate_limit", 429, str(max(1, math.ceil(wait))))
            if faults.paths and not any(p in path for p in faults.paths):
                return None
            if self._draw(faults.rate_limit):
                self._counts["rate_limit"] += 1
                seconds = max(0, math.ceil(faults.retry_after_seconds))
                if self._draw(faults.retry_after_http_date):
                    # An HTTP-date has whole-second resolution; round up so the wait is never short.
                    value = formatdate(math.ceil(time.time()) + seconds, usegmt=True)
                else:
                    value = str(seconds)
                return RequestFault("rate_limit", 429, value)
            if self._draw(faults.server_error):
                self._counts["server_error"] += 1
                return RequestFault("server_error", self._random.choice((500, 502, 503)))
            if self._draw(faults.timeout):
                self._counts["timeout"] += 1
                return RequestFault("timeout", hold_seconds=faults.timeout_seconds)
            return None

    def for_delivery(self) -> DeliveryFault:
        with self._lock:
            faults = self._faults
            if self._draw(faults.drop_webhook):
                self._counts["drop_webhook"] += 1
                return DeliveryFault(drop=True)
            duplicate = self._draw(faults.duplicate_webhook)
            reorder = self._draw(faults.reorder_webhook)
            if duplicate:
                self._counts["duplicate_webhook"] += 1
            if reorder:
                self._counts["reorder_webhook"] += 1
            return DeliveryFault(duplicate=duplicate, reorder=reorder)

    def transcript_delay(self) -> float:
        """Extra simulated seconds before a transcript is ready (counted once per affected bot)."""
        with self._lock:
            delay = self._faults.slow_transcript_seconds
            if delay > 0:
                self._counts["slow_transcript"] += 1
            return delay

    def _draw(self, rate: float) -> bool:
        # No draw at all for a switched-off fault, so enabling one fault does not shift the others.
        return rate > 0 and self._random.random() < rate

    def _take_token(self, rate: float) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        now = time.monotonic()
        size = _bucket_size(rate)
        self._tokens = min(size, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate


def _bucket_size(rate: float) -> float:
    """A burst of one second's worth of requests, and at least one."""
    return max(1.0, rate)
