"""What template.yaml grants and protects: least-privilege roles, durable storage, bounded retries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from meetpilot_dev.stack.template import (
    function_environment,
    function_logical_ids,
    function_properties,
    function_timeout,
    http_routes,
    on_failure_queues,
    queue_definitions,
    referenced_logical_id,
    sqs_event_sources,
)

FUNCTIONS = {
    "DispatchFunction": "meetpilot.handlers.dispatch.handler",
    "IngestFunction": "meetpilot.handlers.ingest.handler",
    "BotEventsFunction": "meetpilot.handlers.bot_events.handler",
    "TranscriptFetchFunction": "meetpilot.handlers.transcript_fetch.handler",
    "ReconcileFunction": "meetpilot.handlers.reconcile.handler",
    "CalendarSyncFunction": "meetpilot.handlers.calendar_sync.handler",
    "CalendarPollFunction": "meetpilot.handlers.calendar_poll.handler",
    "CalendarPushFunction": "meetpilot.handlers.calendar_push.handler",
    "GraphNotifyFunction": "meetpilot.handlers.graph_notify.handler",
    "ManagementFunction": "meetpilot.handlers.management.handler",
    "ForgetFunction": "meetpilot.handlers.forget.handler",
    "LiveTranscriptFunction": "meetpilot.handlers.live_transcript.handler",
    "StreamPublisherFunction": "meetpilot.handlers.stream_publisher.handler",
}


def _ssm(param: str) -> str:
    return f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{param}}}"


API_KEY = _ssm("MeetStreamApiKeyParam")
WEBHOOK_SECRET = _ssm("WebhookSecretParam")
SIGNING_SECRET = _ssm("WorkspaceSigningSecretParam")
OAUTH_CLIENTS = {_ssm("GoogleOAuthClientParam"), _ssm("MicrosoftOAuthClientParam")}
GRANTS_KEY = {"CalendarGrantsKey.Arn"}
SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"
POLL = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
EVENT_BUS = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"


def _grants(*pairs: tuple[tuple[str, ...] | str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for actions, resources in pairs:
        for action in (actions,) if isinstance(actions, str) else actions:
            out.setdefault(action, set()).update(resources)
    return out


# action -> resources, per function; a resource is written as "<LogicalId>.Arn" for !GetAtt and
# as the raw string for !Sub. Everything a function may do is listed here and nothing more.
EXPECTED_GRANTS = {
    "DispatchFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"DispatchFunctionLogGroup.Arn"}),
        (POLL, {"DispatchQueue.Arn"}),
        ("sqs:SendMessage", {"DispatchQueue.Arn"}),
        ("ssm:GetParameter", {API_KEY, WEBHOOK_SECRET}),
        (
            ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"),
            {"Table.Arn"},
        ),
        (("scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"), {SCHEDULES}),
        ("iam:PassRole", {"SchedulerRole.Arn"}),
    ),
    "IngestFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"IngestFunctionLogGroup.Arn"}),
        ("ssm:GetParameter", {WEBHOOK_SECRET, SIGNING_SECRET}),
        ("sqs:SendMessage", {"BotEventsQueue.Arn"}),
    ),
    "BotEventsFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"BotEventsFunctionLogGroup.Arn"}),
        (POLL, {"BotEventsQueue.Arn"}),
        (("dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"), {"Table.Arn"}),
        ("dynamodb:Query", {"${Table.Arn}/index/by-bot"}),
        ("sqs:SendMessage", {"TranscriptQueue.Arn"}),
    ),
    "TranscriptFetchFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"TranscriptFetchFunctionLogGroup.Arn"}),
        (POLL, {"TranscriptQueue.Arn"}),
        ("sqs:SendMessage", {"TranscriptQueue.Arn"}),
        ("ssm:GetParameter", {API_KEY}),
        (("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"), {"Table.Arn"}),
        (("s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"), {"${TranscriptBucket.Arn}/transcripts/*"}),
    ),
    "ReconcileFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"ReconcileFunctionLogGroup.Arn"}),
        ("ssm:GetParameter", {API_KEY, *OAUTH_CLIENTS}),
        (("kms:Encrypt", "kms:Decrypt"), GRANTS_KEY),
        (
            ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"),
            {"Table.Arn"},
        ),
        ("dynamodb:Query", {"Table.Arn", "${Table.Arn}/index/attention"}),
        ("sqs:SendMessage", {"DispatchQueue.Arn", "TranscriptQueue.Arn", "CalendarSyncQueue.Arn"}),
    ),
    "LiveTranscriptFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"LiveTranscriptFunctionLogGroup.Arn"}),
        ("ssm:GetParameter", {WEBHOOK_SECRET}),
        (("dynamodb:Query", "dynamodb:PutItem"), {"Table.Arn"}),
    ),
    "CalendarSyncFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"CalendarSyncFunctionLogGroup.Arn"}),
        (POLL, {"CalendarSyncQueue.Arn"}),
        ("sqs:SendMessage", {"CalendarSyncQueue.Arn", "DispatchQueue.Arn"}),
        ("ssm:GetParameter", {API_KEY, *OAUTH_CLIENTS}),
        (("kms:Encrypt", "kms:Decrypt"), GRANTS_KEY),
        (
            (
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ),
            {"Table.Arn"},
        ),
        (("scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"), {SCHEDULES}),
        ("iam:PassRole", {"SchedulerRole.Arn"}),
    ),
    "CalendarPollFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"CalendarPollFunctionLogGroup.Arn"}),
        ("dynamodb:Query", {"Table.Arn"}),
        ("sqs:SendMessage", {"CalendarSyncQueue.Arn"}),
    ),
    "CalendarPushFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"CalendarPushFunctionLogGroup.Arn"}),
        ("dynamodb:GetItem", {"Table.Arn"}),
        ("sqs:SendMessage", {"CalendarSyncQueue.Arn"}),
    ),
    "GraphNotifyFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"GraphNotifyFunctionLogGroup.Arn"}),
        ("dynamodb:GetItem", {"Table.Arn"}),
        ("sqs:SendMessage", {"CalendarSyncQueue.Arn"}),
    ),
    "ManagementFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"ManagementFunctionLogGroup.Arn"}),
        (
            (
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ),
            {"Table.Arn"},
        ),
        (
            "dynamodb:Query",
            {"Table.Arn"}
            | {
                f"${{Table.Arn}}/index/{index}"
                for index in ("by-bot", "by-calendar-event", "sessions-by-status", "sessions-by-month")
            },
        ),
        ("sqs:SendMessage", {"DispatchQueue.Arn", "CalendarSyncQueue.Arn"}),
        ("ssm:GetParameter", {API_KEY, *OAUTH_CLIENTS}),
        (("kms:Encrypt", "kms:Decrypt"), GRANTS_KEY),
        # An override or new rules converge a calendar's events at once, schedules included.
        (("scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"), {SCHEDULES}),
        ("iam:PassRole", {"SchedulerRole.Arn"}),
        ("s3:GetObject", {"${TranscriptBucket.Arn}/transcripts/*"}),
    ),
    # Deletes, and the reads that find what to delete; no PutItem, no queue, no s3:PutObject.
    "ForgetFunction": _grants(
        (("logs:CreateLogStream", "logs:PutLogEvents"), {"ForgetFunctionLogGroup.Arn"}),
        (
            ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"),
            {"Table.Arn"},
        ),
        (
            "dynamodb:Query",
            {"Table.Arn", "${Table.Arn}/index/by-bot", "${Table.Arn}/index/sessions-by-month"},
        ),
        ("s3:ListBucketVersions", {"TranscriptBucket.Arn"}),
        ("s3:DeleteObjectVersion", {"${TranscriptBucket.Arn}/transcripts/*"}),
        ("ssm:GetParameter", {API_KEY, *OAUTH_CLIENTS}),
        (("kms:Encrypt", "kms:Decrypt"), GRANTS_KEY),
        ("scheduler:DeleteSchedule", {SCHEDULES}),
    ),
}

# The only function that publishes: every other function's events come from its writes, through
# the table's stream. The stream reads are what Lambda's event source mapping does with this role.
EXPECTED_GRANTS["StreamPublisherFunction"] = _grants(
    (("logs:CreateLogStream", "logs:PutLogEvents"), {"StreamPublisherFunctionLogGroup.Arn"}),
    (
        ("dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords", "dynamodb:ListStreams"),
        {"${Table.Arn}/stream/*"},
    ),
    ("sqs:SendMessage", {"StreamPublisherFailureQueue.Arn"}),
    ("events:PutEvents", {EVENT_BUS}),
)

MANAGEMENT_FUNCTIONS = {"ManagementFunction", "ForgetFunction"}

# Allow statements whose Resource may be "*", as (policy owner logical id, action). Empty: every
# action used here supports resource-level permissions. Add an entry only with a comment naming
# the AWS documentation that says the action cannot be scoped.
STAR_RESOURCE_ALLOW_LIST: set[tuple[str, str]] = set()

GLOBAL_ENVIRONMENT = {
    "TABLE_NAME",
    "TRANSCRIPT_BUCKET",
    "DISPATCH_QUEUE_URL",
    "BOT_EVENTS_QUEUE_URL",
    "TRANSCRIPT_QUEUE_URL",
    "MEETSTREAM_API_KEY_PARAM",
    "WEBHOOK_SECRET_PARAM",
    "MEETSTREAM_BASE_URL",
    "LEAD_TIME_SECONDS",
    "PROVIDER_CREATE_RATE",
    "TRANSCRIPT_PROVIDER",
    "BOT_NAME",
    "SCHEDULE_GROUP",
    "CALENDAR_SYNC_QUEUE_URL",
    "CALENDAR_GRANTS_KEY_ID",
    "GOOGLE_OAUTH_CLIENT_PARAM",
    "MICROSOFT_OAUTH_CLIENT_PARAM",
    "REMOVE_BOT_ON_CANCEL",
    "EVENT_BUS_NAME",
    "LIVE_TRANSCRIPTS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_PARAMETERS_MAX_AGE",
}


# --- reading policies -------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_label(resource: Any) -> str:
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        return f"{logical_id}.{attribute}"
    if isinstance(resource, dict) and "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
        return resource["Fn::Sub"]
    raise AssertionError(f"unexpected policy resource form: {resource!r}")


def _role_of(tpl: dict[str, Any], function_id: str) -> str:
    role = tpl["Resources"][function_id]["Properties"].get("Role")
    logical_id = referenced_logical_id(role)
    assert logical_id, f"{function_id} must use its own role (see the comment above the functions)"
    return logical_id


def _statements(tpl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document in the template, with its owner's logical id."""
    for logical_id, resource in tpl["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", []) if isinstance(p, dict)]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in _as_list(document["Statement"]):
                yield logical_id, statement


