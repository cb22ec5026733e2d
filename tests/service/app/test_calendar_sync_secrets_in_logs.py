"""Calendar secrets never reach a log line: not an ICS feed's address, not a push channel's token, not
a Google client secret, refresh token (the user's, a rotated one, or its sealed form) or access token.

A whole calendar life runs on the local stack (registration, syncs, a feed that fails, pushes with
right and wrong tokens, a channel renewal, removal) while our loggers are captured at DEBUG (through
Powertools' JSON on stdout and the logging tree) and every other logger at INFO, Lambda's level.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest

from meetpilot.app.calendars import remove_calendar
from meetpilot.domain.calendar import CalendarKind
from meetpilot.handlers.observability import logger as powertools_logger
from meetpilot_dev.fakes.feeds import FeedServer
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from tests.support.calendar_helpers import Ev, connect_google, ics, register_ics, sync
from tests.support.log_capture import captured_text

REFRESH_TOKEN = "1//0refresh-token-for-the-log-test"
OWNER = "alice@acme.test"


@pytest.fixture
def captured(caplog, capsys) -> Iterator:
    previous = powertools_logger.log_level
    powertools_logger.setLevel(logging.DEBUG)
    with captured_text(caplog, capsys) as text:
        yield text
    powertools_logger.setLevel(previous)


def test_a_calendar_life_logs_no_feed_address_token_or_credential(stack_factory, captured):
    stack = stack_factory(google_fake=True)
    client = stack.oauth_clients[CalendarKind.GOOGLE]
    stack.google.add_client(client.client_id, client.client_secret, REFRESH_TOKEN)
    stack.google.add_calendar(OWNER)
    stack.google.rotate_refresh_tokens = True  # rotated tokens must stay out of the logs too
    c = stack.container
    with FeedServer() as feeds:
        url = feeds.publish(
            "bob", ics([Ev("m1", c.clock.now().replace(microsecond=0), url="https://zoom.us/j/123456789")])
        )
        ics_calendar = register_ics(stack, "bob", url)
        feeds.publish("bob", "<html>sign in</html>")
        sync(stack, ics_calendar)
        feeds.fail("bob", 404)
        sync(stack, ics_calendar)

        google = connect_google(stack, "alice", REFRESH_TOKEN, calendar=OWNER, ttl_seconds=3600)
        (channel,) = stack.google.channels
        base = {"X-Goog-Channel-ID": channel["id"], "X-Goog-Resource-State": "exists"}
        for token in (channel["token"], channel["token"] + "x", channel["token"][:-2]):
            httpx.post(f"{stack.gateway.url}/calendar/google", headers={**base, "X-Goog-Channel-Token": token})
        stack.drain()
        load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))
        stack.google.expire_access_tokens()
        sync(stack, google)
        remove_calendar(google, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)
        remove_calendar(ics_calendar, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)

    text = captured()
    assert "calendar sync" in text and "google push" in text  # the capture sees our lines
    secret_path = url.split("/", 3)[3]
    tokens = [ch["token"] for ch in stack.google.channels]
    assert len(tokens) == 2
    rotated = stack.google.refresh_tokens(client.client_id)
    assert rotated and REFRESH_TOKEN not in rotated  # the grant was rotated at least once
    sealed = [cal.sealed_refresh_token for cal in c.repository.list_calendars() if cal.sealed_refresh_token]
    for secret in [secret_path, client.client_secret, REFRESH_TOKEN, *rotated, *tokens]:
        assert secret not in text
    assert "ya29.fake-" not in text and "1//0fake-rotated-" not in text  # access and rotated refresh tokens
    assert "kms1:" not in text and not any(s in text for s in sealed)  # nor the sealed tokens


# Wire logs of the AWS SDK at DEBUG print whole request bodies (the table's items included): they
# must never run at DEBUG in production, so they are left out. So is the fake Google server's own
# access log, which is Google's side of the wire.
_NOT_THE_SYNC_WORKER = ("botocore", "boto3", "urllib3", "meetpilot_dev.fakes.google_calendar")


def test_the_google_sync_workers_http_client_logs_no_email_or_sync_token(stack_factory, caplog, capsys):
    stack = stack_factory(google_fake=True)
    owner = "carol.private@acme.test"
    client = stack.oauth_clients[CalendarKind.GOOGLE]
    stack.google.add_client(client.client_id, client.client_secret, REFRESH_TOKEN)
    stack.google.add_calendar(owner)
    stack.google.page_size = 2  # a full sync of five events takes three pages, two page tokens
    c = stack.container
    soon = c.clock.now().replace(microsecond=0)

    def put(n: int) -> None:
        start = soon + timedelta(hours=n + 1)
        stack.google.put_event(
            owner,
            {
                "summary": f"sync {n}",
                "location": f"https://zoom.us/j/55512340{n:02d}",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
            },
        )

    for n in range(5):
        put(n)
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    calendar_id = connect_google(stack, "carol", REFRESH_TOKEN, calendar=owner, ttl_seconds=3600)
    first_token = c.repository.get_calendar(calendar_id).sync_token
    put(5)
    sync(stack, calendar_id)  # incremental: sends the sync token
    second_token = c.repository.get_calendar(calendar_id).sync_token
    assert first_token and second_token and first_token != second_token

    records = [r for r in caplog.records if not r.name.startswith(_NOT_THE_SYNC_WORKER)]
    out = capsys.readouterr()
    text = "\n".join([*(f"{r.name} {r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in records),
                      out.out, out.err])  # fmt: skip
    google_host = httpx.URL(stack.google.api_base).netloc.decode()
    lines = [r.getMessage() for r in records if r.name == "httpx" and google_host in r.getMessage()]
    assert any("/events?" in line for line in lines), "the capture saw no Calendar request line"
    for secret in (owner, quote(owner, safe=""), quote(owner), first_token, second_token, "syncToken=", "pageToken="):
        assert secret not in text, f"{secret!r} was logged"
