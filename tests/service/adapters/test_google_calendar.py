"""Google Calendar client against the local fake of the Calendar API, over real HTTP on loopback."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from meetpilot.adapters.google_calendar import (
    GoogleCalendarClient,
    GoogleCredentials,
    SyncResult,
    WatchChannel,
    parse_google_event,
    resource_state,
    verify_channel,
)
from meetpilot.domain.calendar import AccessRevoked, CalendarEvent, CalendarSourceError, SyncTokenExpired
from meetpilot.domain.clock import FixedClock
from meetpilot_dev.fakes.google_calendar import FakeGoogleCalendar

CLIENT_ID = "1234-abc.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-very-secret-client-secret"
REFRESH_TOKEN = "1//0refresh-token-that-must-never-leak"
CALENDAR = "owner@example.com"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fake() -> Iterator[FakeGoogleCalendar]:
    server = FakeGoogleCalendar()
    server.start()
    server.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    yield server
    server.stop()


def make_client(fake: FakeGoogleCalendar, **overrides) -> GoogleCalendarClient:
    credentials = overrides.pop("credentials", GoogleCredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN))
    options = {"api_base": fake.api_base, "token_uri": fake.token_uri, "owner_email": CALENDAR, **overrides}
    return GoogleCalendarClient(credentials, **options)


@pytest.fixture
def client(fake: FakeGoogleCalendar) -> Iterator[GoogleCalendarClient]:
    google = make_client(fake)
    yield google
    google.close()


def timed(start: datetime, minutes: int = 30, **fields) -> dict:
    return {
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": "UTC"},
        **fields,
    }


def meet(code: str) -> dict:
    return {
        "hangoutLink": f"https://meet.google.com/{code}",
        "conferenceData": {
            "entryPoints": [{"entryPointType": "video", "uri": f"https://meet.google.com/{code}", "label": code}],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        },
    }


def by_id(result: SyncResult) -> dict[str, CalendarEvent]:
    return {e.event_id: e for e in result.events}


# --- full sync --------------------------------------------------------------------------------


def test_full_sync_follows_every_page_and_returns_the_token_from_the_last(fake, client):
    fake.page_size = 2
    created = [
        fake.put_event(CALENDAR, timed(NOW + timedelta(hours=i), summary=f"Meeting {i}", **meet("abc-defg-hij")))
        for i in range(5)
    ]
    result = client.sync("cal-1", CALENDAR, None)
    assert result.full_sync
    assert [e.event_id for e in result.events] == [e["id"] for e in created]
    assert all(
        e.calendar_id == "cal-1" and e.meeting_url == "https://meet.google.com/abc-defg-hij" for e in result.events
    )
    lists = [target for method, target in fake.requests if "/events" in target]
    assert len(lists) == 3 and all("singleEvents=true" in t for t in lists)
    assert "pageToken" not in lists[0] and all("pageToken=" in t for t in lists[1:])
    assert result.next_sync_token
    # The token covers everything listed: an incremental sync right after has nothing new.
    assert client.sync("cal-1", CALENDAR, result.next_sync_token).events == []


def test_only_the_last_page_carries_a_sync_token(fake, client):
    fake.page_size = 2
    for i in range(3):
        fake.put_event(CALENDAR, timed(NOW + timedelta(hours=i)))
    client.sync("cal-1", CALENDAR, None)  # gets an access token
    token = client._oauth.token
    with httpx.Client(base_url=fake.api_base, headers={"Authorization": f"Bearer {token}"}) as raw:
        first = raw.get(f"/calendars/{CALENDAR}/events", params={"singleEvents": "true"}).json()
        assert "nextPageToken" in first and "nextSyncToken" not in first
        last = raw.get(
            f"/calendars/{CALENDAR}/events", params={"singleEvents": "true", "pageToken": first["nextPageToken"]}
        ).json()
        assert "nextPageToken" not in last and "nextSyncToken" in last


def test_full_sync_starts_an_hour_back_by_default(fake):
    fake.put_event(CALENDAR, timed(NOW - timedelta(hours=3), minutes=60, summary="ended two hours ago"))
    fake.put_event(CALENDAR, timed(NOW - timedelta(minutes=50), minutes=30, summary="ended twenty minutes ago"))
    fake.put_event(CALENDAR, timed(NOW - timedelta(minutes=30), minutes=60, summary="running now"))
    google = make_client(fake, clock=FixedClock(NOW))
    titles = [e.title for e in google.sync("cal-1", CALENDAR, None).events]
    assert titles == ["ended twenty minutes ago", "running now"]
    explicit = google.sync("cal-1", CALENDAR, None, time_min=NOW - timedelta(days=1))
    assert len(explicit.events) == 3


def test_full_sync_leaves_out_cancelled_events(fake, client):
    kept = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=1)))
    gone = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=2)))
    fake.cancel_event(CALENDAR, gone["id"])
    assert [e.event_id for e in client.sync("cal-1", CALENDAR, None).events] == [kept["id"]]


# --- incremental sync -------------------------------------------------------------------------


def test_incremental_sync_returns_an_edited_event_with_its_new_time(fake, client):
    event = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=2), summary="Planning", **meet("abc-defg-hij")))
    fake.put_event(CALENDAR, timed(NOW + timedelta(hours=3), summary="Untouched"))
    first = client.sync("cal-1", CALENDAR, None)
    moved = fake.put_event(CALENDAR, {**event, **timed(NOW + timedelta(hours=3))})
    second = client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert not second.full_sync
    assert [e.event_id for e in second.events] == [event["id"]]
    assert second.events[0].start == NOW + timedelta(hours=3)
    assert second.events[0].updated is not None and second.events[0].updated >= first.events[0].updated
    assert moved["etag"] != event["etag"]
    assert second.next_sync_token != first.next_sync_token
    incremental = [t for _, t in fake.requests if "syncToken=" in t]
    assert incremental and all("timeMin" not in t for t in incremental)


def test_incremental_sync_reports_a_cancellation(fake, client):
    event = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=2), summary="Doomed", **meet("abc-defg-hij")))
    first = client.sync("cal-1", CALENDAR, None)
    fake.cancel_event(CALENDAR, event["id"])
    (cancelled,) = client.sync("cal-1", CALENDAR, first.next_sync_token).events
    assert cancelled.event_id == event["id"] and cancelled.cancelled and not cancelled.wants_bot
    # Google lists a deleted event with little more than its id.
    assert cancelled.title == "" and cancelled.start is None and cancelled.meeting_url is None


def test_recurring_instances_moved_and_cancelled(fake, client):
    starts = [NOW + timedelta(days=d, hours=1) for d in (1, 8, 15)]
    instances = fake.put_series(CALENDAR, "weekly0series", {"summary": "Weekly", **meet("wkl-ysyn-cxx")}, starts)
    first = client.sync("cal-1", CALENDAR, None)
    assert [e.recurring_event_id for e in first.events] == ["weekly0series"] * 3
    assert instances[0]["id"] == "weekly0series_" + starts[0].strftime("%Y%m%dT%H%M%SZ")

    fake.put_event(CALENDAR, {**instances[1], **timed(starts[1] + timedelta(hours=1))})  # moved by an hour
    fake.cancel_event(CALENDAR, instances[2]["id"])  # one occurrence removed
    changes = by_id(client.sync("cal-1", CALENDAR, first.next_sync_token))
    assert set(changes) == {instances[1]["id"], instances[2]["id"]}
    moved = changes[instances[1]["id"]]
    assert moved.start == starts[1] + timedelta(hours=1) and moved.wants_bot
    assert moved.recurring_event_id == "weekly0series"
    removed = changes[instances[2]["id"]]
    assert removed.cancelled and removed.recurring_event_id == "weekly0series"
    assert removed.start == starts[2]  # the original start stands in for the missing one


def test_deleting_a_series_cancels_every_instance(fake, client):
    starts = [NOW + timedelta(days=d) for d in (1, 2)]
    fake.put_series(CALENDAR, "series1", {"summary": "Daily"}, starts)
    first = client.sync("cal-1", CALENDAR, None)
    fake.cancel_event(CALENDAR, "series1")
    changes = client.sync("cal-1", CALENDAR, first.next_sync_token).events
    assert len(changes) == 2 and all(e.cancelled and e.recurring_event_id == "series1" for e in changes)


def test_incremental_sync_pages_too(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    first = client.sync("cal-1", CALENDAR, None)
    fake.page_size = 2
    for i in range(5):
        fake.put_event(CALENDAR, timed(NOW + timedelta(hours=i + 1)))
    second = client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert len(second.events) == 5
    assert sum("syncToken=" in t for _, t in fake.requests) == 3


def test_changes_made_while_paging_arrive_with_the_next_sync(fake, client):
    fake.page_size = 1
    for i in range(2):
        fake.put_event(CALENDAR, timed(NOW + timedelta(hours=i + 1)))
    original_handle = fake.handle
    edits: list[dict] = []

    def handle_and_edit(method, target, headers, body):
        reply = original_handle(method, target, headers, body)
        if "pageToken" not in target and "/events" in target and not edits:
            edits.append(fake.put_event(CALENDAR, timed(NOW + timedelta(hours=9), summary="added mid-sync")))
        return reply

    fake.handle = handle_and_edit
    first = client.sync("cal-1", CALENDAR, None)
    assert "added mid-sync" not in [e.title for e in first.events]
    later = client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert [e.title for e in later.events] == ["added mid-sync"]


def test_expired_sync_token_raises_and_a_full_sync_loses_nothing(fake, client):
    kept = [fake.put_event(CALENDAR, timed(NOW + timedelta(hours=i + 1))) for i in range(3)]
    first = client.sync("cal-1", CALENDAR, None)
    fake.put_event(CALENDAR, timed(NOW + timedelta(hours=8), summary="added while the token expired"))
    fake.expire_sync_tokens(CALENDAR)
    with pytest.raises(SyncTokenExpired) as caught:
        client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert isinstance(caught.value, CalendarSourceError) and caught.value.status == 410
    again = client.sync("cal-1", CALENDAR, None)
    assert again.full_sync and len(again.events) == 4
    assert {e["id"] for e in kept} < {e.event_id for e in again.events}
    assert client.sync("cal-1", CALENDAR, again.next_sync_token).events == []


def test_a_damaged_sync_token_also_asks_for_a_full_sync(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    with pytest.raises(SyncTokenExpired, match="invalid"):
        client.sync("cal-1", CALENDAR, "not-a-token-google-ever-issued")


def test_the_fake_refuses_a_sync_token_combined_with_time_min(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    first = client.sync("cal-1", CALENDAR, None)
    token = client._oauth.token
    answer = httpx.get(
        f"{fake.api_base}/calendars/{CALENDAR}/events",
        params={"syncToken": first.next_sync_token, "timeMin": "2026-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400


# --- tokens -----------------------------------------------------------------------------------


def test_access_token_is_fetched_once_and_reused(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    first = client.sync("cal-1", CALENDAR, None)
    client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert fake.token_requests == 1 and fake.unauthorised_requests == 0


def test_a_401_refreshes_the_token_once_and_retries(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    first = client.sync("cal-1", CALENDAR, None)
    fake.expire_access_tokens()  # revoked early, although google-auth still thinks it is valid
    client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert fake.unauthorised_requests == 1 and fake.token_requests == 2


def test_an_expired_token_is_refreshed_before_the_call(fake):
    # Tokens that expire within google-auth's refresh margin count as expired: no 401 round trip.
    fake.token_lifetime_seconds = 60
    fake.put_event(CALENDAR, timed(NOW))
    google = make_client(fake)
    first = google.sync("cal-1", CALENDAR, None)
    google.sync("cal-1", CALENDAR, first.next_sync_token)
    assert fake.token_requests == 2 and fake.unauthorised_requests == 0


def test_a_token_rejected_twice_is_an_error(fake):
    fake.token_lifetime_seconds = 0  # every issued token is already dead at the API
    fake.put_event(CALENDAR, timed(NOW))
    with pytest.raises(CalendarSourceError, match="rejected the access token") as caught:
        make_client(fake).sync("cal-1", CALENDAR, None)
    assert caught.value.status == 401 and fake.unauthorised_requests == 2


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        (GoogleCredentials(CLIENT_ID, CLIENT_SECRET, "1//0some-other-refresh-token"), "invalid_grant"),
        (GoogleCredentials(CLIENT_ID, "GOCSPX-wrong-secret", REFRESH_TOKEN), "invalid_client"),
        (GoogleCredentials("unknown.apps.googleusercontent.com", CLIENT_SECRET, REFRESH_TOKEN), "invalid_client"),
    ],
)
def test_refused_credentials_raise_without_secrets(fake, credentials, reason):
    fake.put_event(CALENDAR, timed(NOW))
    with pytest.raises(CalendarSourceError, match=reason) as caught:
        make_client(fake, credentials=credentials).sync("cal-1", CALENDAR, None)
    assert not caught.value.retryable
    _assert_no_secrets(caught.value, credentials)


@pytest.mark.parametrize("error", ["invalid_grant", "unauthorized_client"])
def test_a_revoked_grant_raises_access_revoked_asking_to_reconnect(fake, client, error):
    fake.put_event(CALENDAR, timed(NOW))
    first = client.sync("cal-1", CALENDAR, None)
    fake.revoke_refresh_token(REFRESH_TOKEN, error=error)
    fake.expire_access_tokens()
    with pytest.raises(AccessRevoked, match="reconnect the calendar") as caught:
        client.sync("cal-1", CALENDAR, first.next_sync_token)
    assert error in str(caught.value) and "\n" not in str(caught.value) and not caught.value.retryable
    _assert_no_secrets(caught.value, GoogleCredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN))


def test_a_wrong_client_secret_is_not_taken_for_a_revoked_grant(fake):
    credentials = GoogleCredentials(CLIENT_ID, "GOCSPX-wrong-secret", REFRESH_TOKEN)
    with pytest.raises(CalendarSourceError, match="OAuth client") as caught:
        make_client(fake, credentials=credentials).sync("cal-1", CALENDAR, None)
    assert not isinstance(caught.value, AccessRevoked)


def test_a_refresh_token_google_rotates_is_handed_over_at_once(fake):
    fake.rotate_refresh_tokens = True
    fake.put_event(CALENDAR, timed(NOW))
    rotated: list[str] = []
    google = make_client(fake, on_rotated=rotated.append)
    google.sync("cal-1", CALENDAR, None)
    assert len(rotated) == 1 and rotated[0] != REFRESH_TOKEN
    assert fake.refresh_tokens(CLIENT_ID) == {rotated[0]}  # the old one stopped working
    fake.expire_access_tokens()
    google.sync("cal-1", CALENDAR, None)  # refreshes with the new token
    assert len(rotated) == 2 and fake.refresh_tokens(CLIENT_ID) == {rotated[1]}
    google.close()


def test_no_rotation_hands_nothing_over(fake):
    fake.put_event(CALENDAR, timed(NOW))
    rotated: list[str] = []
    google = make_client(fake, on_rotated=rotated.append)
    google.sync("cal-1", CALENDAR, None)
    assert rotated == [] and fake.refresh_tokens(CLIENT_ID) == {REFRESH_TOKEN}
    google.close()


def test_unreachable_token_endpoint_is_retryable(fake):
    google = make_client(fake, token_uri="http://127.0.0.1:9/token")
    with pytest.raises(CalendarSourceError, match="token endpoint") as caught:
        google.sync("cal-1", CALENDAR, None)
    assert caught.value.retryable
    _assert_no_secrets(caught.value, GoogleCredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN))


def _assert_no_secrets(error: BaseException, credentials: GoogleCredentials) -> None:
    text = str(error) + "".join(traceback.format_exception(error))
    for secret in (credentials.client_secret, credentials.refresh_token, CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in text


def test_secrets_never_show_in_reprs():
    credentials = GoogleCredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert CLIENT_SECRET not in text and REFRESH_TOKEN not in text
        assert CLIENT_ID in text
    channel = WatchChannel("chan-1", "res-1", NOW, token="channel-token-secret")
    assert "channel-token-secret" not in repr(channel)
    client = GoogleCalendarClient(credentials, api_base="http://127.0.0.1:9/calendar/v3")
    assert CLIENT_SECRET not in repr(client) and REFRESH_TOKEN not in repr(client)


# --- API errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (403, True), (400, False)])
def test_api_errors_say_whether_to_retry(fake, client, status, retryable):
    fake.put_event(CALENDAR, timed(NOW))
    fake.fail_next(status)
    with pytest.raises(CalendarSourceError) as caught:
        client.sync("cal-1", CALENDAR, None)
    assert caught.value.status == status and caught.value.retryable is retryable
    assert str(status) in str(caught.value) or "rate-limited" in str(caught.value)
    assert client.sync("cal-1", CALENDAR, None).events  # the next try works


def test_an_unknown_calendar_is_not_retryable(fake, client):
    with pytest.raises(CalendarSourceError, match="no such calendar") as caught:
        client.sync("cal-1", "nobody@example.com", None)
    assert caught.value.status == 404 and not caught.value.retryable


def test_unreachable_api_is_retryable(fake):
    google = make_client(fake, api_base="http://127.0.0.1:9/calendar/v3")
    with pytest.raises(CalendarSourceError, match="could not reach Google Calendar") as caught:
        google.sync("cal-1", CALENDAR, None)
    assert caught.value.retryable


def test_calendar_ids_are_escaped_in_the_path(fake, client):
    group = "c_0123456789abcdef@group.calendar.google.com"
    fake.put_event(group, timed(NOW, summary="Team calendar"))
    assert [e.title for e in client.sync("cal-2", group, None).events] == ["Team calendar"]
    assert any("c_0123456789abcdef%40group.calendar.google.com" in t for _, t in fake.requests)


# --- push channels ----------------------------------------------------------------------------


def test_watch_and_stop_are_recorded_by_the_fake(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    before = datetime.now(UTC)
    channel = client.watch(
        CALENDAR,
        channel_id="meetpilot-chan-1",
        token="chan-token",
        address="https://hooks.example/calendar/google",
        ttl_seconds=3600,
    )
    assert channel.channel_id == "meetpilot-chan-1" and channel.token == "chan-token" and channel.resource_id
    assert before + timedelta(seconds=3590) <= channel.expiration <= datetime.now(UTC) + timedelta(seconds=3610)
    (recorded,) = fake.channels
    assert recorded["id"] == "meetpilot-chan-1" and recorded["token"] == "chan-token"
    assert (
        recorded["address"] == "https://hooks.example/calendar/google" and recorded["resourceId"] == channel.resource_id
    )
    assert not recorded["stopped"]
    client.stop(channel)
    assert recorded["stopped"]
    client.stop(channel)  # stopping twice (or an expired channel) is not an error


def test_watch_with_a_reused_channel_id_fails(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    client.watch(CALENDAR, channel_id="dup", token="t", address="https://hooks.example/g")
    with pytest.raises(CalendarSourceError, match="channelIdNotUnique"):
        client.watch(CALENDAR, channel_id="dup", token="t", address="https://hooks.example/g")


def test_notifications_from_the_fake_verify_against_the_channel(fake, client):
    received: list[dict[str, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            received.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        fake.put_event(CALENDAR, timed(NOW))
        address = f"http://127.0.0.1:{server.server_address[1]}/calendar/google"
        channel = client.watch(CALENDAR, channel_id="chan-9", token="tok-9", address=address)
        assert fake.notify(CALENDAR) == [200]
        client.stop(channel)
        assert fake.notify(CALENDAR) == []  # a stopped channel gets nothing
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    (headers,) = received
    assert verify_channel("chan-9", "tok-9", headers)
    assert resource_state(headers) == "exists"
    assert headers["X-Goog-Resource-ID"] == channel.resource_id and headers["X-Goog-Message-Number"] == "1"


# --- verify_channel ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "tok-1"}, True),
        ({"x-goog-channel-id": "chan-1", "x-goog-channel-token": "tok-1"}, True),
        ({"X-GOOG-CHANNEL-ID": "chan-1", "x-Goog-Channel-Token": "tok-1"}, True),
        ({"X-Goog-Channel-ID": "chan-2", "X-Goog-Channel-Token": "tok-1"}, False),
        ({"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "tok-2"}, False),
        ({"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "TOK-1"}, False),
        ({"X-Goog-Channel-ID": "chan-1"}, False),
        ({"X-Goog-Channel-Token": "tok-1"}, False),
        ({"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": ""}, False),
        ({}, False),
    ],
)
def test_verify_channel(headers, ok):
    assert verify_channel("chan-1", "tok-1", headers) is ok


def test_verify_channel_refuses_empty_expectations():
    headers = {"X-Goog-Channel-ID": "", "X-Goog-Channel-Token": ""}
    assert not verify_channel("", "", headers)
    assert not verify_channel("chan-1", "", {"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": ""})


def test_resource_state_reads_the_header_in_any_case():
    assert resource_state({"x-goog-resource-state": "sync"}) == "sync"
    assert resource_state({"X-Goog-Resource-State": "Exists"}) == "exists"
    assert resource_state({}) is None


# --- mapping one event ------------------------------------------------------------------------


def google_event(**fields) -> dict:
    return {
        "kind": "calendar#event",
        "id": "evt1",
        "status": "confirmed",
        "summary": "Sync",
        "updated": "2026-05-01T10:00:00.123Z",
        "start": {"dateTime": "2026-05-04T11:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-05-04T11:30:00+02:00", "timeZone": "Europe/Berlin"},
        **fields,
    }


def test_parse_google_event_reads_times_in_utc_and_the_conference_link():
    event = parse_google_event(
        google_event(
            location="https://acme.zoom.us/j/82222222222",
            conferenceData={
                "entryPoints": [{"entryPointType": "video", "uri": "https://us02web.zoom.us/j/81111111111?pwd=x"}]
            },
            hangoutLink="https://meet.google.com/aaa-bbbb-ccc",
        ),
        calendar_id="cal-1",
        owner_email=None,
    )
    assert event.start == datetime(2026, 5, 4, 9, 0, tzinfo=UTC) and event.end == datetime(
        2026, 5, 4, 9, 30, tzinfo=UTC
    )
    assert event.meeting_url == "https://us02web.zoom.us/j/81111111111?pwd=x"
    assert event.updated == datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.wants_bot and not event.all_day and event.title == "Sync"


def test_parse_google_event_teams_link_in_html_description():
    description = (
        '<p>Microsoft Teams meeting</p><p><a href="https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0'
        '?context=%7b%22Tid%22%3a%22t%22%7d">Join the meeting now</a></p>'
    )
    event = parse_google_event(google_event(description=description), calendar_id="cal-1", owner_email=None)
    assert event.meeting_url == (
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"
    )


def test_parse_google_event_all_day_and_local_time_without_offset():
    all_day = parse_google_event(
        google_event(
            start={"date": "2026-05-04"}, end={"date": "2026-05-05"}, hangoutLink="https://meet.google.com/aaa-bbbb-ccc"
        ),
        calendar_id="c",
        owner_email=None,
    )
    assert all_day.all_day and all_day.start is None and not all_day.wants_bot
    local = parse_google_event(
        google_event(
            start={"dateTime": "2026-05-04T11:00:00", "timeZone": "Europe/Berlin"},
            end={"dateTime": "2026-05-04T11:30:00", "timeZone": "Europe/Berlin"},
        ),
        calendar_id="c",
        owner_email=None,
    )
    assert local.start == datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attendees", "owner", "declined"),
    [
        ([{"email": "owner@example.com", "self": True, "responseStatus": "declined"}], None, True),
        ([{"email": "owner@example.com", "self": True, "responseStatus": "accepted"}], None, False),
        ([{"email": "Owner@Example.com", "responseStatus": "declined"}], "owner@example.com", True),
        ([{"email": "someone@example.com", "responseStatus": "declined"}], "owner@example.com", False),
        ([{"email": "owner@example.com", "responseStatus": "needsAction"}], "owner@example.com", False),
        ([], "owner@example.com", False),
        ("garbage", "owner@example.com", False),
    ],
)
def test_parse_google_event_declined_by_owner(attendees, owner, declined):
    event = parse_google_event(google_event(attendees=attendees), calendar_id="c", owner_email=owner)
    assert event.declined_by_owner is declined


def test_parse_google_event_rejects_items_without_id_or_with_bad_times():
    with pytest.raises(CalendarSourceError, match="no id"):
        parse_google_event({"status": "confirmed"}, calendar_id="c", owner_email=None)
    with pytest.raises(CalendarSourceError, match="unreadable time"):
        parse_google_event(google_event(start={"dateTime": "tomorrow"}), calendar_id="c", owner_email=None)


# --- the fake itself, where the client does not reach ---------------------------------------


def test_the_fake_requires_a_bearer_token_and_checks_page_tokens(fake, client):
    fake.put_event(CALENDAR, timed(NOW))
    events_url = f"{fake.api_base}/calendars/{CALENDAR}/events"
    assert httpx.get(events_url).status_code == 401
    assert httpx.get(events_url, headers={"Authorization": "Bearer made-up"}).status_code == 401
    client.sync("cal-1", CALENDAR, None)
    auth = {"Authorization": f"Bearer {client._oauth.token}"}
    assert httpx.get(events_url, params={"pageToken": "never-issued"}, headers=auth).status_code == 400
    token = httpx.post(fake.token_uri, data={"grant_type": "password", "client_id": CLIENT_ID})
    assert token.status_code == 400 and token.json()["error"] == "unsupported_grant_type"


def test_the_fake_shows_deleted_events_and_honours_time_max_when_asked(fake, client):
    kept = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=1)))
    gone = fake.put_event(CALENDAR, timed(NOW + timedelta(hours=2)))
    later = fake.put_event(CALENDAR, timed(NOW + timedelta(days=30)))
    fake.cancel_event(CALENDAR, gone["id"])
    client.sync("cal-1", CALENDAR, None)
    auth = {"Authorization": f"Bearer {client._oauth.token}"}
    events_url = f"{fake.api_base}/calendars/{CALENDAR}/events"
    shown = httpx.get(events_url, params={"showDeleted": "true"}, headers=auth).json()["items"]
    assert [e["id"] for e in shown] == [kept["id"], gone["id"], later["id"]]
    assert shown[1] == {k: shown[1][k] for k in ("kind", "etag", "id", "status", "updated")}
    window = {"timeMax": (NOW + timedelta(days=1)).isoformat().replace("+00:00", "Z")}
    assert [e["id"] for e in httpx.get(events_url, params=window, headers=auth).json()["items"]] == [kept["id"]]


def test_the_fake_stops_cleanly_with_open_connections():
    server = FakeGoogleCalendar()
    server.start()
    server.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    server.put_event(CALENDAR, timed(NOW))
    google = make_client(server)
    google.sync("cal-1", CALENDAR, None)  # leaves a keep-alive connection open
    server.stop()
    with pytest.raises(CalendarSourceError, match="could not reach"):
        google.sync("cal-1", CALENDAR, None)
    google.close()
