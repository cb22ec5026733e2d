"""ICS feeds: expansion of committed fixture feeds, and fetching over real HTTP on loopback."""

from __future__ import annotations

import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from meetpilot.adapters.ics import FeedFetch, IcsFeedClient, parse_feed, read_feed, redact_feed_url
from meetpilot.adapters.public_http import AddressPolicy, DestinationGuard
from meetpilot.domain.calendar import CalendarEvent, CalendarSourceError, describe_skipped
from meetpilot.domain.meeting import meeting_key

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calendars"
OWNER = "owner@example.com"
OUTLOOK_SERIES = "040000008200E00074C5B7101A82E00800000000A1B2C3D4E5F6"
SECRET_PATH = "/calendar/ical/owner%40example.com/private-5f1e2d3c4b5a69788796a5b4c3d2e1f0/basic.ics"


def feed(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, start: datetime, end: datetime, owner: str | None = OWNER) -> dict[str, CalendarEvent]:
    events = parse_feed(feed(name), calendar_id="cal-ics", window_start=start, window_end=end, owner_email=owner)
    by_id = {e.event_id: e for e in events}
    assert len(by_id) == len(events), "event ids must be unique within a feed"
    return by_id


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- recurring series, time zones, moved and removed instances ---------------------------------


@pytest.fixture(scope="module")
def outlook() -> dict[str, CalendarEvent]:
    return parse("outlook_weekly_berlin.ics", at(2026, 3, 1), at(2026, 5, 1))


def test_weekly_series_keeps_its_wall_clock_time_across_the_dst_change(outlook):
    series = sorted(
        (e for e in outlook.values() if e.recurring_event_id == OUTLOOK_SERIES and not e.cancelled),
        key=lambda e: e.start,
    )
    # 10:00 in Berlin: 09:00 UTC before 29 March (CET), 08:00 UTC after it (CEST).
    assert [e.start for e in series] == [at(2026, 3, 16, 9), at(2026, 3, 30, 8), at(2026, 4, 7, 12), at(2026, 4, 20, 8)]
    assert all(e.end - e.start == timedelta(minutes=30) for e in series)


def test_instance_ids_are_uid_and_original_start_in_utc(outlook):
    ids = {e.event_id for e in outlook.values() if e.recurring_event_id == OUTLOOK_SERIES}
    assert ids == {
        f"{OUTLOOK_SERIES}/20260316T090000Z",
        f"{OUTLOOK_SERIES}/20260323T090000Z",
        f"{OUTLOOK_SERIES}/20260330T080000Z",
        f"{OUTLOOK_SERIES}/20260406T080000Z",
        f"{OUTLOOK_SERIES}/20260413T080000Z",
        f"{OUTLOOK_SERIES}/20260420T080000Z",
    }


def test_moved_instance_keeps_its_id_and_takes_its_new_time(outlook):
    moved = outlook[f"{OUTLOOK_SERIES}/20260406T080000Z"]
    assert moved.start == at(2026, 4, 7, 12) and moved.end == at(2026, 4, 7, 12, 30)
    assert moved.title == "Weekly product sync (moved to Tuesday)"
    assert moved.updated == at(2026, 3, 2, 9, 15)
    assert moved.wants_bot
    # Its link is the same meeting as the series', written differently (plain text, no safelink).
    regular = outlook[f"{OUTLOOK_SERIES}/20260316T090000Z"]
    assert (
        meeting_key(moved.meeting_url, moved.start).split("|")[0]
        == meeting_key(regular.meeting_url, regular.start).split("|")[0]
    )


def test_exdate_instance_is_reported_as_cancelled(outlook):
    removed = outlook[f"{OUTLOOK_SERIES}/20260323T090000Z"]
    assert removed.cancelled and not removed.wants_bot
    assert removed.start == at(2026, 3, 23, 9) and removed.end == at(2026, 3, 23, 9, 30)
    assert removed.recurring_event_id == OUTLOOK_SERIES


def test_instance_cancelled_by_an_override_is_cancelled(outlook):
    cancelled = outlook[f"{OUTLOOK_SERIES}/20260413T080000Z"]
    assert cancelled.cancelled and not cancelled.wants_bot


