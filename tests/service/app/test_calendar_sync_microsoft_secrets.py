"""A Microsoft calendar's life logs, raises and publishes no refresh token, access token, client
secret, clientState, delta link or validation token.

Subscribing (the handshake through the gateway), syncs with paging and a 410, notifications with
right and wrong clientState, lifecycle events, a renewal and a revoked grant run on the local stack
while our loggers are captured at DEBUG and every other logger at INFO.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meetpilot.app.calendar_sync import CalendarSyncConfig
from meetpilot.handlers.observability import logger as powertools_logger
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from tests.support.calendar_helpers import sync
from tests.support.log_capture import captured_text
from tests.support.microsoft import APP_SECRET, connect_microsoft, graph_stack

OWNER = "dana.private@contoso.test"


@pytest.fixture
def captured(caplog, capsys) -> Iterator:
    previous = powertools_logger.log_level
    powertools_logger.setLevel(logging.DEBUG)
    with captured_text(caplog, capsys) as text:
        yield text
    powertools_logger.setLevel(previous)


def test_a_microsoft_calendar_life_leaks_no_token_secret_or_client_state(stack_factory, captured):
    stack = stack_factory(microsoft_fake=True, quiet_logs=False)
    powertools_logger.setLevel(logging.DEBUG)
    grants = graph_stack(stack)
    fake = stack.graph
    fake.add_user(OWNER)
    fake.default_page_size = 1
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    for n in range(3):
        fake.put_event(OWNER, {"subject": f"s{n}", "start": start + timedelta(hours=n),
                               "end": start + timedelta(hours=n, minutes=30),
                               "onlineMeeting": {"joinUrl": f"https://teams.microsoft.com/l/x/{n}"}})  # fmt: skip
    cal = connect_microsoft(stack, grants, OWNER, config=CalendarSyncConfig(subscription_lifetime=timedelta(hours=2)))
    (sub,) = fake.subscriptions.values()
    links = [stack.container.repository.get_calendar(cal).sync_token]
    fake.expire_delta_links(OWNER)
    fake.put_event(OWNER, {"subject": "later", "start": start + timedelta(hours=5), "end": start + timedelta(hours=6)})
    sync(stack, cal)
    links.append(stack.container.repository.get_calendar(cal).sync_token)
    url = f"{stack.gateway.url}/calendar/microsoft/notify"
    for state in (sub["clientState"], sub["clientState"] + "x", sub["clientState"][:-2]):
        httpx.post(url, json={"value": [{"subscriptionId": sub["id"], "clientState": state}]}, timeout=10)
    fake.lifecycle(sub["id"], "missed")
    stack.drain()
    load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))
    fake.revoke_grant(OWNER, code=50173)
    fake.expire_access_tokens()
    sync(stack, cal, full=True)
    calendar = stack.container.repository.get_calendar(cal)
    assert calendar.disconnected_reason and "50173" in calendar.disconnected_reason

    text = captured()
    assert "graph notification" in text and "calendar sync" in text  # the capture sees our lines
    events = json.dumps(stack.published_events())
    assert "CalendarDisconnected" in events
    secrets = [APP_SECRET, sub["clientState"], *grants.sealed.values(), *grants.tokens.values(),
               *fake.rotated_refresh_tokens, *(link.split("$deltatoken=")[1] for link in links if link),
               *(v["token"] for v in fake.validations), "$skiptoken", "eyJ0eXAi", OWNER]  # fmt: skip
    stored = json.dumps([calendar.last_error, calendar.disconnected_reason])
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}... was logged"
        assert secret not in events and secret not in stored
