"""Feed SQS messages to an SQS-triggered handler as Lambda's event source mapping does.

Receive up to the batch size, invoke the handler with a real SQS event, delete only the records
not listed in ``batchItemFailures``; failed records reappear after the visibility timeout and move
to the DLQ after ``maxReceiveCount`` receives (SQS itself does that part).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from meetpilot_dev.stack.invoke import Handler, LambdaContext, acting_as


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    records = []
    for m in messages:
        body = m["Body"]
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": body,
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class QueueFeeder:
    """One event source mapping: a queue, a handler, a batch size."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str,
        batch_size: int = 10,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._handler = handler
        self.function_name = function_name
        self.batch_size = max(1, min(10, batch_size))
        # Lambda's event source mapping polls with the function's own role, so its calls are the function's.
        with acting_as(function_name):
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._arn = attributes["QueueArn"]
        self._on_error = on_error
        self.invocations = 0
        self.failed_records = 0
        self._count_lock = threading.Lock()

    def wrap_handler(self, wrap: Callable[[Handler], Handler]) -> None:
        """Put a wrapper (fault injection, measurement) around the handler this feeder invokes."""
        self._handler = wrap(self._handler)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive and process one batch; return how many messages were received."""
        with acting_as(self.function_name):
            return self._poll_once(wait_seconds)

    def _poll_once(self, wait_seconds: int) -> int:
        resp = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return 0
        with self._count_lock:
            self.invocations += 1
        try:
            result = self._handler(sqs_event(messages, self._arn), LambdaContext(self.function_name))
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        except Exception as exc:  # a crashed invocation fails the whole batch, as in Lambda
            if self._on_error:
                self._on_error(exc)
            failed = {m["MessageId"] for m in messages}
        with self._count_lock:
            self.failed_records += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def drain(self, max_batches: int = 1000) -> int:
        """Process batches until the queue returns nothing; return messages received."""
        total = 0
        for _ in range(max_batches):
            got = self.poll_once()
            if not got:
                break
            total += got
        return total


class PollerThread(threading.Thread):
    """Long-polls one queue in the background until stopped."""

    def __init__(self, feeder: QueueFeeder, *, idle_wait_seconds: int = 1) -> None:
        super().__init__(name=f"poller-{feeder.function_name}", daemon=True)  # several may share a feeder
        self.feeder = feeder
        self._stop_event = threading.Event()
        self._idle_wait = idle_wait_seconds

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                if not self.feeder.poll_once(wait_seconds=self._idle_wait):
                    self._stop_event.wait(0.05)
            except Exception:  # the emulator went away during shutdown, or a transient error
                if self._stop_event.wait(0.5):
                    break

    def stop(self) -> None:
        self._stop_event.set()