def test_teams_link_only_in_the_html_description_behind_safelinks_is_found(outlook):
    regular = outlook[f"{OUTLOOK_SERIES}/20260316T090000Z"]
    assert regular.meeting_url is not None
    assert regular.meeting_url.startswith(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NGE3ZjEyZDQtYjM0NS00ZGQ5LWE2YjctZDRlNmI4OTIxMDk4%40thread.v2/0?context="
    )
    assert "safelinks" not in regular.meeting_url and "meetingOptions" not in regular.meeting_url


def test_outlook_teams_property_windows_zone_and_owner_decline(outlook):
    vendor = outlook["040000008200E00074C5B7101A82E00800000000FFEEDDCCBBAA"]
    assert vendor.start == at(2026, 3, 18, 14)  # 15:00 "W. Europe Standard Time" = CET
    assert vendor.meeting_url == (
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZmZlZWRkY2M%40thread.v2/0?context=%7b%22Tid%22%3a%227f3e%22%7d"
    )
    assert vendor.declined_by_owner and not vendor.wants_bot
    assert vendor.recurring_event_id is None


def test_window_limits_a_series_and_its_removed_instances():
    events = parse("outlook_weekly_berlin.ics", at(2026, 3, 25), at(2026, 4, 8))
    assert sorted(events) == [
        f"{OUTLOOK_SERIES}/20260330T080000Z",
        f"{OUTLOOK_SERIES}/20260406T080000Z",
    ]


def test_the_same_feed_parses_to_the_same_events():
    first = parse("outlook_weekly_berlin.ics", at(2026, 3, 1), at(2026, 5, 1))
    second = parse("outlook_weekly_berlin.ics", at(2026, 3, 1), at(2026, 5, 1))
    assert first == second


# --- single events: UTC, floating, all-day, cancelled, declined ---------------------------------


@pytest.fixture(scope="module")
def mixed() -> dict[str, CalendarEvent]:
    return parse("mixed.ics", at(2026, 5, 4), at(2026, 5, 6))


def test_utc_event_with_a_zoom_link_in_the_location(mixed):
    standup = mixed["utc-zoom@example.com"]
    assert (standup.start, standup.end) == (at(2026, 5, 4, 9), at(2026, 5, 4, 9, 30))
    assert standup.meeting_url == "https://acme.zoom.us/j/85551234567?pwd=Q2xpZW50UHdk.1"
    assert standup.wants_bot and standup.calendar_id == "cal-ics" and standup.recurring_event_id is None
    assert standup.updated == at(2026, 4, 20, 12)


def test_floating_time_is_read_as_utc_without_a_calendar_zone(mixed):
    lunch = mixed["floating@example.com"]
    assert lunch.start == at(2026, 5, 4, 12) and lunch.end == at(2026, 5, 4, 13)
    assert lunch.meeting_url == "https://meet.google.com/xyz-abcd-efg"


def test_floating_time_follows_x_wr_timezone_when_declared():
    events = parse("google_export.ics", at(2026, 5, 1), at(2026, 5, 10))
    floating = events["floating-berlin@google.com"]
    assert floating.start == at(2026, 5, 4, 8)  # 10:00 in Berlin, summer time
    assert floating.meeting_url == "https://meet.google.com/hij-klmn-opq"  # from X-GOOGLE-CONFERENCE


def test_floating_series_and_its_exdate_share_the_calendar_zone():
    body = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nX-WR-TIMEZONE:Europe/Berlin\n"
        "BEGIN:VEVENT\nUID:floating-series\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T100000\n"
        "DTEND:20260504T103000\nRRULE:FREQ=DAILY;COUNT=3\nEXDATE:20260505T100000\nSUMMARY:x\n"
        "LOCATION:https://meet.google.com/abc-defg-hij\nEND:VEVENT\nEND:VCALENDAR\n"
    ).replace("\n", "\r\n")
    events = parse_feed(body.encode(), calendar_id="c", window_start=at(2026, 5, 1), window_end=at(2026, 5, 10))
    assert [(e.event_id, e.start, e.cancelled) for e in events] == [
        ("floating-series/20260504T080000Z", at(2026, 5, 4, 8), False),
        ("floating-series/20260505T080000Z", at(2026, 5, 5, 8), True),
        ("floating-series/20260506T080000Z", at(2026, 5, 6, 8), False),
    ]


