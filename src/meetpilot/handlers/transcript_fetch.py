"""SQS entry point that fetches finished transcripts into S3."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.transcripts import NOT_READY_BUDGET, FetchOutcome, fetch_transcript
from meetpilot.composition import container
from meetpilot.handlers.observability import logger
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    c = container()
    result = fetch_transcript(
        message_body(record),
        repo=c.repository,
        provider=c.provider,
        store=c.transcript_store,
        clock=c.clock,
        spool_dir=c.settings.spool_dir,
        not_ready_budget=timedelta(seconds=c.settings.scaled(NOT_READY_BUDGET.total_seconds())),
        retry_base_seconds=15.0,
    )
    fields: dict[str, Any] = {"session_id": result.session_id, "outcome": result.outcome.value}
    if result.outcome is FetchOutcome.RETRY and result.next_job is not None:
        delay = c.settings.scaled(result.retry_in or 15)
        c.transcript_queue.send(result.next_job, delay_seconds=delay)
        logger.info("transcript not ready, retrying", extra={**fields, "retry_in": delay, "reason": result.reason})
    elif result.outcome in (FetchOutcome.GAVE_UP, FetchOutcome.FAILED):
        logger.warning("transcript not stored", extra={**fields, "reason": result.reason})
    else:
        if result.summary is not None:
            fields.update(words=result.summary.words, turns=result.summary.turns)
        logger.info("transcript", extra=fields)
    return result.outcome.value


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
