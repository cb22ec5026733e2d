"""What is left to do once a queue message's work is stored, decided by the use case and carried
out here the same way for every queue: send the message again after a delay, publish the session's
events.

    done = Done(result, carry_out(FollowUps(retry=job, retry_in=30.0, publish_for=session_id), step))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from meetpilot.app.messages import QueueMessage
from meetpilot.app.ports import EventPublisher, MessageQueue, Sessions
from meetpilot.app.sessions import PublishReport, publish_outbox
from meetpilot.domain.clock import Clock

R = TypeVar("R")


@dataclass(frozen=True)
class FollowUps:
    """What is left to do once a message's work is stored."""

    retry: QueueMessage | None = None  # send this again on the worker's own queue...
    retry_in: float = 0.0  # ...this many seconds later (before the local time scale)
    publish_for: str | None = None  # publish this session's outbox


@dataclass(frozen=True)
class FollowUpStep:
    """The ports the follow-ups need; ``delay`` turns seconds into the queue's delay (time scale).

    The publisher and the queue are asked for only when used: each is a boto3 client, which a cold
    start should pay for only when a record needs it (a rejected delivery publishes nothing)."""

    repo: Sessions
    clock: Clock
    delay: Callable[[float], int]
    publisher: Callable[[], EventPublisher]
    retry_queue: Callable[[], MessageQueue] | None = None


@dataclass(frozen=True)
class FollowUpReport:
    retried_in: int | None = None  # the delay the retry was sent with; None when nothing was sent
    published: PublishReport = field(default_factory=PublishReport)


def carry_out(follow_ups: FollowUps, step: FollowUpStep) -> FollowUpReport:
    """Re-send with a delay, then publish. A retry is a new message rather than a failed record, so
    throttling or a slow provider does not eat into maxReceiveCount (kept for real crashes).
    Publishing never raises: the change is stored whatever happens here (see app/sessions.py)."""
    retried_in = None
    if follow_ups.retry is not None:
        if step.retry_queue is None:
            raise ValueError("this worker has no queue to retry on")
        retried_in = step.delay(follow_ups.retry_in)
        step.retry_queue().send(follow_ups.retry.to_body(), delay_seconds=retried_in)
    published = PublishReport()
    if follow_ups.publish_for is not None:
        published = publish_outbox(step.repo, step.publisher(), follow_ups.publish_for, step.clock)
    return FollowUpReport(retried_in, published)


@dataclass(frozen=True)
class Done(Generic[R]):
    """A use case's own result and what its follow-ups did."""

    result: R
    follow_ups: FollowUpReport = field(default_factory=FollowUpReport)
