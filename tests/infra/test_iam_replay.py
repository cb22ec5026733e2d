"""IAM proven by replay: every AWS call each function makes in a small demo, in a pass over every
route of the management API (forget included) and in a small chaos run is allowed by that function's
own role in the SAM-translated template, and each permission no call used is explained here (the
rest were removed from template.yaml).

The emulator accepts any call, so the calls are recorded (``meetpilot_dev.stack.aws_call_log``) and
evaluated afterwards with moto's IAM policy evaluator (``tests/infra/role_replay.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import meetpilot.adapters.grants
import meetpilot.adapters.ssm
from meetpilot_dev.client import ManagementClient, quote_segment
from meetpilot_dev.stack.aws_call_log import AwsCallLog, recording
from meetpilot_dev.stack.template import load_template
from tests.infra.cfn import TEMPLATE_PATH, go_offline, translate
from tests.infra.role_replay import (
    CONDITION_OPERATORS,
    Grant,
    RoleReplay,
    distinct,
    function_roles,
    role_documents,
    without_action,
)
from tests.support.calendar_helpers import Ev, ics
from tests.support.stacks import FAST_SIMULATOR, run_until

# Permissions that neither the small demo nor the pass over the management API uses, keyed
# (function, action, resource as the template writes it); "*" stands for any. Each says why it
# stays. A permission unused and not listed here fails the test: remove it from template.yaml or
# explain it here.
API_KEY = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${MeetStreamApiKeyParam}"
GOOGLE_CLIENT = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${GoogleOAuthClientParam}"
MICROSOFT_CLIENT = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${MicrosoftOAuthClientParam}"
GRANTS_KEY = "CalendarGrantsKey.Arn"
SIGNING_SECRET = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${WorkspaceSigningSecretParam}"
SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"
EXPLAINED_UNUSED: dict[tuple[str, str, str], str] = {
    # The dispatch plan reads its slot counters with BatchGetItem when a meeting is planned. The
    # local stack plans only when asked (StackOptions.provider_create_rate; the bench and the burst
    # tests do), and the recorded runs leave it off. The demo's submitted meetings are dispatched at
    # once, so the dispatch function's own schedule for a submitted meeting far ahead is not seen.
    ("CalendarSyncFunction", "dynamodb:BatchGetItem", "Table.Arn"): "plans slots (see above)",
    ("DispatchFunction", "dynamodb:BatchGetItem", "Table.Arn"): "plans slots of submitted meetings",
    ("DispatchFunction", "scheduler:CreateSchedule", "*"): "a submitted meeting whose slot is far ahead",
    ("DispatchFunction", "iam:PassRole", "SchedulerRole.Arn"): "with that schedule",
    # Functions no recorded run invokes. The small chaos run below drives the reconciler.
    ("ReconcileFunction", "*", "*"): "runs every 5 minutes, longer than the demo lasts; the chaos run "
    "drives it (not its renewal of Google push channels: PutItem, DeleteItem, calendar secrets)",
    ("LiveTranscriptFunction", "*", "*"): "live transcripts come only with streaming providers, not the demo's",
    ("CalendarPollFunction", "*", "*"): "its 10-minute schedule; the demo runs the same poll in-process",
    ("CalendarPushFunction", "*", "*"): "Google push notifications; the demo's Google calendar does not change "
    "once connected",
    # What Lambda's event source mapping does with the stream publisher's role that no run needs.
    ("StreamPublisherFunction", "dynamodb:ListStreams", "${Table.Arn}/stream/*"): "Lambda's DynamoDB event "
    "source mapping may list the table's streams (AWS's documented policy for it); the local reader is "
    "handed the stream ARN",
    ("StreamPublisherFunction", "sqs:SendMessage", "StreamPublisherFailureQueue.Arn"): "Lambda's on-failure "
    "destination, used only when a batch's events could not be published after every retry",
    # Paths of invoked functions that a demo without faults does not take.
    ("DispatchFunction", "sqs:SendMessage", "DispatchQueue.Arn"): "requeues a dispatch with a delay after a "
    "provider error (the chaos run takes it)",
    ("DispatchFunction", "dynamodb:Query", "Table.Arn"): "a replayed claim whose session was already made reads "
    "it (the session and its history items are one query) before recording the bot",
    ("DispatchFunction", "scheduler:UpdateSchedule", SCHEDULES): "a meeting submitted again at a new time",
    ("DispatchFunction", "scheduler:DeleteSchedule", SCHEDULES): "a meeting submitted again as cancelled",
    ("TranscriptFetchFunction", "sqs:SendMessage", "TranscriptQueue.Arn"): "requeues a fetch with a delay while "
    "the provider's transcript is not ready (the chaos run takes it)",
    ("TranscriptFetchFunction", "dynamodb:Query", "Table.Arn"): "reads a session's live segments (streaming providers)",
    ("TranscriptFetchFunction", "dynamodb:PutItem", "Table.Arn"): "writes the history items of the transitions it "
    "recovers from the provider's record while a transcript is late (the chaos run takes it)",
    ("TranscriptFetchFunction", "s3:AbortMultipartUpload", "${TranscriptBucket.Arn}/transcripts/*"): "s3transfer "
    "aborts a multipart upload (transcripts over 8 MB) that failed part-way",
    ("BotEventsFunction", "dynamodb:Query", "${Table.Arn}/index/by-bot"): "finds the session of a delivery to the "
    "workspace webhook, whose URL carries no session id; the demo's bots use per-session URLs",
    ("IngestFunction", "ssm:GetParameter", SIGNING_SECRET): "verifies signed deliveries to the workspace "
    "webhook; the recorded runs' bots use per-session callback URLs, checked with the token secret",
    ("CalendarSyncFunction", "sqs:SendMessage", "DispatchQueue.Arn"): "a calendar meeting inside the lead time is "
    "dispatched at once instead of through a schedule",
    ("CalendarSyncFunction", "sqs:SendMessage", "CalendarSyncQueue.Arn"): "requeues a sync whose lease another "
    "sync holds",
    ("CalendarSyncFunction", "ssm:GetParameter", API_KEY): "removes the bot of a meeting cancelled after dispatch",
    # The demo connects and syncs Google and Microsoft calendars; no recorded run forgets a user who has one.
    **{
        (function, action, resource): why
        for function, why in (
            (
                "ForgetFunction",
                "forgetting a user removes their Google and Microsoft calendars, which stops each "
                "channel or subscription with the calendar's grant",
            ),
        )
        for action, resource in (
            ("ssm:GetParameter", GOOGLE_CLIENT),
            ("ssm:GetParameter", MICROSOFT_CLIENT),
            ("kms:Encrypt", GRANTS_KEY),
            ("kms:Decrypt", GRANTS_KEY),
        )
    },
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
        mp.setattr(meetpilot.adapters.grants, "CLIENT_CACHE_SECONDS", 0)  # the OAuth clients, likewise
        with recording() as log:
            run()
    return log


@pytest.fixture(scope="module")
def demo_calls(tmp_path_factory: pytest.TempPathFactory) -> AwsCallLog:
    from meetpilot_dev.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    # Meetings start past the 10 s lead time, so ad-hoc ones are dispatched through schedules too.
    reports = []
    log = _record(lambda: reports.append(run_demo(4, out_dir=out, live=False, first_start=12.0)))
    # Whether every outcome is right is the demo's own test; here the calls matter.
    assert reports[0].stored > 0, reports[0].summary_line()
    return log


def _drive_management_api(stack: Any, feeds: Any) -> None:
    """Every route of the management API once, and forget of a bot, a meeting and a user whose
    transcripts are stored, over HTTP through the gateway with SigV4 as a deployed API is called."""
    api = ManagementClient.for_dev({"gateway": stack.gateway.url, "environment": stack.environment()})
    try:
        now = datetime.now(UTC)
        later = ics([Ev("standup-1", now + timedelta(days=2), url="https://zoom.us/j/7770001")])
        calendars = {}
        for user in ("ann", "cal"):
            status, made = api.post(
                "/v1/calendars", {"provider": "ics", "feed_url": feeds.publish(user, later), "user_id": user}
            )
            assert status == 201, made
            calendars[user] = made["calendar_id"]
        assert len(api.get("/v1/calendars")["items"]) == 2
        # The first syncs put each calendar's meeting on a schedule (it is days away).
        assert run_until(stack, lambda: all(c.last_synced_at for c in stack.container.repository.list_calendars()))

        start = (now + timedelta(seconds=2)).isoformat()
        recorded = {}
        for user in ("ann", "bob", "carl"):
            body = {"meeting_url": f"https://meet.google.com/iam-{user}-one", "start": start, "user_id": user}
            status, made = api.post("/v1/meetings", body)
            assert status == 201, made
            recorded[user] = made["meeting_id"]
        # Within the lead time, so its bot is created at once and is still scheduled when cancelled.
        in_five = (now + timedelta(minutes=5)).isoformat()
        status, soon = api.post("/v1/meetings", {"meeting_url": "https://zoom.us/j/7770002", "start": in_five})
        assert status == 201, soon

        def meetings() -> list[dict[str, Any]]:
            return [api.get(f"/v1/meetings/{quote_segment(m)}") for m in (*recorded.values(), soon["meeting_id"])]

        def stored() -> bool:
            found = api.get("/v1/sessions", params={"status": "done"})["items"]
            return sum(s["outcome"] == "transcript_stored" for s in found) == len(recorded)

        assert run_until(stack, lambda: all(m["bot_id"] for m in meetings()) and stored(), 60)
        bots = {user: api.get(f"/v1/meetings/{quote_segment(m)}")["bot_id"] for user, m in recorded.items()}
        assert api.get("/v1/sessions")["items"]
        assert api.get("/v1/sessions", params={"user_id": "ann"})["items"]
        api.get("/v1/sessions", params={"calendar_event_id": f"{calendars['ann']}#standup-1"})
        assert api.get(f"/v1/sessions/{bots['ann']}")["outcome"] == "transcript_stored"
        assert api.get(f"/v1/transcripts/{bots['ann']}", params={"format": "vtt"})["url"]

        cancelled = api.post(f"/v1/meetings/{quote_segment(soon['meeting_id'])}/cancel")[1]
        assert cancelled["result"] == "bot_cancelled", cancelled
        # Decisions, rules, overrides and bot settings. Ann's override while Cal still wants the
        # meeting moves its schedule (UpdateSchedule); once Cal is gone, a skip deletes it and
        # taking the skip back creates it again.
        ann = f"/v1/calendars/{calendars['ann']}"
        override = f"{ann}/events/standup-1/override"
        assert api.get(f"{ann}/events")["items"][0]["recorded"]
        patch = {"rules": {"min_attendees": 5}, "bot": {"bot_name": "Ann Notes"}}
        assert api.request("PATCH", ann, params={"dry_run": "true"}, body=patch)[1]["changes"]
        api.request("PATCH", ann, body={"bot": {"bot_name": "Ann Notes"}})
        api.request("PUT", "/v1/users/ann/bot-settings", body={"bot_name": "Ann"})
        assert api.get("/v1/users/ann/bot-settings")["bot"]["bot_name"] == "Ann"
        api.request("PUT", override, body={"record": False})
        api.request("PUT", override, body={"record": True})
        assert api.delete(f"/v1/calendars/{calendars['cal']}")["calendar_id"] == calendars["cal"]
        api.request("PUT", override, body={"record": False})
        assert api.request("DELETE", override)[1]["decisions"][0]["recorded"]

        for target in ({"bot_id": bots["bob"]}, {"meeting_id": recorded["carl"]}, {"user_id": "ann"}):
            report = api.post("/v1/forget", target)[1]
            assert report["complete"] and report["transcript_versions_deleted"] > 0, report
        assert not stack.handler_errors, stack.handler_errors
    finally:
        api.close()


@pytest.fixture(scope="module")
def api_calls() -> AwsCallLog:
    from meetpilot_dev.fakes.feeds import FeedServer
    from meetpilot_dev.stack.embedded import LocalStack, StackOptions

    def run() -> None:
        options = StackOptions(background_pollers=False, simulator_overrides=dict(FAST_SIMULATOR))
        with LocalStack(options) as stack, FeedServer() as feeds:
            _drive_management_api(stack, feeds)

    return _record(run)


def _describe(accesses: Any) -> str:
    return "\n".join(f"{a.function}: {a.operation} needs {a.action} on {a.resource}" for a in accesses)


def test_every_aws_call_of_the_demo_is_allowed_by_its_functions_role(
    demo_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    replay = _replay(demo_calls, translated)
    assert not demo_calls.unmapped, f"calls the recorder cannot name in IAM terms: {set(demo_calls.unmapped)}"
    # The demo reaches the functions of the pipeline and of calendars connected through the API.
    assert {"DispatchFunction", "IngestFunction", "BotEventsFunction", "TranscriptFetchFunction",
            "CalendarSyncFunction", "ManagementFunction", "GraphNotifyFunction"} <= demo_calls.functions()  # fmt: skip
    denied = replay.denied(demo_calls.accesses)
    assert not denied, "denied by the function's role:\n" + _describe(denied)


def test_every_aws_call_of_the_management_api_and_forget_is_allowed_by_its_functions_role(
    api_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    assert not api_calls.unmapped, f"calls the recorder cannot name in IAM terms: {set(api_calls.unmapped)}"
    assert {"ManagementFunction", "ForgetFunction"} <= api_calls.functions()
    denied = _replay(api_calls, translated).denied(api_calls.accesses)
    assert not denied, "denied by the function's role:\n" + _describe(denied)


def test_every_permission_the_recorded_runs_leave_unused_is_explained(
    demo_calls: AwsCallLog, api_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    # Unused means unused by every run: each run's calls are matched against its own stack's names.
    unused = set.intersection(
        *({(g.function, g.action, g.label) for g in _replay(log, translated).unused(log.accesses)}
          for log in (demo_calls, api_calls))
    )  # fmt: skip
    unexplained = sorted(g for g in unused if _explanation(Grant(*g, resource="")) is None)
    assert not unexplained, "granted but never used (remove, or explain in EXPLAINED_UNUSED):\n" + "\n".join(
        f"{function}: {action} on {label}" for function, action, label in unexplained
    )


@pytest.mark.parametrize("run", ["demo_calls", "api_calls"])
def test_removing_any_permission_a_run_used_denies_its_call(
    run: str, request: pytest.FixtureRequest, translated: dict[str, Any]
) -> None:
    log: AwsCallLog = request.getfixturevalue(run)
    roles = function_roles(translated)
    accesses = distinct(log.accesses)
    used = sorted({(a.function, a.action) for a in accesses})
    assert len(used) > 15
    for function, action in used:
        narrowed = without_action(translated, roles[function], action)
        denied = _replay(log, narrowed).denied(a for a in accesses if a.function == function)
        assert {a.action for a in denied} == {action}, (function, action)


def test_replay_evaluates_every_condition_the_roles_use(translated: dict[str, Any]) -> None:
    # A condition operator the replay does not know would make its grant impossible to check.
    for role in set(function_roles(translated).values()):
        for document in role_documents(translated, role):
            for statement in document["Statement"]:
                assert set(statement.get("Condition", {})) <= set(CONDITION_OPERATORS), (role, statement)


def test_listing_transcript_versions_outside_the_transcripts_folder_is_denied(
    api_calls: AwsCallLog, translated: dict[str, Any]
) -> None:
    # ForgetFunction may list versions only under transcripts/ (a StringLike condition on s3:prefix).
    replay = _replay(api_calls, translated)
    listings = [a for a in distinct(api_calls.accesses) if a.action == "s3:ListBucketVersions"]
    assert listings and all(replay.allowed(a) for a in listings)
    assert not replay.allowed(dataclasses.replace(listings[0], conditions=(("s3:prefix", "meetings/"),)))
    assert not replay.allowed(dataclasses.replace(listings[0], conditions=()))


@pytest.mark.slow
def test_every_aws_call_of_a_small_chaos_run_is_allowed_by_its_functions_role(translated: dict[str, Any]) -> None:
    from meetpilot_dev.chaos import ChaosRates, run_chaos

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
