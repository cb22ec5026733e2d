"""The fake Microsoft Graph on its own, over HTTP: the token endpoint, delta paging and its faults,
event reads, subscriptions with their validation handshake and limits, and notifications."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from meetpilot.domain.clock import FixedClock
from meetpilot_dev.fakes.microsoft_graph import FakeMicrosoftGraph

APP, SECRET, TENANT = "app-id", "app-secret", "tenant-1"
OWNER = "ann@contoso.test"
SCOPE = "offline_access https://graph.microsoft.com/Calendars.Read"
T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def fake(clock) -> Iterator[FakeMicrosoftGraph]:
    with FakeMicrosoftGraph(clock=clock) as graph:
        graph.add_client(APP, SECRET, tenant=TENANT)
        graph.add_user(OWNER)
        yield graph


def token(fake: FakeMicrosoftGraph, refresh_token: str, **form: str) -> httpx.Response:
    body = {"client_id": APP, "client_secret": SECRET, "grant_type": "refresh_token",
            "refresh_token": refresh_token, "scope": SCOPE, **form}  # fmt: skip
    return httpx.post(f"{fake.login_base}/{TENANT}/oauth2/v2.0/token", data=body, timeout=5)


def bearer(fake: FakeMicrosoftGraph) -> dict[str, str]:
    access = token(fake, fake.grant(APP, OWNER)).json()["access_token"]
    return {"Authorization": f"Bearer {access}"}


def window(start: datetime = T0, days: int = 14) -> str:
    end = start + timedelta(days=days)
    return f"startDateTime={start.strftime('%Y-%m-%dT%H:%M:%SZ')}&endDateTime={end.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def delta(
    fake: FakeMicrosoftGraph, headers: dict[str, str], url: str | None = None, prefer: str = ""
) -> httpx.Response:
    target = url or f"{fake.graph_base}/me/calendarView/delta?{window()}"
    return httpx.get(target, headers={**headers, **({"Prefer": prefer} if prefer else {})}, timeout=5)


def round_of(
    fake: FakeMicrosoftGraph, headers: dict[str, str], url: str | None = None, prefer: str = ""
) -> tuple[list[list[dict[str, Any]]], str]:
    pages = []
    while True:
        body = delta(fake, headers, url, prefer).json()
        pages.append(body["value"])
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
            continue
        return pages, body["@odata.deltaLink"]


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- token ------------------------------------------------------------------------------------


def test_every_refresh_rotates_the_refresh_token_and_the_old_one_still_works(fake):
    first = fake.grant(APP, OWNER)
    one = token(fake, first).json()
    assert one["token_type"] == "Bearer" and one["expires_in"] == 3599 and one["refresh_token"] != first
    two = token(fake, first).json()  # the old one again: still accepted
    assert two["refresh_token"] not in (first, one["refresh_token"])
    assert token(fake, one["refresh_token"]).status_code == 200
    assert "refresh_token" not in token(fake, first, scope="https://graph.microsoft.com/Calendars.Read").json()


@pytest.mark.parametrize(("code", "error"), [(700082, "invalid_grant"), (50173, "invalid_grant"),
                                             (65001, "invalid_grant"), (50076, "interaction_required")])  # fmt: skip
def test_a_revoked_grant_answers_its_aadsts_code(fake, code, error):
    refresh = fake.grant(APP, OWNER)
    fake.revoke_grant(OWNER, code=code)
    answer = token(fake, refresh)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")


def test_bad_client_credentials_and_throttling(fake):
    refresh = fake.grant(APP, OWNER)
    assert token(fake, refresh, client_secret="wrong").json()["error_codes"] == [7000215]
    fake.expire_client_secret(APP)
    expired = token(fake, refresh)
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_client"
    assert expired.json()["error_codes"] == [7000222]
    fake.add_client(APP, SECRET, tenant=TENANT)
    fake.fail_token_next(429, retry_after=7)
    throttled = token(fake, refresh)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert token(fake, refresh).status_code == 200


def test_client_credentials_give_no_refresh_token(fake):
    body = {"client_id": APP, "client_secret": SECRET, "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default"}  # fmt: skip
    answer = httpx.post(f"{fake.login_base}/{TENANT}/oauth2/v2.0/token", data=body, timeout=5).json()
    assert "access_token" in answer and "refresh_token" not in answer


# --- delta ------------------------------------------------------------------------------------


def test_delta_needs_a_window_and_a_token(fake):
    headers = bearer(fake)
    assert httpx.get(f"{fake.graph_base}/me/calendarView/delta", timeout=5).status_code == 401
    missing = httpx.get(f"{fake.graph_base}/me/calendarView/delta", headers=headers, timeout=5)
    assert missing.status_code == 400 and "StartDateTime and EndDateTime" in missing.json()["error"]["message"]


def test_delta_pages_by_maxpagesize_with_opaque_absolute_links_and_empty_pages(fake):
    headers = bearer(fake)
    for n in range(5):
        fake.put_event(OWNER, {"subject": f"m{n}", "start": at(n + 1), "end": at(n + 1.5)})
    fake.empty_pages = True
    pages, link = round_of(fake, headers, prefer='outlook.timezone="UTC", odata.maxpagesize=2')
    assert [len(p) for p in pages] == [2, 0, 2, 0, 1]
    assert [e["subject"] for p in pages for e in p] == [f"m{n}" for n in range(5)]
    assert link.startswith(f"{fake.graph_base}/me/calendarView/delta?$deltatoken=") and "startDateTime" not in link

    fake.put_event(OWNER, {"subject": "new", "start": at(20), "end": at(21)})
    fake.put_event(OWNER, {"subject": "far", "start": at(24 * 30), "end": at(24 * 30 + 1)})  # outside the window
    later, _ = round_of(fake, headers, link)
    items = [e for p in later for e in p]
    assert items[0]["subject"] == "new" and items[1]["@removed"] == {"reason": "deleted"}


def test_occurrences_come_back_bare_and_a_deleted_one_leaves_no_trace(fake):
    headers = bearer(fake)
    starts = [at(24 * d + 2) for d in range(3)]
    master, occurrences = fake.put_series(OWNER, {"subject": "Weekly", "onlineMeeting": {"joinUrl": "x"}}, starts)
    pages, link = round_of(fake, headers)
    items = [e for p in pages for e in p]
    assert [e["id"] for e in items] == [o["id"] for o in occurrences]
    assert all("subject" not in e and e["seriesMasterId"] == master["id"] for e in items)
    full = httpx.get(f"{fake.graph_base}/me/events/{items[0]['id']}", headers=headers, timeout=5).json()
    assert full["subject"] == "Weekly" and full["start"] == items[0]["start"]

    fake.delete_event(OWNER, occurrences[1]["id"])
    pages, _ = round_of(fake, headers, link)
    assert [e["id"] for p in pages for e in p] == [occurrences[0]["id"], occurrences[2]["id"]]
    gone = httpx.get(f"{fake.graph_base}/me/events/{occurrences[1]['id']}", headers=headers, timeout=5)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ErrorItemNotFound"


def test_replays_and_expired_links(fake):
    headers = bearer(fake)
    fake.put_event(OWNER, {"subject": "a", "start": at(1), "end": at(2)})
    fake.replay_items = True
    pages, link = round_of(fake, headers)
    assert [e["subject"] for p in pages for e in p] == ["a", "a"]
    fake.expire_delta_links(OWNER)
    stale = delta(fake, headers, link)
    assert stale.status_code == 410 and stale.json()["error"]["code"] == "SyncStateNotFound"


def test_a_mailbox_answers_at_most_four_requests_at_once(fake):
    headers = bearer(fake)
    with fake._lock:
        fake._in_flight[OWNER] = 4  # four requests of the mailbox in progress
    throttled = delta(fake, headers)
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "ApplicationThrottled"
    with fake._lock:
        fake._in_flight[OWNER] = 0
    assert delta(fake, headers).status_code == 200


# --- subscriptions ----------------------------------------------------------------------------


class Receiver:
    """A notification endpoint: answers the handshake (or not), records every POST."""

    def __init__(self, *, echo: str = "decoded") -> None:
        self.echo = echo
        self.delay = 0.0
        self.posts: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((self.path, body))
                time.sleep(receiver.delay)
                query = dict(parse_qsl(urlsplit(self.path).query))
                if "validationToken" in query:
                    raw = urlsplit(self.path).query.split("validationToken=", 1)[1]
                    answer = {"decoded": query["validationToken"], "encoded": raw, "none": ""}[receiver.echo]
                    payload, status = answer.encode(), 200
                else:
                    payload, status = b"", 202
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def subscribe(fake, headers, receiver, minutes: float = 60 * 24, state: str = "s" * 40) -> httpx.Response:
    body = {"changeType": "created,updated,deleted", "notificationUrl": f"{receiver.url}/notify?c=1",
            "lifecycleNotificationUrl": f"{receiver.url}/lifecycle", "resource": "me/events",
            "expirationDateTime": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "clientState": state}  # fmt: skip
    return httpx.post(f"{fake.graph_base}/subscriptions", json=body, headers=headers, timeout=15)


def test_creating_a_subscription_validates_both_urls_first(fake, receiver):
    headers = bearer(fake)
    created = subscribe(fake, headers, receiver)
    assert created.status_code == 201
    sub = created.json()
    assert sub["clientState"] == "s" * 40 and sub["resource"] == "me/events"
    paths = [path for path, _ in receiver.posts]
    assert (
        paths[0].startswith("/notify?c=1&validationToken=Validation%3A") and "/lifecycle?validationToken=" in paths[1]
    )

    for echo in ("encoded", "none"):
        receiver.echo = echo
        refused = subscribe(fake, headers, receiver)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "ValidationError"
    assert list(fake.subscriptions) == [sub["id"]]


def test_a_slow_handshake_times_out_and_creates_nothing(fake, receiver):
    fake.validation_timeout = 0.2
    receiver.delay = 1.0  # a cold start slower than Graph waits
    refused = subscribe(fake, bearer(fake), receiver)
    assert refused.status_code == 400 and "timed out" in refused.json()["error"]["message"]
    assert fake.subscriptions == {}


def test_subscription_lifetimes_are_capped_and_floored_and_expire_on_the_clock(fake, receiver, clock):
    headers = bearer(fake)
    too_long = subscribe(fake, headers, receiver, minutes=10071)
    assert too_long.status_code == 400 and "10070 minutes" in too_long.json()["error"]["message"]
    short = subscribe(fake, headers, receiver, minutes=5).json()
    assert short["expirationDateTime"].startswith((T0 + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M"))
    url = f"{fake.graph_base}/subscriptions/{short['id']}"
    later = (T0 + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert httpx.patch(url, json={"expirationDateTime": later}, headers=headers, timeout=5).status_code == 200
    assert httpx.post(f"{url}/reauthorize", headers=headers, timeout=5).status_code == 200
    assert [
        s["id"] for s in httpx.get(f"{fake.graph_base}/subscriptions", headers=headers, timeout=5).json()["value"]
    ] == [short["id"]]
    clock.advance(3 * 86400)
    headers = bearer(fake)  # the old access token expired with the clock too
    assert httpx.patch(url, json={"expirationDateTime": later}, headers=headers, timeout=5).status_code == 404
    assert httpx.delete(url, headers=headers, timeout=5).status_code == 404


def test_notifications_are_batched_and_lifecycle_events_pause_and_remove(fake, receiver):
    headers = bearer(fake)
    sub = subscribe(fake, headers, receiver).json()
    receiver.posts.clear()
    fake.put_event(OWNER, {"subject": "a", "start": at(1), "end": at(2)})
    assert fake.deliver(OWNER) == [202]
    ((path, body),) = receiver.posts
    value = httpx.Response(200, content=body).json()["value"]
    assert path == "/notify?c=1" and [n["changeType"] for n in value] == ["created", "updated"]
    assert {n["clientState"] for n in value} == {"s" * 40} and {n["subscriptionId"] for n in value} == {sub["id"]}

    fake.wrong_client_state = True
    fake.put_event(OWNER, {"subject": "b", "start": at(3), "end": at(4)})
    fake.deliver(OWNER)
    assert "not-the-client-state" in receiver.posts[-1][1].decode()
    fake.wrong_client_state = False

    assert fake.lifecycle(sub["id"], "reauthorizationRequired") == 202
    assert receiver.posts[-1][0] == "/lifecycle" and b"reauthorizationRequired" in receiver.posts[-1][1]
    fake.put_event(OWNER, {"subject": "c", "start": at(5), "end": at(6)})
    count = len(receiver.posts)
    assert fake.deliver(OWNER) == []  # paused: these changes are lost to the subscription
    assert len(receiver.posts) == count
    assert fake.lifecycle(sub["id"], "subscriptionRemoved") == 202
    assert fake.subscriptions == {}
