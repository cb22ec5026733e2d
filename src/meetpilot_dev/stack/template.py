"""Read ``template.yaml`` so the local stack is built from the same schema that gets deployed.

The helpers answer the questions the local stack asks (which table keys, which queues and DLQs,
which HTTP routes and SQS event sources, which environment a function sees) straight from the
template, so the two cannot drift apart::

    tpl = load_template()
    client.create_table(TableName="meetpilot-table", **table_definition(tpl))
    for route in http_routes(tpl):
        print(route.method, route.path, "->", route.handler)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meetpilot.errors import ConfigurationError

# Which template the local stack reads: this variable's path, else template.yaml in the working
# directory (the root of a checkout, where `make` and the `meetpilot` commands run).
TEMPLATE_ENV = "MEETPILOT_TEMPLATE"


def default_template_path() -> Path:
    return Path(os.environ.get(TEMPLATE_ENV) or "template.yaml")


FUNCTION_TYPE = "AWS::Serverless::Function"
QUEUE_TYPE = "AWS::SQS::Queue"

# What AWS applies when the template leaves a value out.
_DEFAULT_VISIBILITY_TIMEOUT = 30
_DEFAULT_RETENTION = 345_600
_DEFAULT_SQS_BATCH_SIZE = 10


# --- loading ----------------------------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for yaml
    """A safe YAML loader that also reads CloudFormation's short-form tags (``!Ref`` ...)."""


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)

    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "!GetAtt Res.Attr" splits at the first dot only: attribute names may contain dots.
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_short_form)


def load_template(path: Path | None = None) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template, short-form tags turned into their long form.

    ``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}`` and
    every other ``!Name`` becomes ``{"Fn::Name": ...}``. Without ``path`` it reads
    ``default_template_path()``.
    """
    template_path = default_template_path() if path is None else Path(path)
    if not template_path.is_file():
        raise ConfigurationError(
            f"template not found at {template_path}; run from the root of a source checkout of meetpilot "
            f"(template.yaml sits there) or set {TEMPLATE_ENV} to the template's path"
        )
    with template_path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise ConfigurationError(f"{template_path} is not a CloudFormation template (no Resources section)")
    return document


# --- small readers ----------------------------------------------------------------------------


def _resources(tpl: Mapping[str, Any]) -> Mapping[str, Any]:
    resources = tpl.get("Resources")
    if not isinstance(resources, Mapping):
        raise ConfigurationError("template has no Resources section")
    return resources


def _resource(tpl: Mapping[str, Any], logical_id: str, expected_type: str) -> Mapping[str, Any]:
    resource = _resources(tpl).get(logical_id)
    if not isinstance(resource, Mapping):
        raise ConfigurationError(f"template has no resource {logical_id!r}")
    if resource.get("Type") != expected_type:
        raise ConfigurationError(
            f"template resource {logical_id!r} is a {resource.get('Type')}, expected {expected_type}"
        )
    props = resource.get("Properties", {})
    return props if isinstance(props, Mapping) else {}


def is_intrinsic(value: Any) -> bool:
    """True for ``{"Ref": ...}``, ``{"Fn::...": ...}`` and ``{"Condition": ...}``."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value
        return key in ("Ref", "Condition") or str(key).startswith("Fn::")
    return False


def _literal(value: Any, where: str) -> Any:
    """A plain value; intrinsic functions cannot be evaluated without a deployment."""
    if is_intrinsic(value):
        raise ConfigurationError(f"{where} must be a literal value in the template, not {next(iter(value))}")
    return value


def referenced_logical_id(value: Any) -> str | None:
    """The resource a ``Ref`` or ``Fn::GetAtt`` points at, or None for anything else."""
    if isinstance(value, Mapping) and len(value) == 1:
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            if isinstance(target, list) and target and isinstance(target[0], str):
                return target[0]
            if isinstance(target, str):
                return target.partition(".")[0]
    return None


def resources_of_type(tpl: Mapping[str, Any], resource_type: str) -> list[str]:
    """Logical ids of every resource of one type, in template order."""
    return [
        logical_id
        for logical_id, resource in _resources(tpl).items()
        if isinstance(resource, Mapping) and resource.get("Type") == resource_type
    ]


# --- DynamoDB ---------------------------------------------------------------------------------


def table_definition(tpl: Mapping[str, Any], logical_id: str = "Table") -> dict[str, Any]:
    """Keyword arguments for boto3 ``create_table`` (all but ``TableName``), from the template."""
    props = _resource(tpl, logical_id, "AWS::DynamoDB::Table")
    definition: dict[str, Any] = {
        "KeySchema": [dict(k) for k in _literal(props["KeySchema"], f"{logical_id}.KeySchema")],
        "AttributeDefinitions": [
            dict(a) for a in _literal(props["AttributeDefinitions"], f"{logical_id}.AttributeDefinitions")
        ],
        "BillingMode": _literal(props.get("BillingMode", "PROVISIONED"), f"{logical_id}.BillingMode"),
    }
    indexes = props.get("GlobalSecondaryIndexes") or []
    if indexes:
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index["IndexName"],
                "KeySchema": [dict(k) for k in index["KeySchema"]],
                "Projection": _projection(index.get("Projection", {})),
            }
            for index in _literal(indexes, f"{logical_id}.GlobalSecondaryIndexes")
        ]
    stream = props.get("StreamSpecification")
    if isinstance(stream, Mapping) and stream.get("StreamViewType"):
        # CloudFormation names only the view type; the API also wants the stream switched on.
        view = _literal(stream["StreamViewType"], f"{logical_id}.StreamSpecification")
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    if definition["BillingMode"] == "PROVISIONED":
        raise ConfigurationError(f"{logical_id} must use BillingMode PAY_PER_REQUEST for the local stack")
    return definition


def _projection(projection: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"ProjectionType": projection.get("ProjectionType", "ALL")}
    if projection.get("NonKeyAttributes"):
        result["NonKeyAttributes"] = list(projection["NonKeyAttributes"])
    return result


def ttl_attribute(tpl: Mapping[str, Any], logical_id: str = "Table") -> str | None:
    """The attribute DynamoDB expires items on, or None when TTL is off."""
    spec = _resource(tpl, logical_id, "AWS::DynamoDB::Table").get("TimeToLiveSpecification")
    if not isinstance(spec, Mapping) or spec.get("Enabled") is not True:
        return None
    return str(spec["AttributeName"])


# --- SQS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDef:
    """One ``AWS::SQS::Queue``; ``dlq_logical_id`` is set on queues that redrive to a DLQ."""

    logical_id: str
    visibility_timeout: int
    retention: int
    dlq_logical_id: str | None = None
    max_receive_count: int | None = None
    sqs_managed_sse: bool = False


def queue_definitions(tpl: Mapping[str, Any]) -> list[QueueDef]:
    """Every queue in the template, dead-letter queues included, in template order."""
    queues = []
    for logical_id in resources_of_type(tpl, QUEUE_TYPE):
        props = _resource(tpl, logical_id, QUEUE_TYPE)
        for fifo_only in ("FifoQueue", "ContentBasedDeduplication"):
            if props.get(fifo_only):
                raise ConfigurationError(f"{logical_id}: FIFO queues are not supported by the local stack")
        dlq_logical_id = None
        max_receive_count = None
        redrive = props.get("RedrivePolicy")
        if redrive is not None:
            redrive = _literal(redrive, f"{logical_id}.RedrivePolicy")
            dlq_logical_id = referenced_logical_id(redrive.get("deadLetterTargetArn"))
            if dlq_logical_id is None:
                raise ConfigurationError(f"{logical_id}.RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn")
            max_receive_count = int(redrive["maxReceiveCount"])
        queues.append(
            QueueDef(
                logical_id=logical_id,
                visibility_timeout=int(
                    _literal(props.get("VisibilityTimeout", _DEFAULT_VISIBILITY_TIMEOUT), logical_id)
                ),
                retention=int(_literal(props.get("MessageRetentionPeriod", _DEFAULT_RETENTION), logical_id)),
                dlq_logical_id=dlq_logical_id,
                max_receive_count=max_receive_count,
                sqs_managed_sse=bool(_literal(props.get("SqsManagedSseEnabled", False), logical_id)),
            )
        )
    known = {q.logical_id for q in queues}
    for queue in queues:
        if queue.dlq_logical_id is not None and queue.dlq_logical_id not in known:
            raise ConfigurationError(f"{queue.logical_id} redrives to {queue.dlq_logical_id}, not a queue")
    return queues


# --- S3 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketDef:
    """The parts of an ``AWS::S3::Bucket`` the local stack reproduces."""

    logical_id: str
    encryption_rules: tuple[dict[str, Any], ...]
    public_access_block: dict[str, bool]
    versioning: bool
    object_ownership: str | None


def bucket_definition(tpl: Mapping[str, Any], logical_id: str = "TranscriptBucket") -> BucketDef:
    props = _resource(tpl, logical_id, "AWS::S3::Bucket")
    encryption = props.get("BucketEncryption", {}) or {}
    rules = tuple(_plain(rule) for rule in encryption.get("ServerSideEncryptionConfiguration", []))
    ownership_rules = (props.get("OwnershipControls") or {}).get("Rules") or []
    return BucketDef(
        logical_id=logical_id,
        encryption_rules=rules,
        public_access_block={k: bool(v) for k, v in (props.get("PublicAccessBlockConfiguration") or {}).items()},
        versioning=(props.get("VersioningConfiguration") or {}).get("Status") == "Enabled",
        object_ownership=ownership_rules[0].get("ObjectOwnership") if ownership_rules else None,
    )


def _plain(value: Any) -> Any:
    """A deep copy of literal template data; fails on intrinsic functions."""
    value = _literal(value, "bucket setting")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- functions --------------------------------------------------------------------------------


def function_logical_ids(tpl: Mapping[str, Any]) -> list[str]:
    """Every ``AWS::Serverless::Function``, in template order."""
    return resources_of_type(tpl, FUNCTION_TYPE)


def _merge_global(global_value: Any, local_value: Any) -> Any:
    # SAM's rules for Globals: maps merge key by key (the function wins), lists are concatenated
    # (globals first), anything else - including intrinsic functions - is replaced by the function.
    if isinstance(global_value, Mapping) and isinstance(local_value, Mapping):
        if is_intrinsic(global_value) or is_intrinsic(local_value):
            return local_value
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_global(merged[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def function_properties(tpl: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with ``Globals.Function`` merged in the way SAM merges them."""
    local = _resource(tpl, logical_id, FUNCTION_TYPE)
    globals_section = (tpl.get("Globals") or {}).get("Function") or {}
    merged = _merge_global(dict(globals_section), dict(local))
    return dict(merged)


def function_environment(tpl: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """The environment variables a function gets, as raw template values (intrinsics unresolved)."""
    environment = function_properties(tpl, logical_id).get("Environment") or {}
    return dict(environment.get("Variables") or {})


def function_timeout(tpl: Mapping[str, Any], logical_id: str) -> int:
    """The function's timeout in seconds (Lambda's default is 3)."""
    return int(_literal(function_properties(tpl, logical_id).get("Timeout", 3), f"{logical_id}.Timeout"))


def _handler(tpl: Mapping[str, Any], logical_id: str) -> str:
    handler = function_properties(tpl, logical_id).get("Handler")
    if not isinstance(handler, str):
        raise ConfigurationError(f"{logical_id} has no Handler")
    return handler


@dataclass(frozen=True)
class Route:
    """An HTTP API route and the function that answers it."""

    method: str
    path: str
    function_logical_id: str
    handler: str
    # "AWS_IAM" for routes that need a SigV4-signed request; None when anyone may call the route.
    authorizer: str | None = None


def _route_authorizer(tpl: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    """The route's own Auth.Authorizer, else its API's DefaultAuthorizer; "NONE" means none."""
    chosen = (props.get("Auth") or {}).get("Authorizer")
    if chosen is None:
        api_id = referenced_logical_id(props.get("ApiId"))
        api = _resources(tpl).get(api_id) if api_id else None
        if isinstance(api, Mapping):
            chosen = ((api.get("Properties") or {}).get("Auth") or {}).get("DefaultAuthorizer")
    return None if chosen in (None, "NONE") else str(chosen)


def http_routes(tpl: Mapping[str, Any]) -> list[Route]:
    """Every ``HttpApi`` event of every function, in template order."""
    routes = []
    for logical_id in function_logical_ids(tpl):
        for event in (function_properties(tpl, logical_id).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            routes.append(
                Route(
                    method=str(props.get("Method", "ANY")).upper(),
                    path=str(props.get("Path", "$default")),
                    function_logical_id=logical_id,
                    handler=_handler(tpl, logical_id),
                    authorizer=_route_authorizer(tpl, props),
                )
            )
    return routes


@dataclass(frozen=True)
class EventSource:
    """An SQS queue feeding a function, with the settings of its event source mapping."""

    function_logical_id: str
    handler: str
    queue_logical_id: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None


def sqs_event_sources(tpl: Mapping[str, Any]) -> list[EventSource]:
    """Every ``SQS`` event of every function, in template order."""
    sources = []
    for logical_id in function_logical_ids(tpl):
        for name, event in (function_properties(tpl, logical_id).get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            props = event.get("Properties") or {}
            queue_logical_id = referenced_logical_id(props.get("Queue"))
            if queue_logical_id is None:
                raise ConfigurationError(f"{logical_id}.Events.{name}.Queue must be !GetAtt <Queue>.Arn")
            scaling = props.get("ScalingConfig") or {}
            maximum_concurrency = scaling.get("MaximumConcurrency")
            sources.append(
                EventSource(
                    function_logical_id=logical_id,
                    handler=_handler(tpl, logical_id),
                    queue_logical_id=queue_logical_id,
                    batch_size=int(props.get("BatchSize", _DEFAULT_SQS_BATCH_SIZE)),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    maximum_concurrency=None if maximum_concurrency is None else int(maximum_concurrency),
                )
            )
    return sources


# --- DynamoDB stream ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSource:
    """The table's stream feeding a function, with the settings of its event source mapping."""

    function_logical_id: str
    handler: str
    table_logical_id: str
    batch_size: int
    report_batch_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int  # -1: until the record expires
    maximum_record_age_seconds: int  # -1: until the record expires (24 h)
    on_failure_queue_logical_id: str | None
    # Each filter as a pattern (parsed JSON); a record is passed on when any one matches.
    filters: tuple[dict[str, Any], ...]
    maximum_batching_window_seconds: float = 0.0  # records gathered this long unless the batch fills


def stream_event_sources(tpl: Mapping[str, Any]) -> list[StreamSource]:
    """Every ``DynamoDB`` event of every function, in template order."""
    sources = []
    for logical_id in function_logical_ids(tpl):
        for name, event in (function_properties(tpl, logical_id).get("Events") or {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            props = event.get("Properties") or {}
            stream = props.get("Stream")
            target = stream.get("Fn::GetAtt") if isinstance(stream, Mapping) else None
            parts = target.split(".", 1) if isinstance(target, str) else list(target or [])
            if len(parts) != 2 or parts[1] != "StreamArn":
                raise ConfigurationError(f"{logical_id}.Events.{name}.Stream must be !GetAtt <Table>.StreamArn")
            on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            filters = ((props.get("FilterCriteria") or {}).get("Filters")) or []
            sources.append(
                StreamSource(
                    function_logical_id=logical_id,
                    handler=_handler(tpl, logical_id),
                    table_logical_id=str(parts[0]),
                    batch_size=int(props.get("BatchSize", 100)),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                    maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", -1)),
                    on_failure_queue_logical_id=referenced_logical_id(on_failure) if on_failure else None,
                    filters=tuple(json.loads(f["Pattern"]) for f in filters),
                    maximum_batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                )
            )
    return sources


def on_failure_queues(tpl: Mapping[str, Any]) -> set[str]:
    """The queues event source mappings send what they gave up on to (dead-letter queues too)."""
    return {s.on_failure_queue_logical_id for s in stream_event_sources(tpl) if s.on_failure_queue_logical_id}
