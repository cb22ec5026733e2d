"""Create the stack's stateful resources through boto3, from ``template.yaml``.

The local stack (and the integration tests) point boto3 at an AWS emulator and call
``create_stack_resources``; table keys, indexes, TTL, queue redrive and visibility, bucket
protection and the schedule group all come from the template, so local and deployed cannot drift::

    stack = create_stack_resources(boto3.Session(region_name="us-east-1"), prefix="meetpilot-dev")
    env = stack.environment(PUBLIC_BASE_URL="http://127.0.0.1:8080")

Calling it again with the same prefix against the same endpoint reuses what is already there,
data included: whoever owns an emulator that outlives one run resets it for a clean slate.
Deployment-only protections are left out on purpose: point-in-time recovery and table SSE (not
offered by every emulator, meaningless for throwaway data), the TLS-only bucket policy (local
endpoints speak plain HTTP) and the bucket's lifecycle rules (an emulator never ages objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.errors import ConfigurationError
from meetpilot_dev.stack.template import (
    QueueDef,
    bucket_definition,
    function_environment,
    function_logical_ids,
    load_template,
    queue_definitions,
    resources_of_type,
    table_definition,
    ttl_attribute,
)

_SERVICES = ("dynamodb", "sqs", "s3", "scheduler", "kms")

# Lower-case letters, digits and hyphens, so that "<prefix>-transcripts" is a valid bucket name and
# "<prefix>-<queue>" a valid queue name; short enough for SQS's 80 and S3's 63 characters.
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")


@dataclass(frozen=True)
class StackResources:
    """Names and URLs of what ``create_stack_resources`` made, keyed by template logical id."""

    table_name: str
    bucket: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    schedule_group: str
    queue_arns: dict[str, str] = field(default_factory=dict)
    # main queue logical id -> the logical id of the DLQ it redrives to
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    # the template's environment variables that name a resource, resolved (see ``environment``)
    resource_environment: dict[str, str] = field(default_factory=dict)
    # the KMS key that seals calendars' refresh tokens (its key id, as !Ref gives it)
    grants_key_id: str = ""
    # the table's stream (!GetAtt Table.StreamArn), when the template gives it one
    table_stream_arn: str = ""

    def url(self, logical_id: str) -> str:
        """The URL of any queue, main or dead-letter, by logical id."""
        urls = {**self.queue_urls, **self.dlq_urls}
        if logical_id not in urls:
            raise KeyError(f"no queue {logical_id!r}; known: {sorted(urls)}")
        return urls[logical_id]

    def dlq_url_for(self, queue_logical_id: str) -> str:
        """The URL of the dead-letter queue that ``queue_logical_id`` redrives to."""
        return self.dlq_urls[self.dead_letter_queues[queue_logical_id]]

    def environment(self, **overrides: object) -> dict[str, str]:
        """The resource-name variables the handlers read (``TABLE_NAME``, queue URLs, ...).

        Which variable names which resource comes from the template's function environments
        (every ``VAR: !Ref Resource``), so this stays in step with what Lambda gets. SSM parameter
        names, the provider URL and the public base URL are not resources: pass them as
        ``overrides``.
        """
        return {**self.resource_environment, **{key: str(value) for key, value in overrides.items()}}


def create_stack_resources(
    session_or_clients: Any,
    *,
    prefix: str = "meetpilot",
    template: Mapping[str, Any] | Path | None = None,
) -> StackResources:
    """Create (or find) the table, queues, bucket and schedule group the template declares.

    ``session_or_clients`` is a ``boto3.Session`` or a mapping with ``dynamodb``, ``sqs``, ``s3``,
    ``scheduler`` and ``kms`` clients (use the mapping to point them at a custom endpoint). ``prefix``
    starts every name: lower-case letters, digits and hyphens, 3 to 40 characters.
    """
    if not _PREFIX.match(prefix):
        raise ConfigurationError(
            f"prefix {prefix!r} must be 3-40 lower-case letters, digits or hyphens, not starting or "
            "ending with a hyphen (it starts bucket and queue names)"
        )
    tpl = template if isinstance(template, Mapping) else load_template(template)
    clients = _clients(session_or_clients)

    table_id = _single(tpl, "AWS::DynamoDB::Table")
    bucket_id = _single(tpl, "AWS::S3::Bucket")
    group_id = _single(tpl, "AWS::Scheduler::ScheduleGroup")

    table_name = f"{prefix}-table"
    table_stream_arn = _create_table(clients["dynamodb"], tpl, table_id, table_name)

    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    dead_letter_queues: dict[str, str] = {}
    queues = queue_definitions(tpl)
    dlq_ids = {q.dlq_logical_id for q in queues if q.dlq_logical_id}
    # Dead-letter queues first: a main queue's RedrivePolicy needs its DLQ's ARN.
    for queue in sorted(queues, key=lambda q: q.logical_id not in dlq_ids):
        url, arn = _create_queue(clients["sqs"], queue, f"{prefix}-{_kebab(queue.logical_id)}", queue_arns)
        queue_arns[queue.logical_id] = arn
        (dlq_urls if queue.logical_id in dlq_ids else queue_urls)[queue.logical_id] = url
        if queue.dlq_logical_id:
            dead_letter_queues[queue.logical_id] = queue.dlq_logical_id

    bucket = f"{prefix}-transcripts"
    _create_bucket(clients["s3"], tpl, bucket_id, bucket)

    schedule_group = f"{prefix}-meetings"
    _create_schedule_group(clients["scheduler"], schedule_group)

    values = {table_id: table_name, bucket_id: bucket, group_id: schedule_group, **queue_urls, **dlq_urls}
    grants_key_id = ""
    for key_id in resources_of_type(tpl, "AWS::KMS::Key"):
        grants_key_id = values[key_id] = _create_key(clients["kms"], tpl, key_id, f"alias/{prefix}-{_kebab(key_id)}")
    # What !GetAtt <X>.Arn gives: queue ARNs, and a stand-in ARN for IAM roles (the emulator
    # neither needs nor checks them).
    arns = dict(queue_arns)
    for role_id in resources_of_type(tpl, "AWS::IAM::Role"):
        arns[role_id] = f"arn:aws:iam::123456789012:role/{prefix}-{_kebab(role_id)}"
    return StackResources(
        table_name=table_name,
        bucket=bucket,
        queue_urls=queue_urls,
        dlq_urls=dlq_urls,
        schedule_group=schedule_group,
        queue_arns=queue_arns,
        dead_letter_queues=dead_letter_queues,
        resource_environment=_resource_environment(tpl, values, arns),
        grants_key_id=grants_key_id,
        table_stream_arn=table_stream_arn,
    )


# --- clients and template lookups -------------------------------------------------------------


def _clients(session_or_clients: Any) -> dict[str, Any]:
    if isinstance(session_or_clients, Mapping):
        missing = [name for name in _SERVICES if name not in session_or_clients]
        if missing:
            raise ConfigurationError(f"create_stack_resources needs clients for {', '.join(missing)}")
        return {name: session_or_clients[name] for name in _SERVICES}
    if hasattr(session_or_clients, "client"):
        return {name: session_or_clients.client(name) for name in _SERVICES}
    raise ConfigurationError("pass a boto3.Session or a mapping of dynamodb/sqs/s3/scheduler/kms clients")


def _single(tpl: Mapping[str, Any], resource_type: str) -> str:
    found = resources_of_type(tpl, resource_type)
    if len(found) != 1:
        raise ConfigurationError(f"the local stack expects exactly one {resource_type}, template has {found}")
    return found[0]


def _resource_environment(
    tpl: Mapping[str, Any], ref_values: Mapping[str, str], arn_values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every function environment variable that is ``!Ref <resource we made>``, with its value.

    ``ref_values`` holds what ``Ref`` returns for each made resource: a table's or bucket's or
    schedule group's name, a queue's URL.
    """
    env: dict[str, str] = {}
    for function_id in function_logical_ids(tpl):
        for var, value in function_environment(tpl, function_id).items():
            if isinstance(value, Mapping) and "Ref" in value and value["Ref"] in ref_values:
                env[var] = ref_values[value["Ref"]]
            elif isinstance(value, Mapping) and "Fn::GetAtt" in value and arn_values:
                target = value["Fn::GetAtt"]
                parts = target.split(".", 1) if isinstance(target, str) else list(target)
                if len(parts) == 2 and parts[1] == "Arn" and parts[0] in arn_values:
                    env[var] = arn_values[parts[0]]
    return env