def _granted(tpl: dict[str, Any], role_id: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for owner, statement in _statements(tpl):
        if owner != role_id or statement.get("Effect") != "Allow":
            continue
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, set()).update(_resource_label(r) for r in _as_list(statement["Resource"]))
    return grants


# --- IAM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_each_function_is_granted_exactly_what_it_calls(template: dict[str, Any], function_id: str) -> None:
    granted = _granted(template, _role_of(template, function_id))
    assert granted == EXPECTED_GRANTS[function_id]


def test_functions_do_not_share_roles_or_add_sam_policies(template: dict[str, Any]) -> None:
    roles = [_role_of(template, f) for f in FUNCTIONS]
    assert len(set(roles)) == len(roles)
    for function_id in FUNCTIONS:
        props = template["Resources"][function_id]["Properties"]
        assert "Policies" not in props, "SAM ignores Policies on a function that names its Role"


def test_no_allow_statement_uses_a_wildcard_action(template: dict[str, Any]) -> None:
    for owner, statement in _statements(template):
        if statement["Effect"] != "Allow":
            continue  # a broad Deny (the bucket's TLS-only rule) only ever takes access away
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{owner} allows {action}"


def test_no_allow_statement_grants_every_resource(template: dict[str, Any]) -> None:
    for owner, statement in _statements(template):
        if statement["Effect"] != "Allow" or "Resource" not in statement:
            continue  # trust policies have a Principal, not a Resource
        if "*" in _as_list(statement["Resource"]):
            for action in _as_list(statement["Action"]):
                assert (owner, action) in STAR_RESOURCE_ALLOW_LIST, f"{owner}: {action} on *"


