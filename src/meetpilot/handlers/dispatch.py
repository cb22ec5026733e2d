"""SQS entry point that dispatches bots (messages: see ``DispatchMessage`` in app/messages.py).

Longer than 40 lines: a submitted meeting that is only scheduled logs differently from a dispatch,
and each dispatch outcome has its own metric.
"""

from __future__ import annotations

from typing import Any

from meetpilot.app.dispatch import DispatchOutcome
from meetpilot.app.messages import DispatchMeeting, read_dispatch_message
from meetpilot.app.workers.dispatch import DispatchDone, work_dispatch_message
from meetpilot.composition import container
from meetpilot.domain.clock import to_iso
from meetpilot.handlers.observability import (
    correlate,
    correlated,
    count,
    instrumented,
    logger,
    seconds,
)
from meetpilot.handlers.sqs_batch import PartialBatchResponse, QueueRecord, run_batch


def handle_record(record: QueueRecord) -> str:
    message = read_dispatch_message(record.body)
    c = container()
    with correlated(meeting_key=message.meeting_key if isinstance(message, DispatchMeeting) else None):
        done = work_dispatch_message(
            message,
            repo=c.repository,
            provider=c.provider,
            secrets=c.secrets,
            scheduler=c.dispatch_scheduler,
            config=c.dispatch_config,
            clock=c.clock,
            after=c.follow_up_step(lambda: c.dispatch_queue),
            guard=c.rate_guard,
        )
        _log(done)
        return done.outcome


def _log(done: DispatchDone) -> None:
    result, plan = done.result, done.plan
    correlate(meeting_key=done.meeting_key)
    if result is None:
        assert plan is not None
        logger.info(
            "meeting scheduled" if plan.dispatch_at else "meeting already in hand",
            extra={
                "meeting_key": done.meeting_key,
                "dispatch_at": to_iso(plan.dispatch_at) if plan.dispatch_at else None,
                "dispatch_state": plan.meeting.dispatch_state.value,
            },
        )
        return
    first_event = result.calendar_event_ids[0] if result.calendar_event_ids else None
    correlate(bot_id=result.bot_id, session_id=result.session_id, calendar_event_id=first_event)
    fields = {
        "meeting_key": done.meeting_key,
        "outcome": result.outcome.value,
        "bot_id": result.bot_id,
        "attempt": done.attempt,
    }
    if result.outcome is DispatchOutcome.NOT_YET:
        logger.info("dispatch held to its slot", extra={**fields, "retry_in": done.follow_ups.retried_in})
        return
    if result.outcome is DispatchOutcome.RETRY:
        retry_in = done.follow_ups.retried_in
        logger.info("dispatch retry scheduled", extra={**fields, "retry_in": retry_in, "reason": result.reason})
    elif result.outcome is DispatchOutcome.FAILED:
        count("DispatchFailures")
        logger.error("dispatch failed", extra={**fields, "reason": result.reason})
    else:
        if result.outcome is DispatchOutcome.CREATED:
            count("BotsDispatched")
            if done.lateness_seconds is not None:
                seconds("DispatchLateness", done.lateness_seconds)
        logger.info("dispatch", extra=fields)


# A dispatch record mostly waits: for its slot of the plan (up to a second, held in process) and
# for the provider's answer. One after another, a batch's first late record held up the other nine;
# side by side, each keeps its own slot. Measured on the local stack's calibration burst (100
# meetings due at once): 11.8 creates/s one after another, 18.6 side by side.
RECORDS_SIDE_BY_SIDE = 10


@instrumented
def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    return run_batch(event, context, handle_record, concurrency=RECORDS_SIDE_BY_SIDE)
