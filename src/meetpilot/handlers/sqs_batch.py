"""Partial batch responses for the SQS-triggered functions.

A record whose handler raises is reported in ``batchItemFailures`` and comes back after the
visibility timeout (and reaches the DLQ after maxReceiveCount); the others are deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.handlers.observability import logger


def run_batch(
    event: dict[str, Any], context: Any, record_handler: Callable[[SQSRecord], Any]
) -> PartialItemFailureResponse:
    def logged(record: SQSRecord) -> Any:
        try:
            return record_handler(record)
        except Exception:
            # The batch processor only lists the failed record; say why, once per failure.
            logger.exception("record failed; it will be retried", extra={"message_id": record.message_id})
            raise

    # A fresh processor per invocation: the processor keeps per-batch state.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=logged, processor=processor, context=context)
