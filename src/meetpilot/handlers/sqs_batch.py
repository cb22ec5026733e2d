"""Partial batch responses for the SQS-triggered functions.

A record whose handler raises is reported in ``batchItemFailures`` and comes back after the
visibility timeout (and reaches the DLQ after maxReceiveCount); the others are deleted.

Written here rather than with Powertools' ``BatchProcessor``: these functions use it for nothing
but this loop, and importing it (its data classes, and Powertools' parser models whenever pydantic
is loaded) added 40-60 ms and about 100 modules to each queue function's cold start, measured in
fresh processes beside a Logger + Metrics import (Powertools 3.37).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypedDict

from meetpilot.handlers.observability import logger


class QueueRecord(Protocol):
    """What a record handler reads from one SQS record (Powertools' ``SQSRecord`` fits too)."""

    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> str: ...


class SqsRecord:
    """One record of an SQS event, as Lambda hands it over."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @property
    def message_id(self) -> str:
        return str(self._raw["messageId"])

    @property
    def body(self) -> str:
        return str(self._raw.get("body") or "")


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


def run_batch(
    event: Mapping[str, Any],
    context: Any,
    record_handler: Callable[[SqsRecord], Any],
    *,
    concurrency: int = 1,
) -> PartialBatchResponse:
    """Hand each record to ``record_handler``; the ones that raise are the batch's failures.

    ``concurrency`` > 1 runs that many records side by side on threads (for records that mostly
    wait: on their time slot, on the provider); the failures are still reported in record order.
    The record handler must then keep its per-record state to itself (``correlated`` does).
    """
    records = [SqsRecord(raw) for raw in event.get("Records") or ()]
    if concurrency > 1 and len(records) > 1:
        import contextvars
        from concurrent.futures import ThreadPoolExecutor

        # Each record runs in its own copy of the invocation's context: what the caller set in
        # context variables (the local stack's "which function is running") holds on the threads
        # too, and what one record sets stays its own.
        with ThreadPoolExecutor(max_workers=min(concurrency, len(records)), thread_name_prefix="record") as pool:
            futures = [pool.submit(contextvars.copy_context().run, _failed, r, record_handler) for r in records]
            failed = [f.result() for f in futures]
    else:
        failed = [_failed(record, record_handler) for record in records]
    return {
        "batchItemFailures": [{"itemIdentifier": r.message_id} for r, bad in zip(records, failed, strict=True) if bad]
    }


def _failed(record: SqsRecord, record_handler: Callable[[SqsRecord], Any]) -> bool:
    try:
        record_handler(record)
    except Exception:
        # Lambda only learns the failed record's id; say why, once per failure.
        logger.exception("record failed; it will be retried", extra={"message_id": record.message_id})
        return True
    return False