def test_google_export_series_with_a_cancelled_instance_and_wrapped_meet_link():
    events = parse("google_export.ics", at(2026, 5, 1), at(2026, 5, 10))
    series = "5k3v8n2q1p0r9s7t6u4w@google.com"
    assert [(e.start, e.cancelled) for e in sorted(events.values(), key=lambda e: e.start) if e.recurring_event_id] == [
        (at(2026, 5, 5, 7), False),
        (at(2026, 5, 6, 7), True),
        (at(2026, 5, 7, 7), False),
    ]
    assert events[f"{series}/20260505T070000Z"].meeting_url == "https://meet.google.com/tri-agex-yzz"


def test_all_day_events_have_no_times_and_want_no_bot(mixed):
    offsite = mixed["all-day@example.com"]
    assert offsite.all_day and offsite.start is None and offsite.end is None
    assert offsite.meeting_url == "https://meet.google.com/aaa-bbbb-ccc"
    assert not offsite.wants_bot


def test_all_day_series_instance_ids_use_the_date_and_exdates_cancel(mixed):
    assert mixed["holidays@example.com/20260504"].all_day
    removed = mixed["holidays@example.com/20260505"]
    assert removed.all_day and removed.cancelled
    assert "holidays@example.com/20260503" not in mixed  # ended before the window


def test_cancelled_event_is_reported_cancelled(mixed):
    cancelled = mixed["cancelled@example.com"]
    assert cancelled.cancelled and not cancelled.wants_bot
    assert cancelled.meeting_url == "https://acme.zoom.us/j/81112223334"


def test_owner_decline_is_matched_case_insensitively_through_mailto(mixed):
    assert mixed["declined@example.com"].declined_by_owner
    assert not mixed["other-declined@example.com"].declined_by_owner
    assert mixed["other-declined@example.com"].wants_bot


def test_without_an_owner_nothing_counts_as_declined():
    events = parse("mixed.ics", at(2026, 5, 4), at(2026, 5, 6), owner=None)
    assert not any(e.declined_by_owner for e in events.values())
    events = parse("mixed.ics", at(2026, 5, 4), at(2026, 5, 6), owner="MAILTO:OWNER@EXAMPLE.COM")
    assert events["declined@example.com"].declined_by_owner


def test_conference_property_beats_links_in_the_description(mixed):
    review = mixed["google-conference@example.com"]
    assert review.meeting_url == "https://meet.google.com/qrs-tuvw-xyz"


def test_marketing_links_are_not_meetings(mixed):
    coffee = mixed["no-link@example.com"]
    assert coffee.meeting_url is None and not coffee.wants_bot


def test_a_series_repeating_every_minute_is_skipped(mixed):
    assert not any(e.event_id.startswith("every-minute@") for e in mixed.values())


@pytest.mark.parametrize(
    ("window", "inside"),
    [
        ((at(2026, 5, 4, 9, 30), at(2026, 5, 4, 10)), False),  # ends exactly at the window start
        ((at(2026, 5, 4, 9, 29), at(2026, 5, 4, 10)), True),  # still running at the window start
        ((at(2026, 5, 4, 9), at(2026, 5, 4, 10)), True),  # starts exactly at the window start
        ((at(2026, 5, 4, 8), at(2026, 5, 4, 9)), False),  # starts exactly at the window end
        ((at(2026, 5, 4, 8), at(2026, 5, 4, 9, 0, 1)), True),  # starts just before the window end
    ],
)
def test_window_edges(window, inside):
    events = parse("mixed.ics", *window)
    assert ("utc-zoom@example.com" in events) is inside


def test_instant_events_count_when_they_start_in_the_window():
    body = _calendar(
        "BEGIN:VEVENT\nUID:instant\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T090000Z\nSUMMARY:x\nEND:VEVENT"
    )
    window = {"calendar_id": "c", "owner_email": None}
    assert [
        e.event_id for e in parse_feed(body, window_start=at(2026, 5, 4, 9), window_end=at(2026, 5, 4, 10), **window)
    ] == ["instant"]
    assert parse_feed(body, window_start=at(2026, 5, 4, 8), window_end=at(2026, 5, 4, 9), **window) == []


