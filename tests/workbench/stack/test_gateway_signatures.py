"""The gateway's AWS_IAM check: only requests signed (SigV4, execute-api) with the stack's
credentials reach the management API; the caller lands in requestContext.authorizer.iam."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from meetpilot_dev.stack.embedded import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, REGION
from meetpilot_dev.stack.gateway import Gateway, GatewayRoute
from meetpilot_dev.stack.sigv4 import SigV4Verifier


def echo(event, context):  # the handler of the test gateway below: returns what it was given
    return {"statusCode": 200, "body": json.dumps(event["requestContext"].get("authorizer"))}


def _signed(url: str, *, secret: str = LOCAL_SECRET_KEY, body: bytes = b"", method: str = "POST", when=None) -> dict:
    request = AWSRequest(method=method, url=url, data=body, headers={"content-type": "application/json"})
    signer = SigV4Auth(Credentials(LOCAL_ACCESS_KEY, secret), "execute-api", REGION)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return dict(request.headers.items())


def test_unsigned_or_wrongly_signed_requests_get_403_and_never_reach_the_function(api_stack):
    url = f"{api_stack.gateway.url}/v1/calendars"
    body = json.dumps({"provider": "ics", "feed_url": "http://127.0.0.1:9/a.ics", "user_id": "mallory"}).encode()
    before = api_stack.container.repository.list_calendars()

    unsigned = httpx.post(url, content=body)
    assert unsigned.status_code == 403 and "signed request" in unsigned.json()["message"]
    wrong_secret = httpx.post(url, content=body, headers=_signed(url, secret="guess", body=body))
    assert wrong_secret.status_code == 403 and "does not match" in wrong_secret.json()["message"]
    tampered = httpx.post(url, content=body.replace(b"mallory", b"trudy!!"), headers=_signed(url, body=body))
    assert tampered.status_code == 403
    other_path = httpx.post(f"{api_stack.gateway.url}/v1/meetings", content=body, headers=_signed(url, body=body))
    assert other_path.status_code == 403
    stale = _signed(url, body=body, when=datetime.now(UTC) - timedelta(hours=1))
    expired = httpx.post(url, content=body, headers=stale)
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    assert "guess" not in wrong_secret.text
    assert api_stack.container.repository.list_calendars() == before

    good = httpx.post(url, content=body, headers=_signed(url, body=body))
    assert good.status_code == 201, good.text


def test_webhook_routes_stay_open_to_the_provider(api_stack):
    # MeetStream cannot sign with IAM: its routes answer on their own terms (401 here), never 403.
    answer = httpx.post(f"{api_stack.gateway.url}/webhooks/meetstream", json={"event": "bot.joining"})
    assert answer.status_code == 401


def test_the_caller_is_passed_on_like_api_gateway_does():
    gateway = Gateway(
        [GatewayRoute("GET", "/v1/echo", "tests.workbench.stack.test_gateway_signatures.echo", "Echo", "AWS_IAM")],
        iam=SigV4Verifier({LOCAL_ACCESS_KEY: LOCAL_SECRET_KEY}, region=REGION),
    )
    url = gateway.start() + "/v1/echo?b=2&a=1"
    try:
        answer = httpx.get(url, headers=_signed(url, method="GET"))
        assert answer.status_code == 200, answer.text
        iam = answer.json()["iam"]
        assert iam["accessKey"] == iam["callerId"] == LOCAL_ACCESS_KEY
        assert iam["userArn"].startswith("arn:aws:iam::") and iam["accountId"]
        assert httpx.get(url.replace("b=2", "b=3"), headers=_signed(url, method="GET")).status_code == 403
    finally:
        gateway.stop()


def test_a_gateway_refuses_routes_it_could_not_authorise():
    route = GatewayRoute("GET", "/v1/x", "tests.workbench.stack.test_gateway_signatures.echo", "Echo", "AWS_IAM")
    try:
        Gateway([route])
    except ValueError as exc:
        assert "cannot authorise" in str(exc)
    else:
        raise AssertionError("an IAM route without a verifier must not be served open")
