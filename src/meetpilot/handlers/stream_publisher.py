"""DynamoDB stream entry point: turns the table's writes into downstream events on EventBridge.

The only function that publishes. Lambda hands it batches of stream records (old and new image);
the events they carry go out in ``PutEvents`` calls of ten, rejected entries are retried, and the
first record that still has an unpublished event is reported as the batch's item failure, so
Lambda retries from there (bisecting, then giving up to the on-failure queue; template.yaml).
"""

from __future__ import annotations

import time
from typing import Any

from meetpilot.adapters.dynamo_table import plain
from meetpilot.app.stream_events import StreamChange, publish_changes
from meetpilot.composition import container
from meetpilot.handlers.observability import count_published, instrumented, logger


def stream_changes(event: dict[str, Any]) -> list[StreamChange]:
    """The Lambda DynamoDB stream event's records, images decoded to plain attributes."""
    changes = []
    for record in event.get("Records") or []:
        data = record.get("dynamodb") or {}
        old, new = data.get("OldImage"), data.get("NewImage")
        changes.append(
            StreamChange(
                sequence_number=str(data.get("SequenceNumber", "")),
                event_name=str(record.get("eventName", "")),
                old=plain(old) if old else None,
                new=plain(new) if new else None,
            )
        )
    return changes


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    changes = stream_changes(event)
    outcome = publish_changes(changes, container().event_publisher, pause=lambda attempt: time.sleep(0.1 * attempt))
    count_published(outcome.published, outcome.rejected)
    if outcome.failed_sequence_numbers:
        logger.warning(
            "events not published; the batch is retried from the first such record",
            extra={"records": len(changes), "rejected": outcome.rejected, "error": outcome.error},
        )
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in outcome.failed_sequence_numbers]}
