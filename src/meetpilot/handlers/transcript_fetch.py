"""SQS entry point that fetches finished transcripts into S3 (or assembles a streaming-only bot's
transcript from its live segments)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.sessions import publish_outbox
from meetpilot.app.transcripts import NOT_READY_BUDGET, FetchOutcome, fetch_transcript
from meetpilot.composition import container
from meetpilot.handlers.observability import correlated, count, count_published, instrumented, logger, seconds
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    c = container()
    job = message_body(record)
    with correlated(session_id=job.get("session_id"), bot_id=job.get("bot_id")):
        result = fetch_transcript(
            job,
            repo=c.repository,
            provider=c.provider,
            store=c.transcript_store,
            clock=c.clock,
            spool_dir=c.settings.spool_dir,
            not_ready_budget=timedelta(seconds=c.settings.scaled(NOT_READY_BUDGET.total_seconds())),
            retry_base_seconds=15.0,
            segments=c.live_segments,
        )
        fields: dict[str, Any] = {"session_id": result.session_id, "outcome": result.outcome.value}
        if result.outcome is FetchOutcome.RETRY and result.next_job is not None:
            delay = c.settings.scaled(result.retry_in or 15)
            c.transcript_queue.send(result.next_job, delay_seconds=delay)
            logger.info("transcript not ready, retrying", extra={**fields, "retry_in": delay, "reason": result.reason})
        elif result.outcome in (FetchOutcome.GAVE_UP, FetchOutcome.FAILED):
            if result.partial_kept:
                count("PartialTranscriptsKept")
            logger.warning(
                "transcript not stored",
                extra={**fields, "reason": result.reason, "partial_kept": result.partial_kept},
            )
        else:
            if result.summary is not None:
                fields.update(words=result.summary.words, turns=result.summary.turns)
            if result.outcome in (FetchOutcome.STORED, FetchOutcome.EMPTY):
                count("TranscriptsStored")
                if result.latency_seconds is not None:
                    seconds("TranscriptLatency", result.latency_seconds)
            logger.info("transcript", extra=fields)
        report = publish_outbox(c.repository, c.event_publisher, result.session_id, c.clock)
        count_published(report.published, report.failed)
        if report.failed:
            logger.warning("events not published yet; kept for a retry", extra={"error": report.error})
        return result.outcome.value


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
