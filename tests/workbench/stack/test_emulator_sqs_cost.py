"""The emulator's SQS: a receive costs the same whatever the queue holds, and SQS semantics stay.

moto, as shipped, walks every message of the queue once per message it hands out (to read the
retention period through the queue's full attribute set, message counts included). The emulator
reads the retention period directly; these tests count the walk and check that delays,
visibility and retention still behave as SQS's do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

moto = pytest.importorskip("moto")

from meetpilot_dev.stack.emulator import linear_sqs_queues  # noqa: E402 - after the skip


@pytest.fixture
def sqs(in_process_moto: str) -> Iterator[Any]:
    linear_sqs_queues()
    with moto.mock_aws():
        yield boto3.client("sqs", region_name=in_process_moto)


def _delay_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count how often a message's delay is looked at."""
    from moto.sqs.models import Message

    seen = {"delayed": 0}
    original = Message.delayed

    def counting(self: Any) -> bool:
        seen["delayed"] += 1
        return bool(original.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Message, "delayed", property(counting))
    return seen


def test_a_receive_walks_a_queue_of_held_messages_about_once(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="held")["QueueUrl"]
    held = 400
    for start in range(0, held, 10):
        entries = [{"Id": str(i), "MessageBody": "later", "DelaySeconds": 900} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=f"now {i}")
    seen = _delay_checks(monkeypatch)

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    assert sorted(m["Body"] for m in got) == [f"now {i}" for i in range(10)]
    # One walk over the queue to find what is visible; moto as shipped makes one more per message
    # handed out and more (24,845 looks here, measured with the patch left out).
    assert seen["delayed"] <= 2 * (held + 10), seen


def test_delay_visibility_and_retention_still_hold(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="semantics", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="held", DelaySeconds=900)
    sqs.send_message(QueueUrl=url, MessageBody="ready")

    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert [m["Body"] for m in first] == ["ready"]
    # In flight: not handed out again until its visibility timeout passes.
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)

    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].get_queue("semantics")
    ready = next(m for m in queue._messages if m.body == "ready")
    ready.visible_at = time.time() * 1000 - 1  # its visibility timeout has passed
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in again] == ["ready"]

    # Past the queue's retention period a message is no longer handed out.
    ready.visible_at = time.time() * 1000 - 1
    # moto declares the timestamp None until the message is sent.
    ready.sent_timestamp = int((time.time() - 61) * 1000)  # type: ignore[assignment]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
