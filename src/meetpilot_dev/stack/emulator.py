"""The AWS emulator of the local stack: a moto server on 127.0.0.1, in its own process.

Its own process lets it use the second core (the handlers, gateway and simulator share the first)
and leaves no state behind: every stack starts from an empty emulator.

Only the stack's own clients may use it. moto answers anyone on the port, and its server reflects
CORS to every origin, so a web page open in the developer's browser could read and change the
stack. Here moto's CORS is off and a small WSGI guard in front of it refuses a request that comes
from a web page (an ``Origin`` or ``Sec-Fetch-Site: cross-site`` header) or that is not made with
the access key id the stack was given for this run: in its SigV4 ``Authorization`` header or, for a
presigned URL, its ``X-Amz-Credential``. A web page cannot know that key id.

moto's DynamoDB checks a ``ConditionExpression`` and then writes, with nothing holding the item in
between; its threaded server runs requests side by side, so two writers conditioned on the same
``version`` can both succeed and the later one silently undoes the earlier (a stored transcript
turned back into a queued one, on a busy machine). Real DynamoDB never lets both through. The
emulator therefore serves DynamoDB requests one at a time; every other service stays concurrent.

    python -m meetpilot_dev.stack.emulator --port 5000   # the key id in MEETPILOT_EMULATOR_ACCESS_KEY
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

ACCESS_KEY_ENV = "MEETPILOT_EMULATOR_ACCESS_KEY"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_V2_HEADER = re.compile(r"^AWS ([^:\s]+):")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class EmulatorGuard:
    """WSGI middleware: serve only requests made with ``access_key``, never a web page's."""

    def __init__(self, app: WsgiApp, access_key: str) -> None:
        if not access_key:
            raise ValueError("the emulator needs the stack's access key id")
        self._app = app
        self._key = access_key.encode()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._refusal(environ)
        if refusal is not None:
            body = f'{{"message": "{refusal}"}}'.encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        def without_cors(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, *exc)

        return self._app(environ, without_cors)

    def _refusal(self, environ: dict[str, Any]) -> str | None:
        if environ.get("HTTP_ORIGIN") or environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
            return "the local AWS emulator serves the local stack only, not web pages"
        presented = self._key_id(environ)
        if presented is None or not hmac.compare_digest(presented.encode(), self._key):
            return "sign requests with the local stack's credentials (the export lines meetpilot dev prints)"
        return None

    @staticmethod
    def _key_id(environ: dict[str, Any]) -> str | None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        found = _CREDENTIAL.search(auth) or _V2_HEADER.match(auth)
        if found:
            return str(found.group(1))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        for name in ("X-Amz-Credential", "AWSAccessKeyId"):  # presigned: SigV4, and SigV2 for S3
            if query.get(name):
                return str(query[name][0].split("/", 1)[0])
        return None


class SerialDynamoDB:
    """WSGI middleware: one DynamoDB (and DynamoDB Streams) request at a time, so that a conditional
    write's check and its write are one step, as in DynamoDB; other services pass straight through."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))  # the whole answer, before the next request


def moto_app() -> WsgiApp:
    """moto's server application, with DynamoDB's conditional writes made atomic.

    moto is imported here, in the emulator's own process: importing it costs 0.39 s and 31 MB
    (0.47 s and 51 MB against 0.09 s and 20 MB for this module alone, medians of 5), which the
    stack's process, the tests and every CLI command would otherwise pay for nothing.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    bound_stream_retention()
    linear_sqs_queues()
    partitioned_dynamodb_queries()
    return SerialDynamoDB(DomainDispatcherApplication(create_backend_app))


_QUERYING = threading.local()


