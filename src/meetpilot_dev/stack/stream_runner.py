"""Feed the table's DynamoDB stream to its function as Lambda's event source mapping does.

Read the shard with the DynamoDB Streams API (``describe_stream``, ``get_shard_iterator``,
``get_records``), drop the records no filter matches, invoke the handler with a Lambda-shaped
stream event, and checkpoint: after a success everything in the batch; after a reported
``batchItemFailures`` everything before the first failed record, retrying from it; after a crash
nothing, halving the batch when ``BisectBatchOnFunctionError`` is on. A batch still failing after
``MaximumRetryAttempts`` retries is sent, as a pointer to its sequence range, to the on-failure
queue and skipped, as Lambda does::

    feeder = StreamFeeder(streams, stream_arn, handler, source=source, sqs=sqs, failure_queue_url=url)
    feeder.drain()  # every record written so far has been handed to the handler
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from meetpilot_dev.stack.invoke import Handler, LambdaContext, acting_as
from meetpilot_dev.stack.template import StreamSource

REGION = "us-east-1"


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """A Lambda DynamoDB stream event: the records as the Streams API returns them, plus the ARN."""
    return {"Records": [{**record, "eventSourceARN": stream_arn} for record in records]}


def matches(pattern: Mapping[str, Any], value: Any) -> bool:
    """The part of Lambda's event filtering the template uses: nested keys, lists of exact values."""
    if not isinstance(value, Mapping):
        return False
    for key, wanted in pattern.items():
        if isinstance(wanted, Mapping):
            if not matches(wanted, value.get(key)):
                return False
        elif isinstance(wanted, list):
            if value.get(key) not in wanted:
                return False
        else:
            return False
    return True