def test_ssm_parameter_arns_do_not_double_the_leading_slash(template: dict[str, Any]) -> None:
    # Parameter names start with "/", and the ARN is "...:parameter/name", so the template must not
    # add a slash of its own. Render each ARN with the defaults to see the real string.
    defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}
    rendered = []
    for _, statement in _statements(template):
        for resource in _as_list(statement.get("Resource", [])):
            label = _resource_label(resource) if not isinstance(resource, str) else resource
            if ":ssm:" in label:
                arn = re.sub(r"\$\{([A-Za-z]+)\}", lambda m: str(defaults[m.group(1)]), label)
                arn = arn.replace("${AWS::Partition}", "aws").replace("${AWS::Region}", "us-east-1")
                rendered.append(arn.replace("${AWS::AccountId}", "123456789012"))
    assert set(rendered) == {
        "arn:aws:ssm:us-east-1:123456789012:parameter/meetpilot/meetstream-api-key",
        "arn:aws:ssm:us-east-1:123456789012:parameter/meetpilot/webhook-secret",
        "arn:aws:ssm:us-east-1:123456789012:parameter/meetpilot/meetstream-signing-secret",
        "arn:aws:ssm:us-east-1:123456789012:parameter/meetpilot/oauth/google",
        "arn:aws:ssm:us-east-1:123456789012:parameter/meetpilot/oauth/microsoft",
    }