def _kebab(logical_id: str) -> str:
    """``BotEventsQueue`` -> ``bot-events-queue``, ``DispatchDLQ`` -> ``dispatch-dlq``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\b|\d)|[A-Z]?[a-z]+|\d+", logical_id)
    return "-".join(word.lower() for word in words)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- DynamoDB ---------------------------------------------------------------------------------


def _create_table(client: Any, tpl: Mapping[str, Any], logical_id: str, name: str) -> str:
    """Create (or find) the table; returns its stream's ARN ("" without a stream)."""
    definition = table_definition(tpl, logical_id)
    try:
        client.create_table(TableName=name, **definition)
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    table = client.describe_table(TableName=name)["Table"]
    stream = definition.get("StreamSpecification")
    if stream and not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
        # A table made from an older template: switch its stream on.
        table = client.update_table(TableName=name, StreamSpecification=stream)["TableDescription"]
    attribute = ttl_attribute(tpl, logical_id)
    if attribute is not None:
        current = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        if not (
            current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and current.get("AttributeName") == attribute
        ):
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
            )
    return str(table.get("LatestStreamArn") or "") if stream else ""


# --- SQS --------------------------------------------------------------------------------------


def _create_queue(client: Any, queue: QueueDef, name: str, arns: Mapping[str, str]) -> tuple[str, str]:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout),
        "MessageRetentionPeriod": str(queue.retention),
    }
    if queue.sqs_managed_sse:
        attributes["SqsManagedSseEnabled"] = "true"
    if queue.dlq_logical_id:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[queue.dlq_logical_id], "maxReceiveCount": queue.max_receive_count}
        )
    try:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        # An existing queue with other attributes (an older template): bring it in line.
        if _error_code(error) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


