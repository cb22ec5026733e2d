"""Move messages from a dead-letter queue back to the queue they failed on, once the cause is fixed.

Nothing is lost and nothing is sent twice on purpose: each message is sent to the target first and
deleted from the DLQ only after SQS acknowledged the send. A crash between the two leaves a copy in
both queues, which the consumers (idempotent, as every SQS consumer must be) absorb: at least once.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from meetpilot.errors import MeetpilotError

# How long a received DLQ message stays hidden while we move it; if we die, it reappears then.
RECEIVE_VISIBILITY_SECONDS = 60
_BATCH = 10  # SQS's most messages per receive


class RedriveError(MeetpilotError):
    """The redrive stopped part-way; ``moved`` messages had been moved by then."""

    def __init__(self, message: str, *, moved: int = 0) -> None:
        super().__init__(message)
        self.moved = moved


def queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def dead_letter_queue_url(sqs_client: Any, queue_url: str) -> str:
    """The URL of the DLQ that ``queue_url`` sends failed messages to, from its RedrivePolicy."""
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get(
        "Attributes", {}
    )
    policy = attributes.get("RedrivePolicy")
    if not policy:
        raise RedriveError(f"queue {queue_name(queue_url)} has no RedrivePolicy, so it has no dead-letter queue")
    arn = str(json.loads(policy)["deadLetterTargetArn"])
    # arn:aws:sqs:<region>:<account>:<name>; a DLQ lives in its source queue's region.
    account, name = arn.split(":")[4:6]
    return str(sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def redrive(sqs_client: Any, dlq_url: str, target_url: str, *, max_messages: int | None = None) -> int:
    """Move up to ``max_messages`` (default: all) messages from ``dlq_url`` to ``target_url``.

    Body and message attributes are kept. Returns how many were moved::

        moved = redrive(boto3.client("sqs"), dlq_url, queue_url)

    A message that comes back to the DLQ while the redrive runs (it failed again at once) is
    left there rather than sent round again. Raises ``RedriveError`` if a send fails; whatever was
    not moved stays in the DLQ.
    """
    if dlq_url == target_url:
        raise RedriveError("the dead-letter queue and the target are the same queue")
    if max_messages is not None and max_messages < 0:
        raise ValueError("max_messages must not be negative")
    fifo = target_url.endswith(".fifo")
    moved = 0
    sent_ids: set[str] = set()  # what the target called the messages we moved, to spot returns
    while max_messages is None or moved < max_messages:
        wanted = _BATCH if max_messages is None else min(_BATCH, max_messages - moved)
        messages = sqs_client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            AttributeNames=["MessageGroupId"],
        ).get("Messages", [])
        if not messages:
            break
        returned = [m for m in messages if m["MessageId"] in sent_ids]
        fresh = [m for m in messages if m["MessageId"] not in sent_ids]
        for index, message in enumerate(fresh):
            try:
                sent = sqs_client.send_message(QueueUrl=target_url, **_send_arguments(message, fifo))
            except Exception as exc:
                _release(sqs_client, dlq_url, fresh[index:] + returned)
                raise RedriveError(
                    f"sending to {queue_name(target_url)} failed after {moved} message(s) moved: "
                    f"{type(exc).__name__}; the rest stay in {queue_name(dlq_url)}",
                    moved=moved,
                ) from exc
            # Only now is the message safe in the target; a failed delete leaves a duplicate, not a loss.
            sqs_client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            sent_ids.add(str(sent["MessageId"]))
            moved += 1
        if returned:
            _release(sqs_client, dlq_url, returned)
            break
    return moved


def _send_arguments(message: dict[str, Any], fifo: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {"MessageBody": message["Body"]}
    attributes = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    if attributes:
        arguments["MessageAttributes"] = attributes
    if fifo:
        arguments["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId", "redrive")
        # The DLQ message id is unique to this copy, so a retried redrive within SQS's
        # five-minute window is deduplicated instead of delivered twice.
        arguments["MessageDeduplicationId"] = message["MessageId"]
    return arguments


def _release(sqs_client: Any, dlq_url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again at once (best effort: they reappear anyway)."""
    if not messages:
        return
    # Best effort: if this fails too, the visibility timeout returns them a minute later.
    with contextlib.suppress(Exception):
        sqs_client.change_message_visibility_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )
