"""Records every AWS call a function makes on the local stack as the IAM permissions it needs.

The emulator does not evaluate resource-level IAM, so the template's roles are proven another way:
each call is turned into (IAM action, resource ARN) and checked against the calling function's role
(see ``tests/infra/test_iam_replay.py``). Calls are attributed through
``meetpilot_dev.stack.invoke.running_function``; the stack's own calls (creating resources, the test
harness, the scheduler runner playing EventBridge Scheduler) belong to no function and are left out::

    with recording() as log:
        run_demo(4, live=False)
    for access in log.accesses:
        print(access.function, access.action, access.resource)
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from s3transfer.futures import BoundedExecutor

from meetpilot_dev.stack.invoke import running_function

# moto's account; every resource of the local stack lives in it.
LOCAL_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"

Conditions = tuple[tuple[str, str], ...]
# (IAM action, resource ARN, request context keys the policy's conditions may test)
Need = tuple[str, str, Conditions]


@dataclass(frozen=True)
class Access:
    """One permission one call needed: ``function`` did ``operation``, which IAM checks as ``action``
    on ``resource`` (an operation may need several, e.g. DeleteObjects one per key)."""

    function: str
    operation: str  # "dynamodb.Query"
    action: str  # "dynamodb:Query"
    resource: str
    conditions: Conditions = ()


@dataclass(frozen=True)
class UnmappedCall:
    """A call the recorder cannot translate into IAM terms; add it to ``permissions_needed``."""

    function: str
    operation: str


class AwsCallLog:
    """What functions did while the log was open, plus the stacks started meanwhile (for their
    resource names)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accesses: list[Access] = []
        self.unmapped: list[UnmappedCall] = []
        self.stacks: list[Any] = []
        self.unattributed = 0  # calls made by the stack or the harness, not by a function

    def record(
        self, function: str | None, service: str, operation: str, params: Mapping[str, Any], region: str
    ) -> None:
        if function is None:
            with self._lock:
                self.unattributed += 1
            return
        needs = permissions_needed(service, operation, params, region=region, account=LOCAL_ACCOUNT)
        name = f"{service}.{operation}"
        with self._lock:
            if needs is None:
                self.unmapped.append(UnmappedCall(function, name))
                return
            for action, resource, conditions in needs:
                self.accesses.append(Access(function, name, action, resource, conditions))

    def functions(self) -> set[str]:
        with self._lock:
            return {a.function for a in self.accesses}


_active: list[AwsCallLog] = []
_active_lock = threading.Lock()


def watch(stack: Any) -> None:
    """Hook a local stack's boto3 session (before it builds any client: clients copy the session's
    handlers when they are made) so that open ``recording`` logs see its calls."""
    stack.boto_session.events.register("before-parameter-build", _on_call)
    with _active_lock:
        for log in _active:
            log.stacks.append(stack)


def _on_call(params: Mapping[str, Any], model: Any, context: Mapping[str, Any] | None = None, **_: Any) -> None:
    # before-parameter-build fires once per call (retries are below it) and for presigned URLs too,
    # whose holder acts with the signer's permissions.
    with _active_lock:
        logs = list(_active)
    if not logs:
        return
    service = model.service_model.signing_name or model.service_model.service_name
    region = (context or {}).get("client_region") or DEFAULT_REGION
    function = running_function()
    for log in logs:
        log.record(function, service, model.name, params, region)