def test_the_window_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_feed(feed("mixed.ics"), calendar_id="c", window_start=datetime(2026, 5, 4), window_end=at(2026, 5, 5))


# --- malformed feeds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        b"<html><body>Sign in to continue</body></html>",
        b"\xff\xfe\x00\x01binary",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane\r\nEND:VCARD\r\n",
    ],
    ids=["empty", "garbage", "html-login-page", "binary", "truncated", "vcard"],
)
def test_a_malformed_feed_raises_a_source_error(body):
    with pytest.raises(CalendarSourceError) as caught:
        parse_feed(body, calendar_id="c", window_start=at(2026, 5, 1), window_end=at(2026, 5, 30))
    assert "\n" not in str(caught.value)


def test_the_error_for_a_body_that_is_not_icalendar_does_not_quote_it():
    body = b"<html><body>Sign in, session 7c1d-SECRET-MARKER</body></html>"
    with pytest.raises(CalendarSourceError, match="not valid iCalendar") as caught:
        parse_feed(body, calendar_id="c", window_start=at(2026, 5, 1), window_end=at(2026, 5, 30))
    assert "SECRET-MARKER" not in str(caught.value) and "Sign in" not in str(caught.value)


# --- one bad series does not sink the feed -----------------------------------------------------

GOOD_SERIES = (
    "BEGIN:VEVENT\nUID:good-weekly\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T090000Z\nDTEND:20260504T093000Z\n"
    "RRULE:FREQ=WEEKLY;COUNT=3\nSUMMARY:Weekly\nLOCATION:https://zoom.us/j/1234567890\nEND:VEVENT"
)
GOOD_ONE_OFF = (
    "BEGIN:VEVENT\nUID:good-once\nDTSTAMP:20260420T120000Z\nDTSTART:20260506T150000Z\nDTEND:20260506T160000Z\n"
    "SUMMARY:Once\nLOCATION:https://zoom.us/j/9876543210\nEND:VEVENT"
)
BAD_SERIES = {
    "bad-rrule": "RRULE:FREQ=SOMETIMES;SECRET=BODY-MARKER",
    "bad-date": "RRULE:FREQ=DAILY;COUNT=2\nRDATE:notadate-BODY-MARKER",
    "bad-byday": "RRULE:FREQ=WEEKLY;BYDAY=XX",
    "bad-exdate": "RRULE:FREQ=DAILY;COUNT=3\nEXDATE:garbage",
    # dateutil loops forever on a zero interval: such a rule must be refused before it is expanded.
    "zero-interval": "RRULE:FREQ=DAILY;INTERVAL=0",
}


