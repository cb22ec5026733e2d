"""The bot-events queue's use case: apply one stored delivery, then publish what it changed."""

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
    """Apply one stored delivery; publish what it changed (a rejected one changed nothing)."""
    result = apply_delivery(delivery, repo=repo, transcript_queue=transcript_queue, clock=clock)
    if result.rejected:
        return Done(result)
    return Done(result, carry_out(FollowUps(publish_for=result.session_id), after))