class _ContextCarryingExecutor(ThreadPoolExecutor):
    """s3transfer uploads from worker threads; carry the submitter's context (its function) along."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


@contextmanager
def recording() -> Iterator[AwsCallLog]:
    """Collect the calls of every function on every local stack started inside the block."""
    log = AwsCallLog()
    with _active_lock:
        if not _active:
            BoundedExecutor.EXECUTOR_CLS = _ContextCarryingExecutor
        _active.append(log)
    try:
        yield log
    finally:
        with _active_lock:
            _active.remove(log)
            if not _active:
                BoundedExecutor.EXECUTOR_CLS = ThreadPoolExecutor  # s3transfer's own choice


# --- operation -> IAM action and resource -----------------------------------------------------


def permissions_needed(
    service: str, operation: str, params: Mapping[str, Any], *, region: str, account: str
) -> list[Need] | None:
    """The (action, resource ARN, condition keys) IAM checks for one API call; None if unknown.

    Most actions are the service's prefix and the operation's name; the exceptions are listed per
    service below (from the Service Authorization Reference's "actions defined by" tables).
    """
    mapper = _MAPPERS.get(service)
    return None if mapper is None else mapper(operation, params, region, account)


def _dynamodb(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    if operation == "BatchGetItem" or operation == "BatchWriteItem":
        return [(f"dynamodb:{operation}", table(name), ()) for name in params.get("RequestItems", {})]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                   "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}  # fmt: skip
        return [
            (f"dynamodb:{actions[kind]}", table(request["TableName"]), ())
            for item in params.get("TransactItems", [])
            for kind, request in item.items()
        ]
    if isinstance(params.get("StreamArn"), str):  # DynamoDB Streams: DescribeStream, GetShardIterator
        return [(f"dynamodb:{operation}", params["StreamArn"], ())]
    if operation == "GetRecords" and str(params.get("ShardIterator", "")).startswith("arn:"):
        # The emulator's iterators start with their stream's ARN (AWS's are opaque; IAM checks the stream).
        return [("dynamodb:GetRecords", str(params["ShardIterator"]).split("|", 1)[0], ())]
    if "TableName" not in params:
        return None
    resource = table(params["TableName"])
    if params.get("IndexName"):  # Query and Scan on an index are checked against the index's ARN
        resource = f"{resource}/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", resource, ())]


def _sqs(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    if operation == "GetQueueUrl":
        owner = params.get("QueueOwnerAWSAccountId") or account
        return [("sqs:GetQueueUrl", f"arn:aws:sqs:{region}:{owner}:{params['QueueName']}", ())]
    if "QueueUrl" not in params:
        return None
    # https://sqs.<region>.amazonaws.com/<account>/<name>, or the emulator's http://host:port/<account>/<name>
    owner, _, name = urlsplit(params["QueueUrl"]).path.strip("/").partition("/")
    action = operation.removesuffix("Batch")  # SendMessageBatch is checked as sqs:SendMessage, and so on
    return [(f"sqs:{action}", f"arn:aws:sqs:{region}:{owner}:{name}", ())]


# S3 operations whose action is not their own name, and the key-less (bucket) ones.
_S3_OBJECT_ACTIONS = {
    "HeadObject": "GetObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "ListParts": "ListMultipartUploadParts",
}
_S3_BUCKET_ACTIONS = {
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
}


def _s3(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    bucket = params.get("Bucket")
    if not bucket:
        return None
    if operation in _S3_BUCKET_ACTIONS:
        # A listing's prefix is the s3:prefix key that policies may limit it by.
        prefix = params.get("Prefix")
        conditions: Conditions = (("s3:prefix", prefix),) if prefix is not None else ()
        return [(f"s3:{_S3_BUCKET_ACTIONS[operation]}", f"arn:aws:s3:::{bucket}", conditions)]
    if operation == "DeleteObjects":  # checked per key, as s3:DeleteObject(Version)
        objects = params.get("Delete", {}).get("Objects", [])
        return [
            (
                "s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                f"arn:aws:s3:::{bucket}/{o['Key']}",
                (),
            )
            for o in objects
        ]
    if "Key" not in params:
        return None
    action = _S3_OBJECT_ACTIONS.get(operation, operation)
    if params.get("VersionId") and action in ("GetObject", "DeleteObject"):
        action += "Version"
    return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{params['Key']}", ())]


def _scheduler(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    if operation in ("ListSchedules", "ListScheduleGroups"):
        return [(f"scheduler:{operation}", "*", ())]  # not scoped to a resource by IAM
    if "Name" not in params:
        return None
    group = params.get("GroupName") or "default"
    schedule = f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{params['Name']}"
    needs: list[Need] = [(f"scheduler:{operation}", schedule, ())]
    role = (params.get("Target") or {}).get("RoleArn")
    if role and operation in ("CreateSchedule", "UpdateSchedule"):
        # Naming a role for the schedule to use is passing it.
        needs.append(("iam:PassRole", role, (("iam:PassedToService", "scheduler.amazonaws.com"),)))
    return needs


def _events(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    if operation != "PutEvents":
        return None

    def bus(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{name}"

    buses = {entry.get("EventBusName") or "default" for entry in params.get("Entries", [])}
    return [("events:PutEvents", bus(name), ()) for name in sorted(buses)]


def _ssm(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    # Decrypting a SecureString under the AWS managed key aws/ssm needs no kms statement in the
    # caller's policy: that key's own policy allows it through SSM.
    def parameter(name: str) -> str:
        if name.startswith("arn:"):
            return name
        return f"arn:aws:ssm:{region}:{account}:parameter{name if name.startswith('/') else '/' + name}"

    if operation in ("GetParameters", "DeleteParameters"):
        return [(f"ssm:{operation}", parameter(name), ()) for name in params.get("Names", [])]
    if operation == "GetParametersByPath":
        return [("ssm:GetParametersByPath", parameter(params["Path"].rstrip("/") or "/"), ())]
    if "Name" not in params:
        return None
    return [(f"ssm:{operation}", parameter(params["Name"]), ())]


def _kms(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need] | None:
    key = params.get("KeyId")
    if operation not in ("Encrypt", "Decrypt") or not isinstance(key, str):
        return None
    return [(f"kms:{operation}", key if key.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key}", ())]


_MAPPERS: dict[str, Callable[[str, Mapping[str, Any], str, str], list[Need] | None]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "s3": _s3,
    "scheduler": _scheduler,
    "events": _events,
    "ssm": _ssm,
    "kms": _kms,
}
