"""A Zoom passcode goes to the bot provider and nowhere else: not into a meeting's key or id, an API
path, a DynamoDB key, a published event, a log line or what the dashboard shows.

One meeting with a ``pwd`` runs through the whole local pipeline (submitted through the management
API, dispatched, followed by webhooks, its transcript stored) while logs are captured as Lambda
would emit them: meetpilot's loggers at DEBUG, every other logger at INFO.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.domain.clock import to_iso
from meetpilot.domain.status import Outcome
from meetpilot_dev.client import ManagementClient
from meetpilot_dev.dashboard import DashboardServer
from meetpilot_dev.stack.embedded import LocalStack
from tests.support.log_capture import captured_text
from tests.support.stacks import run_until

PASSCODE = "Zq7Pa55c0deW1x"
LINK = f"https://acme.zoom.us/j/85559876543?pwd={PASSCODE}"


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    with captured_text(caplog, capsys) as text:
        yield text


def _table_keys(stack: LocalStack) -> list[str]:
    """Every key attribute (table and index keys) of every item in the table."""
    assert stack.container is not None
    dynamodb = stack.container.client("dynamodb")
    table = stack.container.settings.table_name
    described = dynamodb.describe_table(TableName=table)["Table"]
    names = {k["AttributeName"] for k in described["KeySchema"]}
    for index in described.get("GlobalSecondaryIndexes", []):
        names |= {k["AttributeName"] for k in index["KeySchema"]}
    values = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            values += [json.dumps(item[name]) for name in names if name in item]
    return values


def test_a_zoom_passcode_reaches_only_the_provider(
    stack_factory: Callable[..., LocalStack], captured: Callable[[], str]
) -> None:
    stack = stack_factory(quiet_logs=False)
    logging.getLogger("meetpilot").setLevel(logging.DEBUG)  # quiet or not, the stack sets a level
    assert stack.gateway is not None and stack.container is not None
    api = ManagementClient.for_dev({"gateway": stack.gateway.url, "environment": stack.environment()})
    paths: list[str] = []
    api._http.event_hooks["request"].append(lambda request: paths.append(request.url.raw_path.decode()))

    start = datetime.now(UTC) + timedelta(seconds=2)
    _, created = api.post("/v1/meetings", {"meeting_url": LINK, "start": to_iso(start), "user_id": "alice"})
    key = created["meeting_key"]

    def stored() -> bool:
        session = stack.session_for(key)
        return session is not None and session.outcome is not None

    assert run_until(stack, stored, 60), stack.session_for(key)
    session = stack.session_for(key)
    assert session.outcome is Outcome.TRANSCRIPT_STORED, session.outcome_reason
    # The provider got the link it needs to join, passcode included.
    [bot] = [b for b in stack.simulator.bots() if b["bot_id"] == session.bot_id]
    assert bot["meeting_link"] == LINK

    # Everything a user, an operator or a consumer reads back.
    meeting = api.get(f"/v1/meetings/{created['meeting_id']}")
    listed = api.get("/v1/sessions", params={"user_id": "alice"})
    detail = api.get(f"/v1/sessions/{session.session_id}")
    transcript = api.get(f"/v1/transcripts/{session.session_id}", params={"format": "txt"})
    dashboard = DashboardServer(api)
    shown = [
        dashboard.route("/api/sessions", {"user_id": ["alice"]})[2].decode(),
        dashboard.route(f"/api/sessions/{session.session_id}", {})[2].decode(),
    ]
    assert meeting["meeting_url"] == "https://acme.zoom.us/j/85559876543"
    events = stack.published_events()
    assert any(e["detail-type"] == "TranscriptReady" for e in events)
    s3 = stack.container.client("s3")
    objects = s3.list_objects_v2(Bucket=stack.container.settings.transcript_bucket).get("Contents", [])

    places = {
        "the meeting key": [key, meeting["meeting_key"]],
        "an id": [created["meeting_id"], session.session_id, session.bot_id or "", meeting["meeting_id"]],
        "an API path": paths,
        "an API answer": [json.dumps(x) for x in (created, meeting, listed, detail, transcript)],
        "the dashboard": shown,
        "a DynamoDB key": _table_keys(stack),
        "an S3 key": [o["Key"] for o in objects],
        "a published event": [json.dumps(e) for e in events],
        "a log line": captured().splitlines(),
    }
    assert paths and events and objects
    for place, texts in places.items():
        leaked = [t for t in texts if PASSCODE in t]
        assert not leaked, f"the passcode appears in {place}: {leaked[:3]}"
    api.close()
