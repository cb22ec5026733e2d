"""SQS entry point that applies stored webhook deliveries to bot sessions.

A little over 40 lines: what the delivery touched (event, bot, session, meeting) goes on the log
line and on the correlation keys.
"""

from __future__ import annotations

from typing import Any

from meetpilot.app.bot_events import ApplyOutcome
from meetpilot.app.messages import BotEventDelivery, read_message
from meetpilot.app.workers.bot_events import work_bot_event
from meetpilot.composition import container
from meetpilot.handlers.observability import (
    correlate,
    correlated,
    count,
    instrumented,
    logger,
    publish_punctuality,
)
from meetpilot.handlers.sqs_batch import PartialBatchResponse, QueueRecord, run_batch


def handle_record(record: QueueRecord) -> str:
    delivery = read_message(BotEventDelivery, record.body)
    c = container()
    with correlated(session_id=delivery.session_id):
        after = c.follow_up_step()
        queue = c.transcript_queue
        done = work_bot_event(delivery, repo=c.repository, transcript_queue=queue, clock=c.clock, after=after)
        result = done.result
        fields: dict[str, Any] = {"outcome": result.outcome.value, "session_id": result.session_id}
        if result.event is not None:
            fields["event"] = result.event.name
            correlate(bot_id=result.event.bot_id)
        if result.session is not None:
            fields["status"] = result.session.status.value
            correlate(session_id=result.session.session_id, meeting_key=result.session.meeting_key)
            publish_punctuality(result.session.meeting_key, result.punctuality)
        if result.rejected:
            count("BotEventsRejected")
            logger.warning("bot event rejected", extra=fields)
        else:
            count("EventsApplied" if result.outcome is ApplyOutcome.APPLIED else "DuplicatesIgnored")
            logger.info("bot event", extra={**fields, "transcript_job_sent": result.transcript_job_sent})
        return result.outcome.value


@instrumented
def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    return run_batch(event, context, handle_record)