def test_translated_template_attaches_no_managed_policies(template: dict[str, Any], translated: dict[str, Any]) -> None:
    # With SAM's generated roles, the SQS event would attach AWSLambdaSQSQueueExecutionRole
    # (poll any queue) and every function AWSLambdaBasicExecutionRole (write any log group).
    roles = {k: v for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    declared = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    assert set(roles) == declared, "SAM generated roles of its own"
    for logical_id, role in roles.items():
        assert not role["Properties"].get("ManagedPolicyArns"), logical_id
    for function_id in FUNCTIONS:
        function = translated["Resources"][function_id]
        assert function["Type"] == "AWS::Lambda::Function"
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [f"{function_id}Role", "Arn"]}


def test_translated_event_sources_consume_the_queues_the_roles_may_poll(translated: dict[str, Any]) -> None:
    mappings = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    queues = [m for m in mappings if "Queue" in m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]
    assert len(mappings) == 5 and len(queues) == 4  # the fifth reads the table's stream (below)
    for mapping in queues:
        function_id = mapping["Properties"]["FunctionName"]["Ref"]
        queue = "{}.Arn".format(mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0])
        granted = _granted(translated, f"{function_id}Role")
        for action in POLL:
            assert granted[action] == {queue}


def test_the_table_stream_feeds_only_the_publisher_with_partial_failures_bisect_and_a_failure_queue(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    spec = template["Resources"]["Table"]["Properties"]["StreamSpecification"]
    assert spec == {"StreamViewType": "NEW_AND_OLD_IMAGES"}  # the publisher compares old and new
    (mapping,) = [
        r["Properties"]
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    ]
    assert mapping["FunctionName"] == {"Ref": "StreamPublisherFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 86_400
    assert mapping["ParallelizationFactor"] == 1  # one batch per shard: a session's events in order
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["StreamPublisherFailureQueue", "Arn"]
    }
    pattern = json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])
    assert set(pattern["dynamodb"]["NewImage"]["type"]["S"]) == {"session", "calendar", "live_segment"}
    alarms = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Dimensions", [{}])[0].get("Value")
        == {"Fn::GetAtt": ["StreamPublisherFailureQueue", "QueueName"]}
    ]
    assert len(alarms) == 1 and alarms[0]["Threshold"] == 0


