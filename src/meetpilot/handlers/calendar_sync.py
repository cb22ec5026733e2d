"""SQS entry point that syncs one calendar per message: ``{"calendar_id": ..., "full"?: true}``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.calendar_sync import sync_calendar
from meetpilot.composition import container
from meetpilot.errors import InvalidInput
from meetpilot.handlers.observability import logger
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    c = container()
    body = message_body(record)
    calendar_id = body.get("calendar_id")
    if not isinstance(calendar_id, str) or not calendar_id:
        raise InvalidInput("calendar sync message needs 'calendar_id'")
    full = body.get("full") is True
    report = sync_calendar(
        calendar_id,
        deps=c.calendar_sync_deps,
        ics=lambda: c.ics_feeds,
        google=lambda: c.google_calendars,
        full=full,
    )
    fields = {**report.as_dict(), "reason": body.get("reason"), "full": full}
    if report.outcome == "busy":
        # Another sync holds this calendar: come back once its lease ends, so the change that
        # triggered this message is not lost.
        delay = c.settings.scaled(report.retry_in or 30)
        c.calendar_sync_queue.send({**body, "reason": "retry_busy"}, delay_seconds=delay)
        logger.info("calendar busy, sync re-queued", extra={**fields, "retry_in": delay})
    elif report.outcome == "failed":
        logger.warning("calendar sync failed; kept the last good state", extra=fields)
    else:
        logger.info("calendar sync", extra=fields)
    return report.outcome


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
