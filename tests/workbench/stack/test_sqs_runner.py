"""The local event source mapping behaves as Lambda's: partial batch failures, redelivery, DLQ."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from meetpilot.handlers.sqs_batch import run_batch
from meetpilot_dev.stack.sqs_runner import QueueFeeder


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def make_queue(sqs, max_receive=2):
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}),
        },
    )["QueueUrl"]
    return url, dlq


def count(sqs, url):
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_one_failing_record_leaves_the_others_processed_and_comes_back(sqs):
    url, dlq = make_queue(sqs, max_receive=5)
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    seen: list[int] = []

    def record_handler(record):
        n = json.loads(record.body)["n"]
        seen.append(n)
        if n == 3 and seen.count(3) == 1:
            raise RuntimeError("transient failure on record 3")

    feeder = QueueFeeder(sqs, url, lambda e, c: run_batch(e, c, record_handler), function_name="Work", batch_size=10)
    feeder.poll_once()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert feeder.failed_records == 1
    assert count(sqs, url) == 1  # only the failed record is left, invisible for now
    time.sleep(1.2)  # its visibility timeout passes, as in SQS
    feeder.poll_once()
    assert seen.count(3) == 2 and count(sqs, url) == 0 and count(sqs, dlq) == 0


def test_record_failing_max_receive_count_times_lands_in_the_dlq(sqs):
    url, dlq = make_queue(sqs, max_receive=2)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"poison": True}))
    attempts = []

    def always_fails(record):
        attempts.append(record.message_id)
        raise ValueError("cannot process this message")

    feeder = QueueFeeder(sqs, url, lambda e, c: run_batch(e, c, always_fails), function_name="Work")
    for _ in range(3):
        feeder.poll_once()
        time.sleep(1.1)
    feeder.poll_once()
    assert len(attempts) == 2
    assert count(sqs, url) == 0
    moved = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert json.loads(moved[0]["Body"]) == {"poison": True}


def test_a_crashing_handler_fails_the_whole_batch(sqs):
    url, _ = make_queue(sqs, max_receive=5)
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    errors = []

    def crash(event, context):
        raise MemoryError("the function ran out of memory")

    feeder = QueueFeeder(sqs, url, crash, function_name="Work", on_error=errors.append)
    assert feeder.poll_once() == 3
    assert feeder.failed_records == 3 and len(errors) == 1
    assert count(sqs, url) == 3