def test_scheduler_role_only_sends_to_the_dispatch_queue_and_its_dlq(template: dict[str, Any]) -> None:
    role = template["Resources"]["SchedulerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert _granted(template, "SchedulerRole") == {"sqs:SendMessage": {"DispatchQueue.Arn", "DispatchDLQ.Arn"}}


def test_function_roles_trust_only_lambda(template: dict[str, Any]) -> None:
    for function_id in FUNCTIONS:
        role = template["Resources"][_role_of(template, function_id)]["Properties"]
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert trust["Action"] == "sts:AssumeRole"


# --- storage ----------------------------------------------------------------------------------


SESSION_SUMMARY = [
    "session_id",
    "meeting_key",
    "bot_id",
    "status",
    "outcome",
    "outcome_reason",
    "needs_review",
    "transcript_state",
    "created_at",
]


def test_table_is_durable_and_indexed_for_every_access_pattern(template: dict[str, Any]) -> None:
    table = template["Resources"]["Table"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    indexes = {
        i["IndexName"]: ([(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]], i["Projection"])
        for i in props["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        # Indexes copy only what their queries read (each copy is a second write on every update).
        "by-calendar-event": (
            [("calendar_event_id", "HASH")],
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["meeting_key"]},
        ),
        "by-bot": ([("bot_id", "HASH")], {"ProjectionType": "KEYS_ONLY"}),
        "attention": ([("attention_shard", "HASH"), ("attention_due", "RANGE")], {"ProjectionType": "KEYS_ONLY"}),
        # The management API's session lists: the summary a list shows, not the history.
        "sessions-by-status": (
            [("status", "HASH"), ("meeting_start", "RANGE")],
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": SESSION_SUMMARY[:3] + SESSION_SUMMARY[4:]},
        ),
        # Only what never changes: an entry is written once per session; lists read the table.
        "sessions-by-month": (
            [("start_month", "HASH"), ("meeting_start", "RANGE")],
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["session_id", "meeting_key"]},
        ),
    }
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "calendar_event_id": "S",
        "bot_id": "S",
        "attention_shard": "S",
        "attention_due": "S",
        "status": "S",
        "meeting_start": "S",
        "start_month": "S",
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_bucket_is_private_encrypted_versioned_and_tls_only(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["TranscriptBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}

    policies = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": "TranscriptBucket"}
    ]
    (policy,) = policies
    tls_denies = [
        s
        for s in _as_list(policy["PolicyDocument"]["Statement"])
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] in ("s3:*", ["s3:*"])
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_denies) == 1
    assert {_resource_label(r) for r in tls_denies[0]["Resource"]} == {
        "TranscriptBucket.Arn",
        "${TranscriptBucket.Arn}/*",
    }


# --- queues -----------------------------------------------------------------------------------


def test_every_consumed_queue_redrives_to_a_dlq_and_outlasts_its_function(template: dict[str, Any]) -> None:
    queues = {q.logical_id: q for q in queue_definitions(template)}
    sources = sqs_event_sources(template)
    assert {s.queue_logical_id for s in sources} == {
        "DispatchQueue",
        "BotEventsQueue",
        "TranscriptQueue",
        "CalendarSyncQueue",
    }
    for source in sources:
        queue = queues[source.queue_logical_id]
        assert queue.dlq_logical_id == source.queue_logical_id.removesuffix("Queue") + "DLQ"
        assert queue.max_receive_count == 5
        assert queue.visibility_timeout >= 6 * function_timeout(template, source.function_logical_id)
        assert queue.retention == 4 * 24 * 3600
        dlq = queues[queue.dlq_logical_id]
        assert dlq.retention == 14 * 24 * 3600
        assert dlq.dlq_logical_id is None


def test_every_queue_is_encrypted_and_is_either_a_dlq_or_has_one(template: dict[str, Any]) -> None:
    queues = queue_definitions(template)
    # The stream publisher's on-failure destination is the dead-letter queue of its stream.
    dlqs = {q.dlq_logical_id for q in queues if q.dlq_logical_id} | on_failure_queues(template)
    assert len(queues) == 9
    for queue in queues:
        assert queue.sqs_managed_sse, queue.logical_id
        assert queue.logical_id in dlqs or queue.dlq_logical_id, queue.logical_id


# --- functions --------------------------------------------------------------------------------


def test_functions_and_handlers(template: dict[str, Any]) -> None:
    assert {f: function_properties(template, f)["Handler"] for f in function_logical_ids(template)} == FUNCTIONS


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_function_runtime_architecture_and_build(template: dict[str, Any], function_id: str) -> None:
    resource = template["Resources"][function_id]
    props = function_properties(template, function_id)
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["CodeUri"] == "."
    assert resource["Metadata"] == {"BuildMethod": "makefile"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert referenced_logical_id(props["LoggingConfig"]["LogGroup"]) == f"{function_id}LogGroup"


def test_sqs_event_sources_report_partial_batch_failures(template: dict[str, Any]) -> None:
    by_function = {s.function_logical_id: s for s in sqs_event_sources(template)}
    assert set(by_function) == {
        "DispatchFunction",
        "BotEventsFunction",
        "TranscriptFetchFunction",
        "CalendarSyncFunction",
    }
    assert all(s.report_batch_item_failures for s in by_function.values())
    assert by_function["DispatchFunction"].batch_size == 10
    assert by_function["DispatchFunction"].maximum_concurrency == 5
    assert by_function["BotEventsFunction"].batch_size == 10
    assert by_function["TranscriptFetchFunction"].batch_size == 1
    assert by_function["CalendarSyncFunction"].batch_size == 1
    assert by_function["CalendarSyncFunction"].maximum_concurrency == 5


def test_transcript_fetch_has_room_to_spool_large_transcripts(template: dict[str, Any]) -> None:
    props = function_properties(template, "TranscriptFetchFunction")
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 300
    assert props["EphemeralStorage"] == {"Size": 2048}


def test_webhook_routes_reach_ingest_and_are_throttled(template: dict[str, Any]) -> None:
    routes = {
        (r.method, r.path): r.function_logical_id
        for r in http_routes(template)
        if r.function_logical_id not in MANAGEMENT_FUNCTIONS
    }
    assert routes == {
        ("POST", "/webhooks/meetstream/{session_id}/{token}"): "IngestFunction",
        ("POST", "/webhooks/meetstream"): "IngestFunction",
        ("POST", "/webhooks/meetstream/live/{session_id}/{token}"): "LiveTranscriptFunction",
        ("POST", "/calendar/google"): "CalendarPushFunction",
        ("POST", "/calendar/microsoft/notify"): "GraphNotifyFunction",
        ("POST", "/calendar/microsoft/lifecycle"): "GraphNotifyFunction",
    }
    settings = template["Resources"]["WebhookApi"]["Properties"]["DefaultRouteSettings"]
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"]


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_function_sees_the_shared_environment(template: dict[str, Any], function_id: str) -> None:
    env = function_environment(template, function_id)
    scheduling = {"DISPATCH_QUEUE_ARN", "DISPATCH_DLQ_ARN", "SCHEDULER_ROLE_ARN"}
    own = {
        "DispatchFunction": {"PUBLIC_BASE_URL"} | scheduling,
        "CalendarSyncFunction": {"PUBLIC_BASE_URL"} | scheduling,  # Graph subscriptions it recreates
        "ReconcileFunction": {"PUBLIC_BASE_URL"},  # address of renewed Google push channels
        "ManagementFunction": {"DISPATCH_QUEUE_ARN", "SCHEDULER_ROLE_ARN"},  # to build the scheduler adapter
        "ForgetFunction": {"DISPATCH_QUEUE_ARN", "SCHEDULER_ROLE_ARN"},
        "IngestFunction": {"WORKSPACE_SIGNING_SECRET_PARAM"},  # the only one that verifies signatures
    }
    assert set(env) == GLOBAL_ENVIRONMENT | own.get(function_id, set())


@pytest.mark.parametrize(
    "function_id", ["IngestFunction", "CalendarPushFunction", "GraphNotifyFunction", "LiveTranscriptFunction"]
)
def test_api_functions_do_not_depend_on_the_api_they_serve(template: dict[str, Any], function_id: str) -> None:
    # The API's integration depends on the function; a reference back would be a cycle.
    props = dict(template["Resources"][function_id]["Properties"])
    props.pop("Events")
    assert "WebhookApi" not in repr(props)
    assert "WebhookApi" not in repr(template["Globals"])


def test_management_routes_are_iam_only_on_their_own_throttled_api(template: dict[str, Any]) -> None:
    routes = [r for r in http_routes(template) if r.function_logical_id == "ManagementFunction"]
    assert {(r.method, r.path) for r in routes} == {
        ("POST", "/v1/meetings"),
        ("GET", "/v1/meetings/{meeting_id}"),
        ("POST", "/v1/meetings/{meeting_id}/cancel"),
        ("GET", "/v1/sessions"),
        ("GET", "/v1/sessions/{session_id}"),
        ("GET", "/v1/transcripts/{bot_id}"),
        ("POST", "/v1/calendars"),
        ("GET", "/v1/calendars"),
        ("GET", "/v1/calendars/{calendar_id}"),
        ("PATCH", "/v1/calendars/{calendar_id}"),
        ("DELETE", "/v1/calendars/{calendar_id}"),
        ("GET", "/v1/calendars/{calendar_id}/events"),
        ("PUT", "/v1/calendars/{calendar_id}/events/{event_id}/override"),
        ("DELETE", "/v1/calendars/{calendar_id}/events/{event_id}/override"),
        ("GET", "/v1/users/{user_id}/bot-settings"),
        ("PUT", "/v1/users/{user_id}/bot-settings"),
    }
    assert all(r.authorizer == "AWS_IAM" for r in routes)
    for event in function_properties(template, "ManagementFunction")["Events"].values():
        assert event["Type"] == "HttpApi"
        assert referenced_logical_id(event["Properties"]["ApiId"]) == "ManagementApi"
        assert event["Properties"]["Auth"] == {"Authorizer": "AWS_IAM"}
    api = template["Resources"]["ManagementApi"]["Properties"]
    assert api["Auth"] == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
    assert 0 < api["DefaultRouteSettings"]["ThrottlingRateLimit"] <= api["DefaultRouteSettings"]["ThrottlingBurstLimit"]
    assert referenced_logical_id(api["AccessLogSettings"]["DestinationArn"]) == "ManagementApiAccessLogGroup"
    # No webhook route may need a signature MeetStream cannot make.
    assert all(r.authorizer is None for r in http_routes(template) if r.function_logical_id not in MANAGEMENT_FUNCTIONS)


def test_forget_is_an_iam_only_management_route_whose_role_alone_may_delete_transcripts(
    template: dict[str, Any],
) -> None:
    routes = [r for r in http_routes(template) if r.function_logical_id == "ForgetFunction"]
    assert [(r.method, r.path, r.authorizer) for r in routes] == [("POST", "/v1/forget", "AWS_IAM")]
    event = function_properties(template, "ForgetFunction")["Events"]["Forget"]["Properties"]
    assert referenced_logical_id(event["ApiId"]) == "ManagementApi" and event["Auth"] == {"Authorizer": "AWS_IAM"}
    # Within the HTTP API's 30 s integration limit.
    assert function_properties(template, "ForgetFunction")["Timeout"] < 30
    listing = [
        st
        for owner, st in _statements(template)
        if owner == "ForgetFunctionRole" and st["Action"] == "s3:ListBucketVersions"
    ]
    assert [st.get("Condition") for st in listing] == [{"StringLike": {"s3:prefix": "transcripts/*"}}]
    deleters = {
        owner
        for owner, st in _statements(template)
        if st.get("Effect") == "Allow" and {"s3:DeleteObjectVersion", "s3:DeleteObject"} & set(_as_list(st["Action"]))
    }
    assert deleters == {"ForgetFunctionRole"}


def test_calendar_poll_runs_every_ten_minutes_through_its_own_role(template: dict[str, Any]) -> None:
    events = function_properties(template, "CalendarPollFunction")["Events"]
    (schedule,) = events.values()
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(10 minutes)"
    assert referenced_logical_id(schedule["Properties"]["RoleArn"]) == "CalendarPollScheduleRole"
    assert _granted(template, "CalendarPollScheduleRole") == {"lambda:InvokeFunction": {"CalendarPollFunction.Arn"}}


def test_parameters_have_the_documented_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["MeetStreamApiKeyParam"]["Default"] == "/meetpilot/meetstream-api-key"
    assert params["WebhookSecretParam"]["Default"] == "/meetpilot/webhook-secret"
    assert params["WorkspaceSigningSecretParam"]["Default"] == "/meetpilot/meetstream-signing-secret"
    assert params["PublicBaseUrl"]["Default"] == ""
    assert (params["LeadTimeSeconds"]["Type"], params["LeadTimeSeconds"]["Default"]) == ("Number", 600)
    assert (params["LeadTimeSeconds"]["MinValue"], params["LeadTimeSeconds"]["MaxValue"]) == (60, 3600)
    assert params["TranscriptProvider"]["Default"] == "deepgram"
    assert set(params["TranscriptProvider"]["AllowedValues"]) == {
        "deepgram",
        "assemblyai",
        "meetstream",
        "jigsawstack",
        "sarvam",
        "meeting_captions",
        "deepgram_streaming",
        "assemblyai_streaming",
        "none",
    }
    assert params["MeetStreamBaseUrl"]["Default"] == "https://api.meetstream.ai/api/v1"
    assert params["BotName"]["Default"] == "meetpilot notetaker"
    assert params["GoogleOAuthClientParam"]["Default"] == "/meetpilot/oauth/google"
    assert params["MicrosoftOAuthClientParam"]["Default"] == "/meetpilot/oauth/microsoft"
    assert (params["RemoveBotOnCancel"]["Default"], set(params["RemoveBotOnCancel"]["AllowedValues"])) == (
        "true",
        {"true", "false"},
    )


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == {
        "ManagementApiUrl",
        "WebhookApiUrl",
        "TableName",
        "TranscriptBucketName",
        "DispatchQueueUrl",
        "BotEventsQueueUrl",
        "TranscriptQueueUrl",
        "DispatchDLQUrl",
        "BotEventsDLQUrl",
        "TranscriptDLQUrl",
        "CalendarSyncQueueUrl",
        "CalendarSyncDLQUrl",
        "CalendarGrantsKeyArn",
        "ScheduleGroupName",
        "SchedulerRoleArn",
    }
