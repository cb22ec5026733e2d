"""`meetpilot redrive`: dead letters go back to their queue, nothing lost, nothing sent round twice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from meetpilot.composition import Container, use_container
from meetpilot.domain.clock import to_iso
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.webhook_auth import capability_token
from meetpilot.handlers import ingest
from meetpilot_dev.cli import app
from meetpilot_dev.dev_state import write_state
from meetpilot_dev.redrive import RedriveError, dead_letter_queue_url, redrive
from meetpilot_dev.stack.embedded import LocalStack, StackOptions


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def make_queue(sqs, name="work", *, max_receive=3, visibility=30):
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}),
        },
    )["QueueUrl"]
    return url, dlq


def everything(sqs, url) -> list[dict[str, Any]]:
    """Every message in ``url`` (bodies and attributes), removed from it."""
    out = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        for m in messages:
            out.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_every_dead_letter_goes_back_with_its_body_and_attributes(sqs):
    url, dlq = make_queue(sqs)
    for n in range(23):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "poison"},
                "blob": {"DataType": "Binary", "BinaryValue": bytes([n])},
                "attempt": {"DataType": "Number", "StringValue": str(n)},
            },
        )
    assert redrive(sqs, dlq, url) == 23
    assert everything(sqs, dlq) == []
    back = everything(sqs, url)
    assert sorted(json.loads(m["Body"])["n"] for m in back) == list(range(23))
    for m in back:
        n = json.loads(m["Body"])["n"]
        assert m["MessageAttributes"]["kind"]["StringValue"] == "poison"
        assert m["MessageAttributes"]["blob"]["BinaryValue"] == bytes([n])
        assert m["MessageAttributes"]["attempt"] == {"DataType": "Number", "StringValue": str(n)}


def test_max_messages_moves_only_that_many_and_an_empty_dlq_moves_none(sqs):
    url, dlq = make_queue(sqs)
    for n in range(5):
        sqs.send_message(QueueUrl=dlq, MessageBody=str(n))
    assert redrive(sqs, dlq, url, max_messages=3) == 3
    assert len(everything(sqs, url)) == 3
    assert redrive(sqs, dlq, url) == 2
    assert redrive(sqs, dlq, url) == 0


def test_the_dlq_is_found_through_the_queues_redrive_policy(sqs):
    url, dlq = make_queue(sqs, "meetpilot-local-bot-events-queue")
    assert dead_letter_queue_url(sqs, url) == dlq
    plain = sqs.create_queue(QueueName="no-dlq")["QueueUrl"]
    with pytest.raises(RedriveError, match="no RedrivePolicy"):
        dead_letter_queue_url(sqs, plain)
    with pytest.raises(RedriveError, match="same queue"):
        redrive(sqs, dlq, dlq)


class FailingSends:
    """An SQS client whose sends start failing after ``ok`` of them."""

    def __init__(self, client, ok: int) -> None:
        self._client, self._ok = client, ok

    def send_message(self, **kwargs):
        if self._ok == 0:
            raise ConnectionError("the target queue is unreachable")
        self._ok -= 1
        return self._client.send_message(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_failed_send_deletes_nothing_it_did_not_move(sqs):
    url, dlq = make_queue(sqs)
    for n in range(6):
        sqs.send_message(QueueUrl=dlq, MessageBody=str(n))
    with pytest.raises(RedriveError, match="after 4 message") as raised:
        redrive(FailingSends(sqs, ok=4), dlq, url)
    assert raised.value.moved == 4
    moved = {m["Body"] for m in everything(sqs, url)}
    left = {m["Body"] for m in everything(sqs, dlq)}  # visible again at once, not after a minute
    assert len(moved) == 4 and len(left) == 2 and moved | left == {str(n) for n in range(6)}


class FailingAgainAtOnce:
    """A target whose consumer fails every message straight back into the DLQ (cause not fixed)."""

    def __init__(self, client, target: str) -> None:
        self._client, self._target = client, target

    def send_message(self, **kwargs):
        sent = self._client.send_message(**kwargs)
        # maxReceiveCount is 1 and visibility 0: the second receive moves it to the DLQ.
        for _ in range(2):
            self._client.receive_message(QueueUrl=self._target, VisibilityTimeout=0)
        return sent

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_message_failing_again_during_the_redrive_is_not_sent_round_again(sqs):
    url, dlq = make_queue(sqs, max_receive=1, visibility=0)
    sqs.send_message(QueueUrl=dlq, MessageBody="still poison")
    assert redrive(FailingAgainAtOnce(sqs, url), dlq, url) == 1  # terminates: moved once, not forever
    assert [m["Body"] for m in everything(sqs, dlq)] == ["still poison"]


# --- the command, on the local stack ---------------------------------------------------------

BOT = "6667fd0c-0165-471a-a880-06a1180be377"


@pytest.fixture
def stack():
    # Visibility 0: a failed record is received again at once, so it reaches the DLQ in moments.
    started = LocalStack(StackOptions(background_pollers=False, queue_visibility_seconds=0)).start()
    yield started
    started.stop()


def test_poison_message_reaches_the_dlq_then_redrive_brings_it_back_and_it_is_processed(stack, tmp_path, monkeypatch):
    repo = stack.container.repository
    session = Session("sess-7", "https://zoom.us/j/7|2026-12-01T15:00Z", TranscriptMode.POST_CALL, bot_id=BOT)
    assert repo.create_session(session, datetime.now(UTC))
    processed = {"event": "transcription.processed", "bot_id": BOT, "timestamp": to_iso(datetime.now(UTC))}
    delivery = {
        "headers": {"content-type": "application/json"},
        "body": json.dumps(processed),
        "pathParameters": {"session_id": "sess-7", "token": capability_token(stack.webhook_secret, "sess-7")},
    }
    assert ingest.handler(delivery, None)["statusCode"] == 200

    # The cause: bot_events cannot reach the transcript queue, so the record fails on every receive.
    settings = stack.container.settings
    broken = Container(
        replace(settings, transcript_queue_url=settings.transcript_queue_url + "-gone"),
        boto_session=stack.boto_session,
        endpoint_url=stack.aws_endpoint,
    )
    feeder = stack.feeders["BotEventsFunction"]
    use_container(broken)
    try:
        feeder.drain()
    finally:
        use_container(stack.container)
    assert feeder.failed_records == 5  # maxReceiveCount in template.yaml
    sqs = stack.container.client("sqs")
    dlq = stack.resources.dlq_url_for("BotEventsQueue")
    waiting = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert waiting["ApproximateNumberOfMessages"] == "1"
    assert repo.get_session("sess-7").transcript_job_pending  # decided, never sent

    # The cause is fixed; the command finds the running stack through its state file.
    monkeypatch.chdir(tmp_path)
    write_state(stack)
    result = CliRunner().invoke(app, ["redrive", "bot-events"])
    assert result.exit_code == 0, result.output
    assert "moved 1 message(s) from meetpilot-local-bot-events-dlq back to meetpilot-local-bot-events-queue" in (
        result.output
    )

    feeder.drain()
    assert feeder.failed_records == 5  # no new failure
    after = repo.get_session("sess-7")
    assert not after.transcript_job_pending and after.transcript_state is TranscriptState.QUEUED
    jobs = everything(sqs, settings.transcript_queue_url)
    assert [json.loads(m["Body"])["session_id"] for m in jobs] == ["sess-7"]
    assert redrive(sqs, dlq, stack.container.settings.bot_events_queue_url) == 0


def test_redrive_without_a_running_dev_stack_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["redrive", "dispatch"])
    assert result.exit_code == 2
    assert "meetpilot dev" in result.output and "--queue-url" in result.output
