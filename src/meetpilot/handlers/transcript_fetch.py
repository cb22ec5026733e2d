"""SQS entry point that fetches finished transcripts into S3 (or assembles a streaming-only bot's
transcript from its live segments).

Longer than 40 lines: each way a fetch ends (retried, not stored, stored, empty) has its own log
line and metric.
"""

from __future__ import annotations

from typing import Any

from meetpilot.app.messages import TranscriptJob, read_message
from meetpilot.app.transcripts import FetchOutcome
from meetpilot.app.workers.transcripts import work_transcript_job
from meetpilot.composition import container
from meetpilot.handlers.observability import correlated, count, instrumented, logger, seconds
from meetpilot.handlers.sqs_batch import PartialBatchResponse, QueueRecord, run_batch


def handle_record(record: QueueRecord) -> str:
    job = read_message(TranscriptJob, record.body)
    c = container()
    with correlated(session_id=job.session_id, bot_id=job.bot_id):
        done = work_transcript_job(
            job,
            repo=c.repository,
            provider=c.provider,
            store=c.transcript_store,
            clock=c.clock,
            policy=c.transcript_policy,
            segments=c.live_segments,
            spool_dir=c.settings.spool_dir,
            after=c.follow_up_step(lambda: c.transcript_queue),
        )
        result = done.result
        fields: dict[str, Any] = {"session_id": result.session_id, "outcome": result.outcome.value}
        if done.follow_ups.retried_in is not None:
            extra = {**fields, "retry_in": done.follow_ups.retried_in, "reason": result.reason}
            logger.info("transcript not ready, retrying", extra=extra)
        elif result.outcome in (FetchOutcome.GAVE_UP, FetchOutcome.FAILED):
            if result.partial_kept:
                count("PartialTranscriptsKept")
            extra = {**fields, "reason": result.reason, "partial_kept": result.partial_kept}
            logger.warning("transcript not stored", extra=extra)
        else:
            if result.summary is not None:
                fields.update(words=result.summary.words, turns=result.summary.turns)
            if result.outcome in (FetchOutcome.STORED, FetchOutcome.EMPTY):
                count("TranscriptsStored")
                if result.latency_seconds is not None:
                    seconds("TranscriptLatency", result.latency_seconds)
            logger.info("transcript", extra=fields)
        return result.outcome.value


@instrumented
def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    return run_batch(event, context, handle_record)
