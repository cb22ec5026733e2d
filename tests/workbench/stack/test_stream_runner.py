"""The local DynamoDB event source mapping behaves as Lambda's: it reads the table's stream with
old and new images, honours batchItemFailures (retrying from the first failed record), bisects a
crashing batch, gives up to the on-failure queue, and in the embedded stack carries a session's
status change to EventBridge through the publisher."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meetpilot.app.sessions import update_session
from meetpilot.domain.session import Session, TranscriptMode
from meetpilot.domain.status import BotStatus
from meetpilot_dev.stack.embedded import LocalStack, StackOptions
from meetpilot_dev.stack.stream_runner import StreamFeeder, StreamPollerThread
from meetpilot_dev.stack.template import StreamSource, load_template, stream_event_sources
from tests.support.event_schemas import validate
from tests.support.stacks import FAST_SIMULATOR


def source(**overrides: Any) -> StreamSource:
    settings: dict[str, Any] = {
        "function_logical_id": "StreamPublisherFunction",
        "handler": "unused",
        "table_logical_id": "Table",
        "batch_size": 10,
        "report_batch_item_failures": True,
        "bisect_on_error": True,
        "maximum_retry_attempts": 2,
        "maximum_record_age_seconds": 3600,
        "on_failure_queue_logical_id": "Failures",
        "filters": ({"dynamodb": {"NewImage": {"type": {"S": ["session"]}}}},),
    }
    settings.update(overrides)
    return StreamSource(**settings)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        failures = sqs.create_queue(QueueName="failures")["QueueUrl"]
        yield {
            "ddb": ddb,
            "sqs": sqs,
            "failures": failures,
            # botocore now signs Streams calls to an account endpoint that in-process moto does not
            # route; the service's regional endpoint it does (the embedded stack names its own).
            "streams": boto3.client(
                "dynamodbstreams",
                region_name="us-east-1",
                endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com",
            ),
            "arn": table["LatestStreamArn"],
        }


def put(ddb: Any, n: int, kind: str = "session") -> None:
    ddb.put_item(TableName="t", Item={"pk": {"S": f"SESSION#{n}"}, "sk": {"S": "SESSION"}, "type": {"S": kind}})


class Recorder:
    """A handler that records the batches it got and fails as told."""

    def __init__(self, fail: Callable[[list[dict[str, Any]]], dict[str, Any] | None] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self._fail = fail

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        self.batches.append(records)
        answer = self._fail(records) if self._fail else None
        return answer or {"batchItemFailures": []}

    def pks(self, batch: int) -> list[str]:
        return [r["dynamodb"]["Keys"]["pk"]["S"] for r in self.batches[batch]]


def feeder(aws: dict[str, Any], handler: Any, **overrides: Any) -> StreamFeeder:
    return StreamFeeder(
        aws["streams"],
        aws["arn"],
        handler,
        source=source(**overrides),
        sqs=aws["sqs"],
        failure_queue_url=aws["failures"],
    )


def test_the_emulators_stream_carries_old_and_new_images_for_put_update_and_delete(aws: dict[str, Any]) -> None:
    ddb = aws["ddb"]
    key = {"pk": {"S": "SESSION#1"}, "sk": {"S": "SESSION"}}
    ddb.put_item(TableName="t", Item={**key, "type": {"S": "session"}, "status": {"S": "pending"}})
    ddb.update_item(
        TableName="t",
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "joining"}},
    )
    ddb.delete_item(TableName="t", Key=key)
    seen = Recorder()
    feeder(aws, seen, filters=()).drain()
    records = [r for batch in seen.batches for r in batch]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    insert, update, remove = (r["dynamodb"] for r in records)
    assert "OldImage" not in insert and insert["NewImage"]["status"] == {"S": "pending"}
    assert update["OldImage"]["status"] == {"S": "pending"} and update["NewImage"]["status"] == {"S": "joining"}
    assert remove["OldImage"]["status"] == {"S": "joining"} and "NewImage" not in remove
    assert all(r["eventSourceARN"] == aws["arn"] for r in records)


def test_records_no_filter_matches_are_skipped_without_an_invocation(aws: dict[str, Any]) -> None:
    put(aws["ddb"], 1, kind="meeting")
    put(aws["ddb"], 2)
    seen = Recorder()
    feeder(aws, seen).drain()
    assert [seen.pks(i) for i in range(len(seen.batches))] == [["SESSION#2"]]


def test_a_reported_failure_checkpoints_what_came_before_and_retries_from_it(aws: dict[str, Any]) -> None:
    for n in range(5):
        put(aws["ddb"], n)
    failed_once: list[str] = []

    def fail_third(records: list[dict[str, Any]]) -> dict[str, Any] | None:
        third = next((r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == "SESSION#2"), None)
        if third is None or failed_once:
            return None
        failed_once.append(third["dynamodb"]["SequenceNumber"])
        return {"batchItemFailures": [{"itemIdentifier": third["dynamodb"]["SequenceNumber"]}]}

    seen = Recorder(fail_third)
    stream = feeder(aws, seen)
    stream.drain()
    assert seen.pks(0) == [f"SESSION#{n}" for n in range(5)]
    assert seen.pks(1) == ["SESSION#2", "SESSION#3", "SESSION#4"]  # from the failed record on
    assert len(seen.batches) == 2 and stream.records_given_up == 0


def test_a_crashing_batch_is_bisected_until_the_bad_record_is_alone_then_sent_to_the_failure_queue(
    aws: dict[str, Any],
) -> None:
    for n in range(4):
        put(aws["ddb"], n)

    def crash_on_two(records: list[dict[str, Any]]) -> dict[str, Any] | None:
        if any(r["dynamodb"]["Keys"]["pk"]["S"] == "SESSION#2" for r in records):
            raise RuntimeError("cannot handle record 2")
        return None

    seen = Recorder(crash_on_two)
    stream = feeder(aws, seen, maximum_retry_attempts=1)
    stream.drain()
    sizes = [len(b) for b in seen.batches]
    assert sizes[:2] == [4, 2]  # the whole batch, then half of it
    delivered = {pk for i in range(len(seen.batches)) for pk in seen.pks(i)}
    assert delivered == {f"SESSION#{n}" for n in range(4)}
    assert stream.records_given_up == 1
    (message,) = aws["sqs"].receive_message(QueueUrl=aws["failures"])["Messages"]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == aws["arn"]
    # Everything after the given-up record was still handed over, once it was alone.
    assert seen.pks(len(seen.batches) - 1) == ["SESSION#3"]


def test_the_template_mapping_is_what_the_local_stack_reads() -> None:
    (mapping,) = stream_event_sources(load_template())
    assert mapping.function_logical_id == "StreamPublisherFunction"
    assert mapping.handler == "meetpilot.handlers.stream_publisher.handler"
    assert mapping.report_batch_item_failures and mapping.bisect_on_error
    assert mapping.on_failure_queue_logical_id == "StreamPublisherFailureQueue"
    assert mapping.maximum_retry_attempts > 0


# --- the embedded stack ---------------------------------------------------------------------------


@pytest.fixture
def pollers() -> Iterator[LocalStack]:
    """The stack as ``meetpilot dev`` runs it: background pollers, the stream reader among them."""
    stack = LocalStack(StackOptions(background_pollers=True, simulator_overrides=FAST_SIMULATOR)).start()
    try:
        yield stack
    finally:
        stack.stop()


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_status_change_in_the_table_reaches_eventbridge_through_the_stream(pollers: LocalStack) -> None:
    stack = pollers
    assert stack.container is not None
    assert any(isinstance(p, StreamPollerThread) for p in stack._pollers)
    repo = stack.container.repository
    now = datetime.now(UTC)
    session = Session(
        "stream-s1", "meet.google.com/str-eamx-abc@" + now.strftime("%Y-%m-%dT%H:%MZ"), TranscriptMode.NONE
    )
    assert repo.create_session(session, now)

    def to_joining(current: Session) -> Session:
        current.status = BotStatus.JOINING
        current.bot_id = "bot-stream-1"
        return current

    update_session(repo, "stream-s1", to_joining, stack.clock)
    seen: list[dict[str, Any]] = []

    def arrived() -> bool:  # read the tap only: the background reader must have carried it
        seen.extend(stack.event_tap.drain()[len(seen) :])
        return any(e["detail"].get("session_id") == "stream-s1" for e in seen)

    assert _wait(arrived)
    (event,) = [e for e in seen if e["detail"].get("session_id") == "stream-s1"]
    validate(event)
    assert event["detail-type"] == "SessionStatusChanged"
    assert (event["detail"]["old_status"], event["detail"]["new_status"]) == ("pending", "joining")
    assert event["detail"]["sequence"] == 1 and event["detail"]["bot_id"] == "bot-stream-1"
    assert stack.handler_errors == []


def test_the_publisher_reports_a_record_eventbridge_rejects_and_the_retry_publishes_it(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory()
    assert stack.container is not None
    events = stack.container.client("events")
    rejected: list[int] = []
    lock = threading.Lock()

    def reject_first_call(params: dict[str, Any], **_: Any) -> None:
        with lock:
            rejected.append(len(params["Entries"]))
            if len(rejected) <= 3:  # every attempt of the first invocation
                for entry in params["Entries"]:
                    entry["DetailType"] = ""  # EventBridge answers with an ErrorCode for it

    events.meta.events.register("before-parameter-build.events.PutEvents", reject_first_call)
    repo = stack.container.repository
    now = datetime.now(UTC)
    key = "meet.google.com/rej-ectx-abc@" + now.strftime("%Y-%m-%dT%H:%MZ")
    assert repo.create_session(Session("stream-s2", key, TranscriptMode.NONE), now)

    def schedule(current: Session) -> Session:
        current.status = BotStatus.SCHEDULED
        return current

    update_session(repo, "stream-s2", schedule, stack.clock)
    (feeder,) = stack.stream_feeders.values()
    # The session's INSERT (announcing nothing) and its MODIFY, whose event every attempt gets
    # rejected: the MODIFY is reported, the INSERT before it checkpointed.
    assert feeder.poll_once() == 2
    assert feeder.failed_invocations == 1 and rejected == [1, 1, 1]
    assert [e for e in stack.event_tap.drain() if e["detail"].get("session_id") == "stream-s2"] == []
    published = [e for e in stack.published_events() if e["detail"].get("session_id") == "stream-s2"]
    assert len(published) == 1 and published[0]["detail"]["new_status"] == "scheduled"
    assert feeder.invocations == 2  # the retry, from the reported record: one record


def test_demo_like_run_publishes_through_the_stream_and_leaves_it_read(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory()
    key = stack.submit_meeting("https://meet.google.com/dem-oabc-xyz", datetime.now(UTC) + timedelta(seconds=2))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stack.drain()
        session = stack.session_for(key)
        if session is not None and session.outcome is not None:
            break
        time.sleep(0.05)
    assert stack.session_for(key).outcome is not None
    kinds = {e["detail-type"] for e in stack.published_events()}
    assert {"SessionStatusChanged", "TranscriptReady"} <= kinds
    assert stack.quiet()


def test_the_emulators_stream_stays_bounded_and_a_reader_that_keeps_up_misses_nothing(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from meetpilot_dev.stack import emulator

    emulator.bound_stream_retention()  # what the emulator process does at start
    monkeypatch.setattr(emulator, "STREAM_RECORDS_KEPT", 5)
    seen = Recorder()
    stream = feeder(aws, seen, filters=())
    for round_ in range(4):
        for n in range(4):
            put(aws["ddb"], 10 * round_ + n)
        stream.drain()
    pks = [pk for i in range(len(seen.batches)) for pk in seen.pks(i)]
    assert pks == [f"SESSION#{10 * r + n}" for r in range(4) for n in range(4)]
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].get_table("t")
    assert table.stream_shard is not None and len(table.stream_shard.items) <= 5


def test_the_background_poller_gathers_records_for_the_batching_window(aws: dict[str, Any]) -> None:
    seen = Recorder()
    stream = feeder(aws, seen, filters=(), maximum_batching_window_seconds=0.5)
    put(aws["ddb"], 1)
    assert stream.poll_once(wait_for_window=True) == 0  # gathering: the window has just started
    put(aws["ddb"], 2)
    assert stream.poll_once(wait_for_window=True) == 0
    assert _wait(lambda: stream.poll_once(wait_for_window=True) == 2, timeout=5)
    assert [seen.pks(0)] == [["SESSION#1", "SESSION#2"]]  # one invocation for both writes
