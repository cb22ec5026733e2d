"""Replays recorded AWS calls against each function's role in the SAM-translated template.

The role policies are resolved to the local stack's ARNs (the same names the calls carry) and
evaluated statement by statement as IAM does: an explicit Deny wins, else any Allow grants. moto's
IAM policy evaluator matches each statement's actions (case-sensitively) and resources; conditions
are tested here (``condition_holds``), because moto ignores operators other than ``StringEquals``
and lets a key the request lacks pass, which would make a conditional grant look unconditional.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from meetpilot_dev.stack.aws_call_log import LOCAL_ACCOUNT, Access
from meetpilot_dev.stack.template import function_environment, function_logical_ids

REGION = "us-east-1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": LOCAL_ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "meetpilot-local",
}


@dataclass(frozen=True)
class Grant:
    """One action on one resource that a role's Allow statement names; ``label`` is the template's
    own spelling of the resource (``Table.Arn``, ``${TranscriptBucket.Arn}/transcripts/*``)."""

    function: str
    action: str
    label: str
    resource: str


# --- which role a function runs as, and what it says ------------------------------------------


def function_roles(translated: Mapping[str, Any]) -> dict[str, str]:
    """Every Lambda function of the translated template -> the logical id of its execution role."""
    roles = {}
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resource["Properties"]["Role"]
        assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{logical_id}: role must be a template role"
        roles[logical_id] = role["Fn::GetAtt"][0]
    return roles


def role_documents(translated: Mapping[str, Any], role_id: str) -> list[dict[str, Any]]:
    """The policy documents attached to a role: inline ones and IAM::Policy resources naming it."""
    resources = translated["Resources"]
    props = resources[role_id]["Properties"]
    assert not props.get("ManagedPolicyArns"), f"{role_id}: managed policies cannot be replayed offline"
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    for resource in resources.values():
        attached = resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        if attached and {"Ref": role_id} in resource["Properties"].get("Roles", []):
            documents.append(resource["Properties"]["PolicyDocument"])
    return documents


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def label(resource: Any) -> str:
    if isinstance(resource, str):
        return resource
    if "Fn::GetAtt" in resource:
        return ".".join(resource["Fn::GetAtt"])
    if "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
        return resource["Fn::Sub"]
    return json.dumps(resource, sort_keys=True)


# --- template values -> the local stack's names -----------------------------------------------


class LocalNames:
    """Resolves ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` to what a local stack made.

    An expression the template also hands a function as an environment variable resolves to the
    value the stack gave that variable (the very value the code passes on, e.g. the scheduler's
    role ARN); the rest are built from the resource's type and local name.
    """

    def __init__(self, template: Mapping[str, Any], stack: Any) -> None:
        self._template = template
        self._resources = template["Resources"]
        made = stack.resources
        self._refs: dict[str, str] = {
            **made.queue_urls,
            **made.dlq_urls,
            **{logical_id: name for logical_id, name in self._single_names(made).items()},
        }
        self._queue_arns = dict(made.queue_arns)
        self._given: dict[str, str] = {}
        for function_id in function_logical_ids(template):
            for var, expression in function_environment(template, function_id).items():
                if var in made.resource_environment:
                    self._given[json.dumps(expression, sort_keys=True)] = made.resource_environment[var]
        self._parameters = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}

    def _single_names(self, made: Any) -> dict[str, str]:
        names = {}
        for logical_id, resource in self._resources.items():
            kind = resource.get("Type")
            if kind == "AWS::DynamoDB::Table":
                names[logical_id] = made.table_name
            elif kind == "AWS::S3::Bucket":
                names[logical_id] = made.bucket
            elif kind == "AWS::Scheduler::ScheduleGroup":
                names[logical_id] = made.schedule_group
            elif kind == "AWS::KMS::Key":
                names[logical_id] = made.grants_key_id
        return names

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self._parameters:
            return self._parameters[name]
        return self._refs.get(name, name)

    def arn(self, logical_id: str) -> str:
        kind = self._resources[logical_id]["Type"]
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{LOCAL_ACCOUNT}:table/{self.ref(logical_id)}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.ref(logical_id)}"
        if kind == "AWS::SQS::Queue":
            return self._queue_arns[logical_id]
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{LOCAL_ACCOUNT}:log-group:{logical_id}:*"
        if kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            return f"arn:aws:lambda:{REGION}:{LOCAL_ACCOUNT}:function:{logical_id}"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{logical_id}"
        if kind == "AWS::KMS::Key":
            return f"arn:aws:kms:{REGION}:{LOCAL_ACCOUNT}:key/{self.ref(logical_id)}"
        raise AssertionError(f"no local ARN for {logical_id} ({kind})")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        given = self._given.get(json.dumps(value, sort_keys=True))
        if given is not None:
            return given
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", value
            return self.arn(logical_id)
        if set(value) == {"Fn::Sub"}:
            text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), variables), text)
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(self.resolve(parts))
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, variables: Mapping[str, Any]) -> str:
        if name in variables:
            return str(self.resolve(variables[name]))
        if "." in name and name not in PSEUDO:
            logical_id, _, attribute = name.partition(".")
            return str(self.resolve({"Fn::GetAtt": [logical_id, attribute]}))
        return str(self.resolve({"Ref": name}))


# --- evaluation -------------------------------------------------------------------------------


class RoleReplay:
    """The translated template's function roles, resolved for one local stack."""

    def __init__(self, translated: Mapping[str, Any], template: Mapping[str, Any], stack: Any) -> None:
        self.translated = translated
        self.names = LocalNames(template, stack)
        self.roles = function_roles(self.translated)
        self._raw = {function: role_documents(self.translated, role) for function, role in self.roles.items()}
        # Per function, each statement without its condition (for moto to match) and the condition.
        self._statements = {
            function: [
                (IAMPolicyStatement({k: v for k, v in s.items() if k != "Condition"}), s.get("Condition", {}))
                for document in documents
                for s in _as_list(self.names.resolve(document)["Statement"])
            ]
            for function, documents in self._raw.items()
        }

    def allowed(self, access: Access) -> bool:
        statements = self._statements.get(access.function)
        assert statements is not None, f"{access.function} is not a function of the template"
        context = dict(access.conditions)
        permitted = False
        for statement, condition in statements:
            result = statement.is_action_permitted(access.action, access.resource)
            if result == PermissionResult.NEUTRAL or not condition_holds(condition, context):
                continue
            if result == PermissionResult.DENIED:
                return False
            permitted = True
        return permitted

    def denied(self, accesses: Iterable[Access]) -> list[Access]:
        return [a for a in distinct(accesses) if not self.allowed(a)]

    def grants(self) -> list[Grant]:
        """Every (function, action, resource) an Allow statement of a function's role names."""
        out = []
        for function, documents in self._raw.items():
            for document in documents:
                for statement in _as_list(document["Statement"]):
                    if statement["Effect"] != "Allow":
                        continue
                    for action in _as_list(statement["Action"]):
                        for resource in _as_list(statement["Resource"]):
                            out.append(Grant(function, action, label(resource), self.names.resolve(resource)))
        return out

    def unused(self, accesses: Iterable[Access]) -> list[Grant]:
        """The grants that no recorded call of their function needed."""
        by_function: dict[str, set[tuple[str, str]]] = {}
        for a in distinct(accesses):
            by_function.setdefault(a.function, set()).add((a.action, a.resource))
        unused = []
        for grant in self.grants():
            statement = IAMPolicyStatement({"Effect": "Allow", "Action": grant.action, "Resource": grant.resource})
            if not any(
                statement.is_action_permitted(action, resource) == PermissionResult.PERMITTED
                for action, resource in by_function.get(grant.function, ())
            ):
                unused.append(grant)
        return unused


def _string_like(pattern: str, value: str) -> bool:
    # IAM's wildcards: * any run of characters, ? any one; everything else literal, case-sensitive.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


CONDITION_OPERATORS = {
    "StringEquals": lambda expected, value: expected == value,
    "StringLike": _string_like,
}


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """Whether a statement's Condition holds for a request's (single-valued) context keys, as IAM
    decides it: every operator and every key must match, a key matches when any listed value does,
    and a key the request lacks matches nothing (the template uses no ...IfExists operator)."""
    for operator, keys in condition.items():
        test = CONDITION_OPERATORS.get(operator)
        assert test is not None, f"the replay cannot evaluate the condition operator {operator}"
        for key, expected in keys.items():
            value = context.get(key)
            if value is None or not any(test(str(e), value) for e in _as_list(expected)):
                return False
    return True


def distinct(accesses: Iterable[Access]) -> list[Access]:
    """One access per (function, action, resource, conditions): the evaluation is the same."""
    seen: dict[tuple[Any, ...], Access] = {}
    for a in accesses:
        seen.setdefault((a.function, a.action, a.resource, a.conditions), a)
    return list(seen.values())


def without_action(translated: Mapping[str, Any], role_id: str, action: str) -> dict[str, Any]:
    """A copy of the translated template whose role ``role_id`` no longer allows ``action``."""
    changed = copy.deepcopy(dict(translated))
    for document in role_documents(changed, role_id):
        kept = []
        for statement in _as_list(document["Statement"]):
            actions = [a for a in _as_list(statement["Action"]) if a != action]
            if actions:
                kept.append({**statement, "Action": actions})
        document["Statement"] = kept
    return changed