def partitioned_dynamodb_queries() -> None:
    """Make a moto Query read its partition, not sort the whole table first.

    moto answers every Query, on the table or an index, by sorting every item of the table by its
    key and then keeping those of the partition asked for: a session read cost a sort of the bench's
    hundred thousand items, and Query was most of the emulator's time once SQS was fixed (sampling
    profiler, burst bench). During a Query, the table's items come unsorted, and for a query of
    the table itself only from its partition: moto sorts what it keeps afterwards by the table's or
    the index's key, so the answer, its order and its pages are what they were. Scans keep moto's
    sorted walk (their pages depend on it)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_meetpilot_partitioned", False):
        return
    query, all_items = Table.query, Table.all_items

    def partitioned_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _QUERYING.table, _QUERYING.partition = self, (None if index_name else hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _QUERYING.table = _QUERYING.partition = None

    def items_for_query(table: Any) -> Any:
        querying: Any = getattr(_QUERYING, "table", None)
        if querying is not table:
            return all_items(table)
        partition = _QUERYING.partition
        if partition is not None:
            found = table.items.get(partition)  # a defaultdict: .get adds nothing
            if found is None:
                return []
            return list(found.values()) if table.range_key_attr else [found]
        if not table.range_key_attr:
            return list(table.items.values())
        return [item for part in table.items.values() for item in part.values()]

    setattr(Table, "query", partitioned_query)  # noqa: B010 - patching moto's class, not an instance
    setattr(Table, "all_items", items_for_query)  # noqa: B010
    setattr(Table, "_meetpilot_partitioned", True)  # noqa: B010


def linear_sqs_queues() -> None:
    """Make moto's SQS cost per call what SQS's does, not grow with the messages a queue holds.

    moto answers each message it hands out by computing every attribute of its queue, message
    counts included, to read the retention period: a pass over every message the queue holds, each
    asking the clock twice through a datetime round trip. With a thousand dispatches held back with
    a delay (the dispatch plan does that), a receive of ten messages walked the queue ten times, and
    the emulator spent nine tenths of its core there (measured with a sampling profiler during the
    burst bench). The retention period is read from the queue itself, and a message's visibility
    and delay from the wall clock in milliseconds, which is what moto's helper computes."""
    from moto.sqs.models import Message, SQSBackend

    if getattr(SQSBackend, "_meetpilot_linear", False):
        return

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > time.time())

    def visible(self: Any) -> bool:
        return bool(time.time() * 1000 > self.visible_at)

    def delayed(self: Any) -> bool:
        return bool(time.time() * 1000 < self.delayed_until)

    setattr(SQSBackend, "is_message_valid_based_on_retention_period", retained)  # noqa: B010 - moto's class
    setattr(Message, "visible", property(visible))  # noqa: B010
    setattr(Message, "delayed", property(delayed))  # noqa: B010
    setattr(SQSBackend, "_meetpilot_linear", True)  # noqa: B010


STREAM_RECORDS_KEPT = 10_000  # the stack's reader is seconds behind at most; DynamoDB keeps 24 hours
SHARD_ITERATORS_KEPT = 1_000


def bound_stream_retention() -> None:
    """Keep moto's table stream and its shard iterators bounded, as DynamoDB's 24-hour retention
    keeps a stream. moto keeps every record (two item images each) and every iterator it ever
    handed out, which over a long run (the bench writes a few hundred thousand times) is gigabytes.
    Trimming advances the shard's first sequence number, so later numbers stay as they were."""
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if getattr(StreamShard, "_meetpilot_bounded", False):
        return
    add, get_records = StreamShard.add, DynamoDBStreamsBackend.get_records

    def bounded_add(self: Any, old: Any, new: Any) -> None:
        add(self, old, new)
        excess = len(self.items) - STREAM_RECORDS_KEPT
        if excess > 0:
            del self.items[:excess]
            self.starting_sequence_number += excess

    def bounded_get_records(self: Any, iterator_arn: str, limit: int) -> Any:
        result = get_records(self, iterator_arn, limit)
        for stale in list(self.shard_iterators)[: max(0, len(self.shard_iterators) - SHARD_ITERATORS_KEPT)]:
            del self.shard_iterators[stale]
        return result

    setattr(StreamShard, "add", bounded_add)  # noqa: B010 - patching moto's class, not an instance
    setattr(DynamoDBStreamsBackend, "get_records", bounded_get_records)  # noqa: B010
    setattr(StreamShard, "_meetpilot_bounded", True)  # noqa: B010


def serve(host: str, port: int, access_key: str) -> None:
    """Run moto's server behind the guard (blocks)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler  # in the emulator's process only, as above
    from werkzeug.serving import run_simple

    run_simple(host, port, EmulatorGuard(moto_app(), access_key), threaded=True, request_handler=MotoRequestHandler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AwsEmulator:
    def __init__(self, *, access_key: str, start_timeout: float = 30.0) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._timeout = start_timeout
        self._access_key = access_key
        self.endpoint = ""

    def start(self) -> str:
        for _ in range(3):  # another process may take the free port between probe and bind
            port = _free_port()
            env = {
                **os.environ,
                "MOTO_ALLOW_NONEXISTENT_REGION": "false",
                "MOTO_DISABLE_GLOBAL_CORS": "true",
                "MOTO_PORT": str(port),  # moto builds some URLs it hands out (SQS queue URLs) from it
                ACCESS_KEY_ENV: self._access_key,  # in the environment, not in the process list
            }
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "meetpilot_dev.stack.emulator", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            self.endpoint = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self.endpoint
            self.stop()
        raise RuntimeError("the AWS emulator (moto server) did not start; is the 'local' extra installed?")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            signed = {"Authorization": f"AWS4-HMAC-SHA256 Credential={self._access_key}/"}
            probe = urllib.request.Request(f"{self.endpoint}/moto-api/", headers=signed)  # noqa: S310 - loopback
            try:
                with urllib.request.urlopen(probe, timeout=1):  # noqa: S310 - loopback
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meetpilot_dev.stack.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    access_key = os.environ.get(ACCESS_KEY_ENV, "")
    if not access_key:
        parser.error(f"set {ACCESS_KEY_ENV} to the access key id the stack signs with")
    serve(args.host, args.port, access_key)


if __name__ == "__main__":
    main()
