"""The webhook edge over real HTTP: who gets in, what is refused, and nothing acknowledged unstored."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meetpilot.composition import Container, use_container
from meetpilot.domain.clock import to_iso
from meetpilot.domain.webhook_auth import capability_token, sign_body
from meetpilot.handlers import ingest
from meetpilot_dev.stack.embedded import LocalStack, StackOptions

EVENT = {"event": "bot.joining", "bot_event": "bot.joining", "bot_id": "b-1", "timestamp": "2026-12-01T15:00:00Z"}


@pytest.fixture(scope="module")
def edge():
    stack = LocalStack(StackOptions(background_pollers=False)).start()
    yield stack
    stack.stop()


def queued(stack) -> list[dict]:
    """Every delivery currently in the bot-events queue (removed, so each test starts empty)."""
    sqs = stack.container.client("sqs")
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=stack.container.settings.bot_events_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=stack.container.settings.bot_events_queue_url, ReceiptHandle=m["ReceiptHandle"])


def post(stack, path, body: bytes, headers=None):
    return httpx.post(stack.gateway.url + path, content=body, headers=headers or {"content-type": "application/json"})


def callback_path(stack, session="sess-1", token=None):
    return f"/webhooks/meetstream/{session}/{token or capability_token(stack.webhook_secret, session)}"


def test_valid_capability_token_is_stored_then_acknowledged(edge):
    queued(edge)
    body = json.dumps(EVENT).encode()
    resp = post(edge, callback_path(edge), body)
    assert resp.status_code == 200 and resp.json() == {"received": True}
    (msg,) = queued(edge)
    assert msg["session_id"] == "sess-1" and msg["auth"] == "token"
    assert msg["body"] == body.decode()  # the raw body, byte for byte
    assert msg["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(
    "case",
    ["wrong", "other_session", "truncated", "wrong_secret", "extended"],
)
def test_bad_tokens_get_401_and_enqueue_nothing(edge, case):
    queued(edge)
    good = capability_token(edge.webhook_secret, "sess-1")
    token = {
        "wrong": "A" * len(good),
        "other_session": capability_token(edge.webhook_secret, "sess-2"),
        "truncated": good[:-4],
        "wrong_secret": capability_token("not-the-secret", "sess-1"),
        "extended": good + "x",
    }[case]
    resp = post(edge, callback_path(edge, token=token), json.dumps(EVENT).encode())
    assert resp.status_code == 401
    assert resp.json() == {"message": "invalid callback token"}
    assert queued(edge) == []


def signed_headers(secret, body, *, ts=None, upper=False):
    headers = {
        "Content-Type": "application/json",
        "X-MeetStream-Signature": sign_body(secret, body),
        "X-MeetStream-Timestamp": ts or to_iso(datetime.now(UTC)),
    }
    if upper:
        headers = {k.upper(): v for k, v in headers.items()}
    return headers


@pytest.mark.parametrize("upper", [False, True])
def test_signed_workspace_delivery_is_accepted_whatever_the_header_case(edge, upper):
    queued(edge)
    body = json.dumps(EVENT).encode()
    resp = post(edge, "/webhooks/meetstream", body, signed_headers(edge.signing_secret, body, upper=upper))
    assert resp.status_code == 200
    (msg,) = queued(edge)
    assert msg["auth"] == "signature" and msg["session_id"] is None


@pytest.mark.parametrize(
    "case,reason",
    [
        ("wrong_secret", "X-MeetStream-Signature"),
        ("tampered", "X-MeetStream-Signature"),
        ("missing_signature", "X-MeetStream-Signature"),
        ("old", "too old"),
        ("future", "future"),
        ("missing_timestamp", "missing X-MeetStream-Timestamp"),
        ("garbled_timestamp", "ISO-8601"),
    ],
)
def test_bad_signed_deliveries_get_401_and_enqueue_nothing(edge, case, reason):
    queued(edge)
    body = json.dumps(EVENT).encode()
    now = datetime.now(UTC)
    headers = signed_headers(edge.signing_secret, body)
    sent = body
    if case == "wrong_secret":
        headers = signed_headers("nope", body)
    elif case == "tampered":
        sent = body.replace(b"joining", b"stopped")
    elif case == "missing_signature":
        del headers["X-MeetStream-Signature"]
    elif case == "old":
        headers = signed_headers(edge.signing_secret, body, ts=to_iso(now - timedelta(minutes=6)))
    elif case == "future":
        headers = signed_headers(edge.signing_secret, body, ts=to_iso(now + timedelta(minutes=6)))
    elif case == "missing_timestamp":
        del headers["X-MeetStream-Timestamp"]
    elif case == "garbled_timestamp":
        headers["X-MeetStream-Timestamp"] = "last tuesday"
    resp = post(edge, "/webhooks/meetstream", sent, headers)
    assert resp.status_code == 401
    assert reason in resp.json()["message"]
    assert queued(edge) == []


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"x" * (256 * 1024 + 1), 413, "larger than 256 KiB"),
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00", 400, "not valid UTF-8 JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'"bot.joining"', 400, "must be a JSON object"),
        (b'{"bot_id": "b-1"}', 400, "no event"),
    ],
)
def test_bad_bodies_get_their_status_and_enqueue_nothing(edge, body, status, message):
    queued(edge)
    resp = post(edge, callback_path(edge), body)
    assert resp.status_code == status
    assert message in resp.json()["message"]
    assert queued(edge) == []


# Bodies a valid credential may carry that the bot-events worker would drop: each is refused at the
# edge with the worker's own one-line reason, on both routes, and nothing reaches the queue.
BAD_BODIES = {
    "event_not_a_string": (b'{"event": 7, "bot_id": "b-1"}', "field 'event' must be a string, got number"),
    "bot_event_not_a_string": (b'{"event": "bot.stopped", "bot_event": ["x"]}', "field 'bot_event' must be a string"),
    "bot_id_not_a_string": (b'{"event": "bot.joining", "bot_id": 12}', "field 'bot_id' must be a non-empty string"),
    "bot_id_empty": (b'{"event": "bot.joining", "bot_id": " "}', "field 'bot_id' must be a non-empty string"),
    "nan": (b'{"event": "bot.joining", "status_code": NaN}', "body holds NaN"),
    "infinity": (b'{"event": "bot.joining", "data": {"x": -Infinity}}', "body holds -Infinity"),
    "float_overflow": (b'{"event": "bot.joining", "status_code": 1e400}', "number too large"),
    "int_overflow": (b'{"event": "bot.joining", "data": {"start": 1' + b"0" * 400 + b"}}", "number too large"),
    "only_a_blank_status": (b'{"bot_status": "  ", "bot_id": "b-1"}', "no event, bot_event or bot_status"),
}


@pytest.mark.parametrize("route", ["callback", "workspace"])
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_valid_credential_with_a_bad_body_gets_a_400_with_one_line_and_nothing_queued(edge, route, case):
    queued(edge)
    body, reason = BAD_BODIES[case]
    if route == "callback":
        resp = post(edge, callback_path(edge), body)
    else:
        resp = post(edge, "/webhooks/meetstream", body, signed_headers(edge.signing_secret, body))
    assert resp.status_code == 400, resp.text
    message = resp.json()["message"]
    assert reason in message and "\n" not in message and len(message) < 120
    assert queued(edge) == []


def test_an_unknown_event_name_is_still_accepted_and_kept(edge):
    queued(edge)
    body = json.dumps({"event": "bot.something_new", "bot_id": "b-1"}).encode()
    assert post(edge, callback_path(edge), body).status_code == 200
    (msg,) = queued(edge)
    assert msg["body"] == body.decode()


# --- the two secrets --------------------------------------------------------------------------


def test_the_token_and_signing_secrets_are_two_ssm_parameters_read_separately(edge):
    settings = edge.container.settings
    assert settings.webhook_secret_param != settings.signing_secret_param
    ssm = edge.container.client("ssm")
    assert ssm.get_parameter(Name=settings.webhook_secret_param, WithDecryption=True)["Parameter"]["Value"] == (
        edge.webhook_secret
    )
    assert ssm.get_parameter(Name=settings.signing_secret_param, WithDecryption=True)["Parameter"]["Value"] == (
        edge.signing_secret
    )
    assert edge.webhook_secret != edge.signing_secret
    assert edge.container.secrets.token_secrets() == (edge.webhook_secret,)
    assert edge.container.secrets.signing_secrets() == (edge.signing_secret,)


def test_a_capability_token_made_with_the_signing_secret_is_refused(edge):
    queued(edge)
    token = capability_token(edge.signing_secret, "sess-1")
    resp = post(edge, callback_path(edge, token=token), json.dumps(EVENT).encode())
    assert resp.status_code == 401
    assert queued(edge) == []


def test_a_body_signed_with_the_token_secret_is_refused_on_the_workspace_route(edge):
    queued(edge)
    body = json.dumps(EVENT).encode()
    resp = post(edge, "/webhooks/meetstream", body, signed_headers(edge.webhook_secret, body))
    assert resp.status_code == 401
    assert "X-MeetStream-Signature" in resp.json()["message"]
    assert queued(edge) == []


def test_each_secret_rotates_on_its_own_with_two_values_new_first(edge):
    settings = edge.container.settings
    ssm = edge.container.client("ssm")
    old_token, old_signing = edge.webhook_secret, edge.signing_secret
    new_token, new_signing = "new-token-secret-for-the-test", "new-signing-secret-for-the-test"
    fresh = Container(settings, boto_session=edge.boto_session, endpoint_url=edge.aws_endpoint)  # no cached values
    try:
        ssm.put_parameter(
            Name=settings.webhook_secret_param, Value=f"{new_token},{old_token}", Type="SecureString", Overwrite=True
        )
        ssm.put_parameter(
            Name=settings.signing_secret_param,
            Value=f"{new_signing}, {old_signing}",
            Type="SecureString",
            Overwrite=True,
        )
        use_container(fresh)
        assert fresh.secrets.token_secrets() == (new_token, old_token)
        assert fresh.secrets.signing_secrets() == (new_signing, old_signing)
        queued(edge)
        body = json.dumps(EVENT).encode()
        for secret in (new_token, old_token):
            assert post(edge, callback_path(edge, token=capability_token(secret, "sess-1")), body).status_code == 200
        for secret in (new_signing, old_signing):
            assert post(edge, "/webhooks/meetstream", body, signed_headers(secret, body)).status_code == 200
        # During both rotations, neither secret's values open the other's route.
        for secret in (new_signing, old_signing):
            assert post(edge, callback_path(edge, token=capability_token(secret, "sess-1")), body).status_code == 401
        for secret in (new_token, old_token):
            assert post(edge, "/webhooks/meetstream", body, signed_headers(secret, body)).status_code == 401
        assert len(queued(edge)) == 4
        # New bots get tokens from the new (first) token secret.
        assert capability_token(fresh.secrets.token_secrets()[0], "s") == capability_token(new_token, "s")
    finally:
        use_container(edge.container)
        ssm.put_parameter(Name=settings.webhook_secret_param, Value=old_token, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name=settings.signing_secret_param, Value=old_signing, Type="SecureString", Overwrite=True)


def test_binary_content_type_arrives_base64_and_is_decoded(edge):
    queued(edge)
    body = json.dumps(EVENT).encode()
    resp = post(edge, callback_path(edge), body, {"content-type": "application/octet-stream"})
    assert resp.status_code == 200
    (msg,) = queued(edge)
    assert json.loads(msg["body"]) == EVENT


def test_handler_decodes_base64_events_from_api_gateway(edge):
    queued(edge)
    body = json.dumps(EVENT).encode()
    event = {
        "headers": {"Content-Type": "application/json"},
        "isBase64Encoded": True,
        "body": base64.b64encode(body).decode(),
        "pathParameters": {"session_id": "sess-1", "token": capability_token(edge.webhook_secret, "sess-1")},
    }
    assert ingest.handler(event, None)["statusCode"] == 200
    assert len(queued(edge)) == 1
    event["body"] = "###not base64###"
    assert ingest.handler(event, None)["statusCode"] == 400


def test_queue_failure_answers_503_never_200(edge):
    broken = Container(
        replace(edge.container.settings, bot_events_queue_url=edge.container.settings.bot_events_queue_url + "-gone"),
        boto_session=edge.boto_session,
        endpoint_url=edge.aws_endpoint,
    )
    use_container(broken)
    try:
        resp = post(edge, callback_path(edge), json.dumps(EVENT).encode())
    finally:
        use_container(edge.container)
    assert resp.status_code == 503
    assert "could not store" in resp.json()["message"]
