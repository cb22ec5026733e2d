"""The bot-events queue's use case: apply one stored delivery (its events come from the table's stream)."""

from __future__ import annotations

from meetpilot.app.bot_events import ApplyResult, apply_delivery
from meetpilot.app.messages import BotEventDelivery
from meetpilot.app.ports import MessageQueue, Sessions
from meetpilot.app.workers.followups import Done, FollowUps, FollowUpStep, carry_out
from meetpilot.domain.clock import Clock


def work_bot_event(
    delivery: BotEventDelivery,
    *,
    repo: Sessions,
    transcript_queue: MessageQueue,
    clock: Clock,
    after: FollowUpStep,
) -> Done[ApplyResult]:
    """Apply one stored delivery; a delivery never sends itself again, so nothing follows it."""
    result = apply_delivery(delivery, repo=repo, transcript_queue=transcript_queue, clock=clock)
    return Done(result, carry_out(FollowUps(), after))
