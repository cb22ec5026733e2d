"""No secret ever reaches a log line (DESIGN.md invariant 6): not the MeetStream API key, not the
webhook secret, not a callback URL's capability token, not a workspace delivery's signature.

The whole pipeline runs on the local stack (several meetings, one never admitted and one denied,
per-bot callbacks and signed workspace deliveries, rejected requests, a reconcile run and a
provider that refuses our key) while everything is captured: our loggers at DEBUG, through
Powertools' own JSON output on stdout and through the logging tree; every other logger at INFO, the
level Lambda's ApplicationLogLevel in template.yaml gives the root logger.

Third-party loggers below INFO stay out: botocore at DEBUG prints whole request and response
bodies, SSM's decrypted GetParameter answer included, and nothing an application does can stop
that; it must simply never run at DEBUG in production. At INFO, one third-party line may carry a
token: httpx's "HTTP Request: POST <url>" for a request *to* the webhook endpoint. It is logged by
the caller (the simulator playing MeetStream, or this test sending requests that must be turned
away), never by meetpilot, which only receives webhooks; every other record is searched.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.domain.clock import to_iso
from meetpilot.domain.webhook_auth import capability_token, sign_body
from meetpilot.errors import ProviderAuthError
from meetpilot.handlers import dispatch
from meetpilot.handlers.observability import logger as powertools_logger
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.stack.embedded import LocalStack
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from meetpilot_dev.stack.sqs_runner import sqs_event
from tests.support.log_capture import captured_text
from tests.support.stacks import run_until


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Everything logged from now on, but for the lines of those who call the webhook endpoint."""
    with captured_text(caplog, capsys, skip=_caller_side) as text:
        yield text


def _caller_side(record: logging.LogRecord) -> bool:
    """httpx's line for a request *to* the webhook endpoint: logged by whoever calls it (the
    simulator playing MeetStream, or this test), never by meetpilot, which only receives them."""
    return record.name.startswith("httpx") and "/webhooks/meetstream" in record.getMessage()


def enable_workspace_deliveries(stack: LocalStack) -> None:
    """Make the simulator also post every event, signed, to the workspace endpoint.

    The gateway's port is only known once the stack runs, after the simulator was configured, so
    the setting is swapped in afterwards.
    """
    config = replace(
        stack.simulator.config,
        workspace_url=f"{stack.gateway.url}/webhooks/meetstream",
        workspace_secret=stack.signing_secret,
    )
    stack.simulator.config = config
    stack.simulator._api.config = config


def refuse_our_api_key(stack: LocalStack, refuse: bool) -> None:
    keys = ("someone-elses-key",) if refuse else (stack.api_key,)
    config = replace(stack.simulator._api.config, api_keys=keys)
    stack.simulator.config = config
    stack.simulator._api.config = config