def _bad_series(uid: str, rule: str) -> str:
    return (
        f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T100000Z\n{rule}\n"
        "SUMMARY:Broken BODY-MARKER\nLOCATION:https://zoom.us/j/5555555555\nEND:VEVENT"
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", sorted(BAD_SERIES))
def test_a_feed_with_one_bad_series_keeps_the_good_ones_and_names_the_bad_one(kind):
    body = _calendar("\n".join([GOOD_SERIES, _bad_series(kind, BAD_SERIES[kind]), GOOD_ONE_OFF]))
    parsed = read_feed(body, calendar_id="c", window_start=at(2026, 5, 1), window_end=at(2026, 5, 30))
    assert [e.event_id for e in parsed.events] == [
        "good-weekly/20260504T090000Z",
        "good-once",
        "good-weekly/20260511T090000Z",
        "good-weekly/20260518T090000Z",
    ]
    (skipped,) = parsed.skipped
    assert skipped.uid == kind
    report = describe_skipped(parsed.skipped)
    assert report is not None and report.startswith("synced without one series that could not be read: UID")
    assert repr(kind) in report and "\n" not in report and "MARKER" not in report


def test_bad_series_are_reported_in_one_line_however_many():
    bad = [_bad_series(f"bad-{n}\u2028x", BAD_SERIES["bad-rrule"]) for n in range(7)]
    parsed = read_feed(
        _calendar("\n".join([GOOD_SERIES, *bad])),
        calendar_id="c",
        window_start=at(2026, 5, 1),
        window_end=at(2026, 6, 1),
    )
    assert {e.recurring_event_id for e in parsed.events} == {"good-weekly"}
    report = describe_skipped(parsed.skipped) or ""
    assert report.startswith("synced without 7 series") and report.endswith("; and 2 more")
    assert len(report.splitlines()) == 1 and "\u2028" not in report


def test_a_repeated_uid_keeps_the_highest_sequence():
    newer = (
        "BEGIN:VEVENT\nUID:dup\nSEQUENCE:2\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T110000Z\nSUMMARY:new\nEND:VEVENT"
    )
    older = (
        "BEGIN:VEVENT\nUID:dup\nSEQUENCE:1\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T090000Z\nSUMMARY:old\nEND:VEVENT"
    )
    # In one calendar object, and in two calendar objects concatenated in one body (some feeds do).
    for body in (
        _calendar(newer + "\n" + older),
        _calendar(older + "\n" + newer),
        _calendar(newer) + _calendar(older),
        _calendar(older) + _calendar(newer),
    ):
        (event,) = parse_feed(body, calendar_id="c", window_start=at(2026, 5, 4), window_end=at(2026, 5, 5))
        assert event.title == "new" and event.start == at(2026, 5, 4, 11)


def test_an_event_without_uid_gets_a_stable_id():
    body = _calendar(
        "BEGIN:VEVENT\nDTSTAMP:20260420T120000Z\nDTSTART:20260504T090000Z\nDTEND:20260504T100000Z\nSUMMARY:x\nEND:VEVENT"
    )
    first = parse_feed(body, calendar_id="c", window_start=at(2026, 5, 4), window_end=at(2026, 5, 5))
    second = parse_feed(body, calendar_id="c", window_start=at(2026, 5, 4), window_end=at(2026, 5, 5))
    assert len(first) == 1 and first[0].event_id == second[0].event_id and first[0].event_id.startswith("no-uid-")


def _calendar(vevent: str) -> bytes:
    text = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + vevent + "\nEND:VCALENDAR\n"
    return text.replace("\n", "\r\n").encode()


# --- fetching over HTTP -----------------------------------------------------------------------


@dataclass
class FeedServer:
    """A tiny feed host on loopback: ``routes`` maps a path to (status, headers, body)."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    base: str = ""


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status, headers, body = state.routes.get(self.path, (404, {}, b"not found"))
            if status == 200 and headers.get("ETag") and self.headers.get("If-None-Match") == headers["ETag"]:
                status, body = 304, b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Transfer-Encoding" in headers:
                self.end_headers()
                for start in range(0, len(body), 4096):
                    chunk = body[start : start + 4096]
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the client hanging up on an oversized feed is the point of some tests

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def client() -> Iterator[IcsFeedClient]:
    # The loopback listener stands in for a feed host on the internet: allowed, as the local stack does.
    ics = IcsFeedClient(
        timeout=5.0, max_bytes=64 * 1024, guard=DestinationGuard(AddressPolicy.allowing(["127.0.0.1/32"]))
    )
    yield ics
    ics.close()


def test_fetch_returns_the_body_and_etag_then_304_when_unchanged(feed_server, client):
    feed_server.routes[SECRET_PATH] = (200, {"ETag": '"v1"', "Content-Type": "text/calendar"}, feed("mixed.ics"))
    url = feed_server.base + SECRET_PATH
    first = client.fetch(url)
    assert first == FeedFetch(not_modified=False, etag='"v1"', body=feed("mixed.ics"))
    assert "if-none-match" not in feed_server.seen[0]
    second = client.fetch(url, etag=first.etag)
    assert second.not_modified and second.body is None and second.etag == '"v1"'
    assert feed_server.seen[1]["if-none-match"] == '"v1"'
    # A changed feed comes back in full with its new ETag.
    feed_server.routes[SECRET_PATH] = (200, {"ETag": '"v2"'}, feed("google_export.ics"))
    third = client.fetch(url, etag='"v1"')
    assert not third.not_modified and third.etag == '"v2"' and third.body == feed("google_export.ics")


def test_redirects_are_followed(feed_server, client):
    feed_server.routes["/old"] = (301, {"Location": SECRET_PATH}, b"")
    feed_server.routes[SECRET_PATH] = (200, {}, feed("mixed.ics"))
    assert client.fetch(feed_server.base + "/old").body == feed("mixed.ics")


def _assert_redacted(error: CalendarSourceError, feed_server: FeedServer) -> None:
    text = str(error) + "".join(traceback.format_exception(error))
    assert "private-5f1e2d3c" not in text and "basic.ics" not in text and "owner%40example.com" not in text
    assert "127.0.0.1" in str(error)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (401, False)])
def test_error_statuses_raise_with_the_status_and_a_redacted_url(feed_server, client, status, retryable):
    feed_server.routes[SECRET_PATH] = (status, {}, b"oops")
    with pytest.raises(CalendarSourceError) as caught:
        client.fetch(feed_server.base + SECRET_PATH)
    assert str(status) in str(caught.value)
    assert caught.value.status == status and caught.value.retryable is retryable
    _assert_redacted(caught.value, feed_server)


def test_a_feed_over_the_size_limit_is_refused_by_content_length(feed_server, client):
    feed_server.routes[SECRET_PATH] = (200, {}, b"x" * (64 * 1024 + 1))
    with pytest.raises(CalendarSourceError, match="limit") as caught:
        client.fetch(feed_server.base + SECRET_PATH)
    _assert_redacted(caught.value, feed_server)


def test_a_streamed_feed_over_the_size_limit_is_abandoned(feed_server, client):
    feed_server.routes[SECRET_PATH] = (200, {"Transfer-Encoding": "chunked"}, b"x" * (200 * 1024))
    with pytest.raises(CalendarSourceError, match="limit") as caught:
        client.fetch(feed_server.base + SECRET_PATH)
    _assert_redacted(caught.value, feed_server)


def test_a_garbage_feed_fetches_but_does_not_parse(feed_server, client):
    feed_server.routes[SECRET_PATH] = (200, {"ETag": '"g"'}, b"<html>Sign in</html>")
    fetched = client.fetch(feed_server.base + SECRET_PATH)
    with pytest.raises(CalendarSourceError, match="not valid iCalendar"):
        parse_feed(fetched.body or b"", calendar_id="c", window_start=at(2026, 5, 1), window_end=at(2026, 5, 2))


def test_network_failures_raise_without_the_url(client):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    with pytest.raises(CalendarSourceError, match="could not fetch") as caught:
        client.fetch(url)
    assert caught.value.retryable
    text = "".join(traceback.format_exception(caught.value))
    assert "private-5f1e2d3c" not in text


def test_feed_urls_do_not_reach_the_logs(feed_server, client, caplog):
    feed_server.routes[SECRET_PATH] = (200, {}, feed("mixed.ics"))
    with caplog.at_level(logging.DEBUG):
        client.fetch(feed_server.base + SECRET_PATH)
    assert caplog.records, "httpx should have logged the request"
    assert "private-5f1e2d3c" not in caplog.text
    assert "127.0.0.1" in caplog.text


def test_webcal_addresses_are_fetched_over_https():
    requested: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requested.append(request.url)
        return httpx.Response(200, content=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

    ics = IcsFeedClient(httpx.Client(transport=httpx.MockTransport(answer)))
    ics.fetch("webcal://calendar.example.com" + SECRET_PATH)
    assert requested[0].scheme == "https" and requested[0].host == "calendar.example.com"


@pytest.mark.parametrize("url", ["ftp://example.com/feed.ics", "not a url", "https://"])
def test_unusable_feed_addresses_are_refused(client, url):
    with pytest.raises(CalendarSourceError, match="http"):
        client.fetch(url)


def test_redaction_keeps_only_scheme_and_host():
    assert redact_feed_url("https://user:pw@calendar.google.com" + SECRET_PATH + "?token=abc") == (
        "https://calendar.google.com/…"
    )
