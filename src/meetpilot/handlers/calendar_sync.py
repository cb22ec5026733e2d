"""SQS entry point that syncs one calendar per message (``CalendarSyncJob`` in app/messages.py)."""

from __future__ import annotations

from typing import Any

from meetpilot.app.messages import CalendarSyncJob, read_message
from meetpilot.app.workers.calendar_sync import work_calendar_sync
from meetpilot.composition import container
from meetpilot.handlers.observability import logger
from meetpilot.handlers.sqs_batch import PartialBatchResponse, QueueRecord, run_batch


def handle_record(record: QueueRecord) -> str:
    job = read_message(CalendarSyncJob, record.body)
    c = container()
    done = work_calendar_sync(
        job,
        deps=c.calendar_sync_deps,
        ics=lambda: c.ics_feeds,
        google=lambda: c.google_calendars,
        microsoft=lambda: c.microsoft_calendars,
        after=c.follow_up_step(lambda: c.calendar_sync_queue),
    )
    fields = {**done.result.as_dict(), "reason": job.reason, "full": job.full}
    if done.follow_ups.retried_in is not None:
        logger.info("calendar busy, sync re-queued", extra={**fields, "retry_in": done.follow_ups.retried_in})
    elif done.result.outcome == "failed":
        logger.warning("calendar sync failed; kept the last good state", extra=fields)
    else:
        logger.info("calendar sync", extra=fields)
    return done.result.outcome


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    return run_batch(event, context, handle_record)
