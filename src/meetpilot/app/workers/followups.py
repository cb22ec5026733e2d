"""What is left to do once a queue message's work is stored, decided by the use case and carried
out here the same way for every queue: send the message again after a delay. (Downstream events
need nothing here: the publisher derives them from the table's stream.)

    done = Done(result, carry_out(FollowUps(retry=job, retry_in=30.0), step))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from meetpilot.app.messages import QueueMessage
from meetpilot.app.ports import MessageQueue, Sessions
from meetpilot.domain.clock import Clock

R = TypeVar("R")


@dataclass(frozen=True)
class FollowUps:
    """What is left to do once a message's work is stored."""

    retry: QueueMessage | None = None  # send this again on the worker's own queue...
    retry_in: float = 0.0  # ...this many seconds later (before the local time scale)


@dataclass(frozen=True)
class FollowUpStep:
    """The ports the follow-ups need; ``delay`` turns seconds into the queue's delay (time scale).

    The queue is asked for only when used: it is a boto3 client, which a cold start should pay
    for only when a record needs it."""

    repo: Sessions
    clock: Clock
    delay: Callable[[float], int]
    retry_queue: Callable[[], MessageQueue] | None = None


@dataclass(frozen=True)
class FollowUpReport:
    retried_in: int | None = None  # the delay the retry was sent with; None when nothing was sent


def carry_out(follow_ups: FollowUps, step: FollowUpStep) -> FollowUpReport:
    """Re-send with a delay. A retry is a new message rather than a failed record, so throttling
    or a slow provider does not eat into maxReceiveCount (kept for real crashes)."""
    retried_in = None
    if follow_ups.retry is not None:
        if step.retry_queue is None:
            raise ValueError("this worker has no queue to retry on")
        retried_in = step.delay(follow_ups.retry_in)
        step.retry_queue().send(follow_ups.retry.to_body(), delay_seconds=retried_in)
    return FollowUpReport(retried_in)


@dataclass(frozen=True)
class Done(Generic[R]):
    """A use case's own result and what its follow-ups did."""

    result: R
    follow_ups: FollowUpReport = field(default_factory=FollowUpReport)