class StreamFeeder:
    """One DynamoDB event source mapping over the table's single shard (the emulator has one)."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        *,
        source: StreamSource,
        sqs: Any = None,
        failure_queue_url: str | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._streams = streams
        self.stream_arn = stream_arn
        self._handler = handler
        self.source = source
        self.function_name = source.function_logical_id
        self._sqs = sqs
        self._failure_queue_url = failure_queue_url
        self._on_error = on_error
        self._lock = threading.Lock()  # one batch at a time per shard, as Lambda (ParallelizationFactor 1)
        self._pending: list[dict[str, Any]] = []  # read, not yet checkpointed
        self._gathering_since: float | None = None  # when the batch being gathered got its first record
        self._window = source.batch_size  # shrinks while bisecting a crashing batch
        self._retries = 0
        self.invocations = 0
        self.failed_invocations = 0
        self.records_given_up = 0
        with acting_as(self.function_name):
            shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
            self._iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]

    def wrap_handler(self, wrap: Callable[[Handler], Handler]) -> None:
        """Put a wrapper (fault injection, measurement) around the handler this feeder invokes."""
        self._handler = wrap(self._handler)

    def poll_once(self, *, wait_for_window: bool = False) -> int:
        """Read what is new (when nothing is waiting for a retry) and invoke the handler with one
        batch; return how many records the batch had (0: nothing to do, or still gathering).

        ``wait_for_window``: as Lambda with ``MaximumBatchingWindowInSeconds``, gather records
        until the batch is full or the window since its first record has passed (the background
        poller does; ``drain`` hands over at once)."""
        with self._lock, acting_as(self.function_name):
            if not self._pending or (self._gathering_since is not None and len(self._pending) < self.source.batch_size):
                self._read()
            if not self._pending:
                return 0
            window = self.source.maximum_batching_window_seconds
            retrying = self._retries > 0 or self._window < self.source.batch_size
            if wait_for_window and window > 0 and not retrying and len(self._pending) < self.source.batch_size:
                if self._gathering_since is None:
                    self._gathering_since = time.monotonic()
                if time.monotonic() - self._gathering_since < window:
                    return 0
            self._gathering_since = None
            batch = self._pending[: max(1, self._window)]
            self._invoke(batch)
            return len(batch)

    def drain(self, max_batches: int = 10_000) -> int:
        """Invoke until every record written so far is checkpointed; return the records handed over."""
        total = 0
        for _ in range(max_batches):
            got = self.poll_once()
            if not got:
                break
            total += got
        return total

    def _read(self) -> None:
        room = self.source.batch_size - len(self._pending)
        if room <= 0:
            return
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=room)
        self._iterator = response.get("NextShardIterator") or self._iterator
        records = response.get("Records", [])
        filters = self.source.filters
        # Records no filter matches are checkpointed without an invocation (and are not billed).
        self._pending += [r for r in records if not filters or any(matches(f, r) for f in filters)]

    def _invoke(self, batch: list[dict[str, Any]]) -> None:
        self.invocations += 1
        try:
            result = self._handler(stream_event(batch, self.stream_arn), LambdaContext(self.function_name))
        except Exception as exc:  # a crashed invocation: nothing in the batch is checkpointed
            self.failed_invocations += 1
            if self._on_error:
                self._on_error(exc)
            if self.source.bisect_on_error and len(batch) > 1:
                self._window = len(batch) // 2  # a bisected half does not count as a retry
                return
            self._retry_or_give_up(batch)
            return
        reported = [f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])]
        if not reported or not self.source.report_batch_item_failures:
            self._checkpoint(len(batch))
            return
        self.failed_invocations += 1
        positions = [i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in reported]
        first = min(positions) if positions else 0  # an unknown identifier fails the whole batch
        self._checkpoint(first)
        self._retry_or_give_up(batch[first:])

    def _checkpoint(self, count: int) -> None:
        if count:
            self._pending = self._pending[count:]
            self._retries = 0
            self._window = self.source.batch_size

    def _retry_or_give_up(self, failed: list[dict[str, Any]]) -> None:
        self._retries += 1
        limit = self.source.maximum_retry_attempts
        if limit < 0 or self._retries <= limit:
            return  # retried from the first failed record on the next poll
        self._send_to_failure_queue(failed)
        self.records_given_up += len(failed)
        self._pending = self._pending[len(failed) :]
        self._retries = 0
        self._window = self.source.batch_size

    def _send_to_failure_queue(self, failed: list[dict[str, Any]]) -> None:
        if self._sqs is None or not self._failure_queue_url:
            return
        sequence = [r["dynamodb"]["SequenceNumber"] for r in failed]
        # What Lambda sends to an on-failure destination: where the records are, not the records.
        body = {
            "requestContext": {
                "functionArn": LambdaContext(self.function_name).invoked_function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.source.maximum_retry_attempts + 1,
            },
            "responseContext": {"statusCode": 200, "functionError": None},
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": "local",
                "startSequenceNumber": sequence[0],
                "endSequenceNumber": sequence[-1],
                "batchSize": len(failed),
                "streamArn": self.stream_arn,
            },
        }
        self._sqs.send_message(QueueUrl=self._failure_queue_url, MessageBody=json.dumps(body))

    def behind(self) -> bool:
        """True while records are written but not yet checkpointed (one read, nothing consumed)."""
        with self._lock, acting_as(self.function_name):
            if self._pending:
                return True
            records = self._streams.get_records(ShardIterator=self._iterator, Limit=1).get("Records", [])
            return bool(records)


class StreamPollerThread(threading.Thread):
    """Polls the stream in the background until stopped (Lambda polls each shard about 4 times a second)."""

    def __init__(self, feeder: StreamFeeder, *, idle_seconds: float = 0.1, failed_seconds: float = 0.2) -> None:
        super().__init__(name=f"stream-{feeder.function_name}", daemon=True)
        self.feeder = feeder
        self._stop_event = threading.Event()
        self._idle = idle_seconds
        self._failed = failed_seconds

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                failed_before = self.feeder.failed_invocations
                if not self.feeder.poll_once(wait_for_window=True):
                    self._stop_event.wait(self._idle)
                elif self.feeder.failed_invocations != failed_before:
                    self._stop_event.wait(self._failed)  # Lambda backs off before a retry too
            except Exception:  # the emulator went away during shutdown, or a transient error
                if self._stop_event.wait(0.5):
                    break

    def stop(self) -> None:
        self._stop_event.set()
