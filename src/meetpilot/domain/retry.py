"""Retry timing: exponential backoff with full jitter, and the provider's Retry-After honoured."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Full-jitter backoff: uniform in [0, min(cap, base * 2**attempt)], at least one second."""
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    return max(1.0, (rng or random).uniform(0, ceiling))


def retry_delay(
    attempt: int, retry_after: float | None, *, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """How long to wait before the next try: never sooner than Retry-After when one was given."""
    if retry_after is not None and retry_after >= 0:
        # A little jitter on top spreads a burst of throttled callers over the next second.
        return min(max(retry_after, 0.0) + (rng or random).uniform(0, 1.0), 900.0)
    return backoff_seconds(attempt, cap=cap, rng=rng)