# --- S3 ---------------------------------------------------------------------------------------


def _create_bucket(client: Any, tpl: Mapping[str, Any], logical_id: str, name: str) -> None:
    definition = bucket_definition(tpl, logical_id)
    kwargs: dict[str, Any] = {"Bucket": name}
    region = client.meta.region_name
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as error:
        if _error_code(error) != "BucketAlreadyOwnedByYou":
            raise
    if definition.encryption_rules:
        client.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": [_api_rule(rule) for rule in definition.encryption_rules]},
        )
    if definition.public_access_block:
        client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(definition.public_access_block))
    if definition.versioning:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if definition.object_ownership:
        client.put_bucket_ownership_controls(
            Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": definition.object_ownership}]}
        )


def _api_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation encryption rule in the shape of the S3 API (one key is named differently)."""
    api_rule = {key: value for key, value in rule.items() if key != "ServerSideEncryptionByDefault"}
    if "ServerSideEncryptionByDefault" in rule:
        api_rule["ApplyServerSideEncryptionByDefault"] = dict(rule["ServerSideEncryptionByDefault"])
    return api_rule


# --- KMS --------------------------------------------------------------------------------------


def _create_key(client: Any, tpl: Mapping[str, Any], logical_id: str, alias: str) -> str:
    """The template's key under a per-prefix alias (found again by that alias); returns its key id."""
    try:
        return str(client.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])
    except ClientError as error:
        if _error_code(error) != "NotFoundException":
            raise
    props = tpl["Resources"][logical_id].get("Properties") or {}
    key_id = str(
        client.create_key(
            Description=str(props.get("Description") or logical_id),
            KeySpec=str(props.get("KeySpec", "SYMMETRIC_DEFAULT")),
            KeyUsage=str(props.get("KeyUsage", "ENCRYPT_DECRYPT")),
        )["KeyMetadata"]["KeyId"]
    )
    if props.get("EnableKeyRotation"):
        client.enable_key_rotation(KeyId=key_id)
    client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


# --- EventBridge Scheduler --------------------------------------------------------------------


def _create_schedule_group(client: Any, name: str) -> None:
    try:
        client.create_schedule_group(Name=name)
    except ClientError as error:
        if _error_code(error) != "ConflictException":
            raise