def test_a_full_run_logs_no_api_key_secret_token_or_signature(
    stack_factory: Callable[..., LocalStack], captured: Callable[[], str]
) -> None:
    # Every bot also gets a live-transcript URL, whose token must stay out of the logs as well.
    stack = stack_factory(quiet_logs=False, live_transcripts="true", simulator_overrides={"live_segments": 3})
    logging.getLogger("meetpilot").setLevel(logging.DEBUG)  # quiet or not, the stack sets a level
    enable_workspace_deliveries(stack)
    meetings = {
        "https://meet.google.com/abc-defg-hij": Scenario.NORMAL,
        "https://zoom.us/j/1234567890": Scenario.NORMAL,
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0": Scenario.NOT_ADMITTED,
        "https://meet.google.com/xyz-wxyz-xyz": Scenario.DENIED,
    }
    start = datetime.now(UTC) + timedelta(seconds=2)
    keys = []
    for url, scenario in meetings.items():
        stack.simulator.set_scenario(url, scenario)
        keys.append(stack.submit_meeting(url, start, title="Quarterly review", user_id="alice"))

    def all_settled() -> bool:
        sessions = [stack.session_for(key) for key in keys]
        return all(s is not None and s.outcome is not None for s in sessions)

    assert run_until(stack, all_settled, 60), [stack.session_for(k) for k in keys]
    sessions = [stack.session_for(key) for key in keys]
    deliveries = stack.simulator.deliveries()
    assert any(d["workspace"] and d["status"] == 200 for d in deliveries), "no signed delivery got in"

    # Requests that are turned away are logged too; what they carried must not be.
    gateway = stack.gateway.url + "/webhooks/meetstream"
    other_token = capability_token(stack.webhook_secret, sessions[1].session_id)
    body = json.dumps({"event": "bot.joining", "bot_id": sessions[0].bot_id, "timestamp": to_iso(datetime.now(UTC))})
    rejected = [
        httpx.post(f"{gateway}/{sessions[0].session_id}/{other_token}", content=body),  # another session's token
        httpx.post(f"{gateway}/{sessions[0].session_id}/{capability_token(stack.webhook_secret, 'x')}", content="{"),
        httpx.post(
            f"{gateway}/{sessions[0].session_id}/{capability_token(stack.webhook_secret, sessions[0].session_id)}",
            content=b'{"no": "event"}',
        ),
        httpx.post(gateway, content=body, headers={"X-MeetStream-Signature": sign_body(stack.signing_secret, b"x")}),
        httpx.post(
            gateway,
            content=body,
            headers={
                "X-MeetStream-Signature": sign_body(stack.signing_secret, body.encode()),
                "X-MeetStream-Timestamp": "2001-01-01T00:00:00Z",
            },
        ),
    ]
    assert [r.status_code for r in rejected] == [401, 401, 400, 401, 401]
    live_token = capability_token(stack.webhook_secret, sessions[0].session_id, live=True)
    live_rejected = [
        # the callback token on the live route, the live token on the callback route, a bad body
        httpx.post(f"{gateway}/live/{sessions[0].session_id}/{other_token}", content=b"{}"),
        httpx.post(f"{gateway}/{sessions[0].session_id}/{live_token}", content=body),
        httpx.post(f"{gateway}/live/{sessions[0].session_id}/{live_token}", content=b"{"),
    ]
    assert [r.status_code for r in live_rejected] == [401, 401, 400]
    assert any("/live/" in d["url"] and d["status"] == 200 for d in deliveries), "no live delivery got in"

    # The reconciler reads the provider with the API key; a provider that refuses the key makes
    # dispatch fail with an error whose traceback is searched as well.
    load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))
    refuse_our_api_key(stack, True)
    submit = {"meeting_url": "https://meet.google.com/aaa-bbbb-ccc", "start": to_iso(datetime.now(UTC))}
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps({"submit": submit})}
    record = SQSRecord(sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:dispatch")["Records"][0])
    try:
        with pytest.raises(ProviderAuthError) as refused:
            dispatch.handle_record(record)
    finally:
        refuse_our_api_key(stack, False)
    traceback_text = "".join(traceback.format_exception(refused.value))
    assert "API key" in traceback_text

    logged = captured() + traceback_text
    # (what it is, its value): every secret that existed during the run.
    secrets = [
        ("the MeetStream API key", stack.api_key),
        ("the token secret", stack.webhook_secret),
        ("the workspace signing secret", stack.signing_secret),
    ]
    secrets += [
        (f"the token of {s.session_id}", capability_token(stack.webhook_secret, s.session_id)) for s in sessions
    ]
    secrets += [
        (f"the live token of {s.session_id}", capability_token(stack.webhook_secret, s.session_id, live=True))
        for s in sessions
    ]
    for delivery in deliveries:
        if delivery["workspace"]:
            signature = delivery["headers"]["X-MeetStream-Signature"].removeprefix("sha256=")
            secrets.append((f"the signature of a signed {delivery['name']} delivery", signature))
        else:
            secrets.append(
                (f"the token in a callback URL for {delivery['bot_id']}", delivery["url"].rsplit("/", 1)[-1])
            )
    secrets.append(("a token sent with a rejected request", other_token))
    assert sum(1 for name, _ in secrets if name.startswith("the signature")) > 10
    leaked = sorted({name for name, value in secrets if value in logged})
    assert leaked == [], f"found in the logs: {', '.join(leaked)}"
    assert len(logged) > 10_000  # a real amount of logging was searched, not an empty capture


def test_the_capture_sees_what_our_loggers_write(captured: Callable[[], str]) -> None:
    # Guards the test above: were the capture to miss Powertools' stdout or our module loggers,
    # it would pass whatever they printed.
    powertools_logger.debug("canary-one", extra={"field": "canary-two"})
    logging.getLogger("meetpilot.adapters.meetstream").debug("canary-three")
    try:
        raise RuntimeError("canary-four")
    except RuntimeError:
        powertools_logger.exception("failed")
    text = captured()
    for canary in ("canary-one", "canary-two", "canary-three", "canary-four"):
        assert canary in text
    assert '"field":"canary-two"' in text  # Powertools' own JSON line, read from stdout
