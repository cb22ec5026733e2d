"""SQS entry point that applies stored webhook deliveries to bot sessions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.bot_events import ApplyOutcome, apply_delivery
from meetpilot.app.sessions import publish_outbox
from meetpilot.composition import container
from meetpilot.handlers.observability import correlate, correlated, count, count_published, instrumented, logger
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    c = container()
    body = message_body(record)
    with correlated(session_id=body.get("session_id")):
        result = apply_delivery(body, repo=c.repository, transcript_queue=c.transcript_queue, clock=c.clock)
        fields: dict[str, Any] = {"outcome": result.outcome.value, "session_id": result.session_id}
        if result.event is not None:
            fields["event"] = result.event.name
            correlate(bot_id=result.event.bot_id)
        if result.session is not None:
            fields["status"] = result.session.status.value
            correlate(session_id=result.session.session_id, meeting_key=result.session.meeting_key)
        if result.outcome in (ApplyOutcome.WRONG_BOT, ApplyOutcome.INVALID, ApplyOutcome.UNKNOWN_SESSION):
            # Rejected deliveries are logged and dropped: retrying cannot make them valid.
            count("BotEventsRejected")
            logger.warning("bot event rejected", extra=fields)
            return result.outcome.value
        count("EventsApplied" if result.outcome is ApplyOutcome.APPLIED else "DuplicatesIgnored")
        logger.info("bot event", extra={**fields, "transcript_job_sent": result.transcript_job_sent})
        if result.session_id is not None:
            # After the write: the change is stored whatever happens here (see app/sessions.py).
            report = publish_outbox(c.repository, c.event_publisher, result.session_id, c.clock)
            count_published(report.published, report.failed)
            if report.failed:
                logger.warning("events not published yet; kept for a retry", extra={"error": report.error})
        return result.outcome.value


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
