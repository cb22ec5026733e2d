"""IAM proven by replay: every AWS call each function makes in a small demo (and a small chaos run)
is allowed by that function's own role in the SAM-translated template, and each permission no call
used is explained here (the rest were removed from template.yaml).

The emulator accepts any call, so the calls are recorded (``meetpilot.local.aws_call_log``) and
evaluated afterwards with moto's IAM policy evaluator (``tests/infra/role_replay.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import meetpilot.adapters.ssm
from meetpilot.local.aws_call_log import AwsCallLog, recording
from meetpilot.local.template import load_template
from tests.infra.cfn import TEMPLATE_PATH, go_offline, translate
from tests.infra.role_replay import Grant, RoleReplay, distinct, function_roles, role_documents, without_action

# Permissions the small demo leaves unused, keyed (function, action, resource as the template
# writes it); "*" stands for any. Each says why it stays. A permission unused and not listed here
# fails the test: remove it from template.yaml or explain it here.
API_KEY = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${MeetStreamApiKeyParam}"
CALENDAR_SECRETS = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${CalendarSecretsPrefix}*"
SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"
EXPLAINED_UNUSED: dict[tuple[str, str, str], str] = {
    # Functions the demo never invokes. The small chaos run below drives the reconciler.
    ("ReconcileFunction", "*", "*"): "runs every 5 minutes, longer than the demo lasts; the chaos run "
    "drives it (not its renewal of Google push channels: PutItem, DeleteItem, calendar secrets)",
    ("ManagementFunction", "*", "*"): "the management API; the demo submits meetings in-process",
    ("LiveTranscriptFunction", "*", "*"): "live transcripts come only with streaming providers, not the demo's",
    ("CalendarPollFunction", "*", "*"): "its 10-minute schedule; the demo runs the same poll in-process",
    ("CalendarPushFunction", "*", "*"): "Google push notifications; the demo's calendars are ICS feeds",
    # Paths of invoked functions that a demo without faults does not take.
    ("DispatchFunction", "sqs:SendMessage", "DispatchQueue.Arn"): "requeues a dispatch with a delay after a "
    "provider error (the chaos run takes it)",
    ("DispatchFunction", "scheduler:UpdateSchedule", SCHEDULES): "a meeting submitted again at a new time",
    ("DispatchFunction", "scheduler:DeleteSchedule", SCHEDULES): "a meeting submitted again as cancelled",
    ("TranscriptFetchFunction", "sqs:SendMessage", "TranscriptQueue.Arn"): "requeues a fetch with a delay while "
    "the provider's transcript is not ready (the chaos run takes it)",
    ("TranscriptFetchFunction", "dynamodb:Query", "Table.Arn"): "reads a session's live segments (streaming providers)",
    ("TranscriptFetchFunction", "s3:AbortMultipartUpload", "${TranscriptBucket.Arn}/transcripts/*"): "s3transfer "
    "aborts a multipart upload (transcripts over 8 MB) that failed part-way",
    ("BotEventsFunction", "dynamodb:Query", "${Table.Arn}/index/by-bot"): "finds the session of a delivery to the "
    "workspace webhook, whose URL carries no session id; the demo's bots use per-session URLs",
    ("CalendarSyncFunction", "sqs:SendMessage", "DispatchQueue.Arn"): "a calendar meeting inside the lead time is "
    "dispatched at once instead of through a schedule",
    ("CalendarSyncFunction", "sqs:SendMessage", "CalendarSyncQueue.Arn"): "requeues a sync whose lease another "
    "sync holds",
    ("CalendarSyncFunction", "ssm:GetParameter", API_KEY): "removes the bot of a meeting cancelled after dispatch",
    ("CalendarSyncFunction", "ssm:GetParameter", CALENDAR_SECRETS): "Google calendars' OAuth credentials",
}


def _explanation(grant: Grant) -> str | None:
    if grant.action.startswith("logs:"):
        return "the Lambda runtime writes the function's logs with its role; the code makes no such call"
    for key in ((grant.function, grant.action, grant.label), (grant.function, grant.action, "*"),
                (grant.function, "*", "*")):  # fmt: skip
        if key in EXPLAINED_UNUSED:
            return EXPLAINED_UNUSED[key]
    return None


_TEMPLATE = load_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def translated() -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        go_offline(mp)
        yield translate(_TEMPLATE)


def _replay(log: AwsCallLog, translated: dict[str, Any]) -> RoleReplay:
    (stack,) = log.stacks
    return RoleReplay(translated, _TEMPLATE, stack)


def _record(run: Any) -> AwsCallLog:
    with pytest.MonkeyPatch.context() as mp:
        # One container serves every function locally, where each Lambda function caches secrets
        # of its own: without the cache every function's own reads reach SSM and are seen.
        mp.setattr(meetpilot.adapters.ssm, "CACHE_SECONDS", 0)
        with recording() as log:
            run()
    return log


@pytest.fixture(scope="module")
def demo_calls(tmp_path_factory: pytest.TempPathFactory) -> AwsCallLog:
    from meetpilot.local.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    # Meetings start past the 10 s lead time, so ad-hoc ones are dispatched through schedules too.
    reports = []
    log = _record(lambda: reports.append(run_demo(4, timeout=90, out_dir=out, live=False, first_start=12.0)))
    # Whether every outcome is right is the demo's own test; here the calls matter.
    assert reports[0].stored > 0, reports[0].summary_line()
    return log


def _describe(accesses: Any) -> str:
    return "\n".join(f"{a.function}: {a.operation} needs {a.action} on {a.resource}" for a in accesses)


def test_every_aws_call_of_the_demo_is_allowed_by_its_functions_role(
    demo_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    replay = _replay(demo_calls, translated)
    assert not demo_calls.unmapped, f"calls the recorder cannot name in IAM terms: {set(demo_calls.unmapped)}"
    # The demo reaches the functions of the pipeline and of ICS calendars.
    assert {"DispatchFunction", "IngestFunction", "BotEventsFunction", "TranscriptFetchFunction",
            "CalendarSyncFunction"} <= demo_calls.functions()  # fmt: skip
    denied = replay.denied(demo_calls.accesses)
    assert not denied, "denied by the function's role:\n" + _describe(denied)


def test_every_permission_the_demo_leaves_unused_is_explained(
    demo_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    unused = _replay(demo_calls, translated).unused(demo_calls.accesses)
    unexplained = [g for g in unused if _explanation(g) is None]
    assert not unexplained, "granted but never used (remove, or explain in EXPLAINED_UNUSED):\n" + "\n".join(
        f"{g.function}: {g.action} on {g.label}" for g in unexplained
    )


def test_removing_any_permission_the_demo_used_denies_its_call(
    demo_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    roles = function_roles(translated)
    accesses = distinct(demo_calls.accesses)
    used = sorted({(a.function, a.action) for a in accesses})
    assert len(used) > 20
    for function, action in used:
        narrowed = without_action(translated, roles[function], action)
        denied = _replay(demo_calls, narrowed).denied(a for a in accesses if a.function == function)
        assert {a.action for a in denied} == {action}, (function, action)


def test_replay_evaluates_only_conditions_moto_understands(translated: dict[str, Any]) -> None:
    # moto's evaluator checks StringEquals and ignores any other operator, which would make a
    # conditional grant look unconditional.
    for role in set(function_roles(translated).values()):
        for document in role_documents(translated, role):
            for statement in document["Statement"]:
                assert set(statement.get("Condition", {})) <= {"StringEquals"}, (role, statement)


@pytest.mark.slow
def test_every_aws_call_of_a_small_chaos_run_is_allowed_by_its_functions_role(translated: dict[str, Any]) -> None:
    from meetpilot.local.chaos import ChaosRates, run_chaos

    # Faults often enough that the retry paths (requeues, the reconciler) run in a dozen meetings.
    rates = ChaosRates(
        duplicate_webhook=0.2, reorder_webhook=0.2, drop_webhook=0.1, rate_limit=0.2, server_error=0.1,
        timeout=0.03, not_admitted=0.1, denied=0.1, handler_crash=0.05, ddb_throttle=0.03,
    )  # fmt: skip
    log = _record(lambda: run_chaos(12, rates=rates, seed=11, timeout=240))
    assert not log.unmapped, set(log.unmapped)
    assert "ReconcileFunction" in log.functions()
    denied = _replay(log, translated).denied(log.accesses)
    assert not denied, "denied by the function's role:\n" + _describe(denied)
