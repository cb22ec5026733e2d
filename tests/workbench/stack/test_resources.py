"""create_stack_resources builds, in an emulated AWS account, exactly what template.yaml declares."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meetpilot.errors import ConfigurationError
from meetpilot_dev.stack.resources import StackResources, create_stack_resources
from meetpilot_dev.stack.template import (
    bucket_definition,
    load_template,
    queue_definitions,
    table_definition,
    ttl_attribute,
)

REGION = "us-east-1"
RESOURCE_ENV = {
    "TABLE_NAME",
    "TRANSCRIPT_BUCKET",
    "DISPATCH_QUEUE_URL",
    "BOT_EVENTS_QUEUE_URL",
    "TRANSCRIPT_QUEUE_URL",
    "SCHEDULE_GROUP",
    "CALENDAR_SYNC_QUEUE_URL",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def stack(session: boto3.Session, template: dict[str, Any]) -> StackResources:
    return create_stack_resources(session, prefix="mp-test", template=template)


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


# --- DynamoDB ---------------------------------------------------------------------------------


def test_table_matches_the_template(session: boto3.Session, stack: StackResources, template: dict[str, Any]) -> None:
    dynamodb = session.client("dynamodb")
    described = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    expected = table_definition(template)

    assert _keys(described["KeySchema"]) == _keys(expected["KeySchema"])
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(a["AttributeName"], a["AttributeType"]) for a in described["AttributeDefinitions"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in expected["AttributeDefinitions"]
    }
    indexes = {
        i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in described["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in expected["GlobalSecondaryIndexes"]
    }
    assert set(indexes) == {"by-calendar-event", "by-bot", "attention", "sessions-by-status", "sessions-by-month"}

    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": ttl_attribute(template)}


def test_attention_index_is_sparse(session: boto3.Session, stack: StackResources) -> None:
    table = session.resource("dynamodb").Table(stack.table_name)
    table.put_item(Item={"pk": "SESSION#a", "sk": "SESSION", "attention_shard": "0", "attention_due": "2026-01-01"})
    table.put_item(Item={"pk": "SESSION#b", "sk": "SESSION"})

    found = table.query(
        IndexName="attention",
        KeyConditionExpression="attention_shard = :s AND attention_due <= :now",
        ExpressionAttributeValues={":s": "0", ":now": "2026-12-31"},
    )["Items"]

    assert [item["pk"] for item in found] == ["SESSION#a"]


# --- SQS --------------------------------------------------------------------------------------


def test_queues_have_the_template_settings(
    session: boto3.Session, stack: StackResources, template: dict[str, Any]
) -> None:
    sqs = session.client("sqs")
    for queue in queue_definitions(template):
        attributes = sqs.get_queue_attributes(QueueUrl=stack.url(queue.logical_id), AttributeNames=["All"])[
            "Attributes"
        ]
        assert int(attributes["VisibilityTimeout"]) == queue.visibility_timeout, queue.logical_id
        assert int(attributes["MessageRetentionPeriod"]) == queue.retention, queue.logical_id
        if queue.dlq_logical_id is None:
            assert "RedrivePolicy" not in attributes
            continue
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == stack.queue_arns[queue.dlq_logical_id]
        assert int(redrive["maxReceiveCount"]) == queue.max_receive_count


@pytest.mark.parametrize("queue_id", ["DispatchQueue", "BotEventsQueue", "TranscriptQueue"])
def test_a_message_that_keeps_failing_lands_in_the_dlq(
    session: boto3.Session, stack: StackResources, template: dict[str, Any], queue_id: str
) -> None:
    sqs = session.client("sqs")
    (queue,) = (q for q in queue_definitions(template) if q.logical_id == queue_id)
    assert queue.max_receive_count is not None
    url = stack.queue_urls[queue_id]
    sqs.send_message(QueueUrl=url, MessageBody='{"poison": true}')

    # Each receive without a delete is one failed attempt; VisibilityTimeout=0 makes the message
    # visible again at once instead of after the queue's (minutes-long) timeout.
    for attempt in range(1, queue.max_receive_count + 1):
        messages = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, AttributeNames=["All"])["Messages"]
        assert int(messages[0]["Attributes"]["ApproximateReceiveCount"]) == attempt

    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == []
    dead = sqs.receive_message(QueueUrl=stack.dlq_url_for(queue_id)).get("Messages", [])
    assert [m["Body"] for m in dead] == ['{"poison": true}']


# --- S3 ---------------------------------------------------------------------------------------


def test_bucket_protection_reads_back(session: boto3.Session, stack: StackResources, template: dict[str, Any]) -> None:
    s3 = session.client("s3")
    expected = bucket_definition(template)

    rules = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == [
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in expected.encryption_rules
    ]
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_versioning(Bucket=stack.bucket)["Status"] == "Enabled"
    ownership = s3.get_bucket_ownership_controls(Bucket=stack.bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_outside_us_east_1_gets_a_location_constraint(session: boto3.Session, template: dict[str, Any]) -> None:
    eu = boto3.Session(region_name="eu-west-1")
    stack = create_stack_resources(eu, prefix="mp-eu", template=template)
    location = eu.client("s3").get_bucket_location(Bucket=stack.bucket)["LocationConstraint"]
    assert location == "eu-west-1"


# --- schedule group, names, environment -------------------------------------------------------


def test_schedule_group_exists(session: boto3.Session, stack: StackResources) -> None:
    group = session.client("scheduler").get_schedule_group(Name=stack.schedule_group)
    assert group["Name"] == stack.schedule_group


def test_names_are_valid_for_real_aws_and_dynamodb_local(stack: StackResources) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", stack.table_name)
    assert re.fullmatch(r"(?!-)[a-z0-9-]{3,63}(?<!-)", stack.bucket)
    assert re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", stack.schedule_group)
    for url in [*stack.queue_urls.values(), *stack.dlq_urls.values()]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", url.rsplit("/", 1)[1])
    assert stack.queue_urls["BotEventsQueue"].endswith("/mp-test-bot-events-queue")
    assert stack.dlq_urls["DispatchDLQ"].endswith("/mp-test-dispatch-dlq")


def test_environment_names_every_resource_the_handlers_read(stack: StackResources) -> None:
    env = stack.environment()
    # plus the ARNs the dispatch function hands to its schedules (!GetAtt ... .Arn in the template)
    assert set(env) == RESOURCE_ENV | {
        "DISPATCH_QUEUE_ARN",
        "DISPATCH_DLQ_ARN",
        "SCHEDULER_ROLE_ARN",
        "CALENDAR_GRANTS_KEY_ID",
    }
    assert env["DISPATCH_QUEUE_ARN"] == stack.queue_arns["DispatchQueue"]
    assert env["DISPATCH_DLQ_ARN"].endswith(":mp-test-dispatch-dlq")
    assert env["SCHEDULER_ROLE_ARN"].startswith("arn:aws:iam::")
    assert env["TABLE_NAME"] == stack.table_name
    assert env["TRANSCRIPT_BUCKET"] == stack.bucket
    assert env["DISPATCH_QUEUE_URL"] == stack.queue_urls["DispatchQueue"]
    assert env["BOT_EVENTS_QUEUE_URL"] == stack.queue_urls["BotEventsQueue"]
    assert env["TRANSCRIPT_QUEUE_URL"] == stack.queue_urls["TranscriptQueue"]
    assert env["SCHEDULE_GROUP"] == stack.schedule_group


def test_environment_overrides_are_strings(stack: StackResources) -> None:
    env = stack.environment(LEAD_TIME_SECONDS=120, TABLE_NAME="other")
    assert env["LEAD_TIME_SECONDS"] == "120"
    assert env["TABLE_NAME"] == "other"


def test_creating_twice_reuses_what_exists(
    session: boto3.Session, stack: StackResources, template: dict[str, Any]
) -> None:
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=stack.queue_urls["DispatchQueue"], MessageBody="kept")

    again = create_stack_resources(session, prefix="mp-test", template=template)

    assert again == stack
    assert sqs.receive_message(QueueUrl=stack.queue_urls["DispatchQueue"])["Messages"][0]["Body"] == "kept"


def test_clients_can_be_passed_directly(session: boto3.Session, template: dict[str, Any]) -> None:
    clients = {name: session.client(name) for name in ("dynamodb", "sqs", "s3", "scheduler", "kms")}
    stack = create_stack_resources(clients, prefix="mp-clients", template=template)
    assert stack.table_name == "mp-clients-table"


@pytest.mark.parametrize("prefix", ["", "a", "ab", "Upper", "-lead", "trail-", "under_score", "x" * 41])
def test_prefix_must_make_valid_names(session: boto3.Session, prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        create_stack_resources(session, prefix=prefix)


def test_missing_client_is_named(template: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="scheduler"):
        create_stack_resources({"dynamodb": None, "sqs": None, "s3": None}, template=template)


def test_the_calendar_grants_key_is_created_rotating_under_its_alias_and_named_to_the_functions(
    session: boto3.Session, stack: StackResources
) -> None:
    kms = session.client("kms")
    meta = kms.describe_key(KeyId="alias/mp-test-calendar-grants-key")["KeyMetadata"]
    assert meta["KeyId"] == stack.grants_key_id and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.get_key_rotation_status(KeyId=stack.grants_key_id)["KeyRotationEnabled"] is True
    assert stack.environment()["CALENDAR_GRANTS_KEY_ID"] == stack.grants_key_id
    sealed = kms.encrypt(KeyId=stack.grants_key_id, Plaintext=b"t", EncryptionContext={"c": "1"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=sealed, EncryptionContext={"c": "1"})["Plaintext"] == b"t"
