"""SQS entry point that applies stored webhook deliveries to bot sessions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.bot_events import ApplyOutcome, apply_delivery
from meetpilot.composition import container
from meetpilot.handlers.observability import logger
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    c = container()
    result = apply_delivery(message_body(record), repo=c.repository, transcript_queue=c.transcript_queue, clock=c.clock)
    fields: dict[str, Any] = {"outcome": result.outcome.value, "session_id": result.session_id}
    if result.event is not None:
        fields.update(event=result.event.name, bot_id=result.event.bot_id)
    if result.session is not None:
        fields.update(status=result.session.status.value, meeting_key=result.session.meeting_key)
    if result.outcome in (ApplyOutcome.WRONG_BOT, ApplyOutcome.INVALID, ApplyOutcome.UNKNOWN_SESSION):
        # Rejected deliveries are logged and dropped: retrying cannot make them valid.
        logger.warning("bot event rejected", extra=fields)
    else:
        logger.info("bot event", extra={**fields, "transcript_job_sent": result.transcript_job_sent})
    return result.outcome.value


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
