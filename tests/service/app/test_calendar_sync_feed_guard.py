"""Feeds on the local stack: what a calendar records about a bad series or a failed fetch, the
registration check, and the allow-list that only the local stack sets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meetpilot.adapters.public_http import DestinationGuard
from meetpilot.app.calendars import IcsRegistration, add_ics_calendar
from meetpilot.domain.calendar import Calendar
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot.errors import InvalidInput, RefusedDestination, UnresolvableHost
from meetpilot_dev.fakes.feeds import FeedServer
from meetpilot_dev.stack.template import load_template
from tests.support.calendar_helpers import Ev, ics, queued, register_ics, sync

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
ONE_OFF = "https://acme.zoom.us/j/81234567890"
SERIES = "https://acme.zoom.us/j/89876543210"


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def _start(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def _with_series(text: str, uid: str, start: datetime, rule: str) -> str:
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    end = (start + timedelta(minutes=30)).strftime("%Y%m%dT%H%M%SZ")
    series = (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART:{stamp}\r\nDTEND:{end}\r\nRRULE:{rule}\r\n"
        f"SUMMARY:Daily sync\r\nLOCATION:{SERIES}\r\nEND:VEVENT\r\n"
    )
    return text.replace("END:VCALENDAR", series + "END:VCALENDAR")


def _calendar(stack, calendar_id: str) -> Calendar:
    calendar = stack.container.repository.get_calendar(calendar_id)
    assert calendar is not None
    return calendar


def test_a_feed_with_one_bad_series_syncs_the_rest_and_names_the_series_on_the_calendar(stack, feeds):
    start = _start(45)
    body = _with_series(ics([Ev("one-off", start, url=ONE_OFF)]), "broken-series", start, "FREQ=WEEKLY;BYDAY=XX")
    calendar_id = register_ics(stack, "dana", feeds.publish("dana", body))

    assert stack.container.repository.get_meeting(meeting_key(ONE_OFF, start)).desired is DesiredState.RECORD
    calendar = _calendar(stack, calendar_id)
    assert calendar.last_error == (
        "synced without one series that could not be read: "
        "UID 'broken-series' has a repeat rule (RRULE) that cannot be read"
    )
    assert calendar.last_synced_at is not None and calendar.etag is None

    # No ETag kept: the next poll reads the feed in full again and reports the series again.
    sync(stack, calendar_id)
    assert feeds.not_modified.get("dana", 0) == 0 and feeds.requests["dana"] == 2
    assert _calendar(stack, calendar_id).last_error == calendar.last_error

    feeds.publish("dana", _with_series(ics([Ev("one-off", start, url=ONE_OFF)]), "broken-series", start, "FREQ=DAILY"))
    sync(stack, calendar_id)
    repaired = _calendar(stack, calendar_id)
    assert repaired.last_error is None and repaired.etag is not None


def test_a_series_that_turns_bad_keeps_its_meetings_while_the_rest_of_the_feed_syncs(stack, feeds):
    start = _start(45)
    good = _with_series(ics([Ev("one-off", start + timedelta(hours=3), url=ONE_OFF)]), "daily", start, "FREQ=DAILY")
    calendar_id = register_ics(stack, "erin", feeds.publish("erin", good))
    series_key = meeting_key(SERIES, start)
    assert stack.container.repository.get_meeting(series_key).desired is DesiredState.RECORD
    links_before = {link.event_id for link in stack.container.repository.list_calendar_links(calendar_id)}

    # The series breaks and the one-off is deleted: unread is not deleted, deleted is.
    feeds.publish("erin", _with_series(ics([]), "daily", start, "FREQ=DAILY;INTERVAL=0"))
    sync(stack, calendar_id)
    links_after = {link.event_id for link in stack.container.repository.list_calendar_links(calendar_id)}
    assert links_after == links_before - {"one-off"}
    assert stack.container.repository.get_meeting(series_key).desired is DesiredState.RECORD
    one_off = stack.container.repository.get_meeting(meeting_key(ONE_OFF, start + timedelta(hours=3)))
    assert one_off.desired is DesiredState.CANCELLED
    assert "UID 'daily' has a repeat rule with an INTERVAL below 1" in (_calendar(stack, calendar_id).last_error or "")


@pytest.mark.parametrize("failure", ["status", "not-icalendar"])
def test_a_stored_fetch_error_is_one_line_in_our_words_without_the_remote_body(stack, feeds, failure):
    start = _start(45)
    calendar_id = register_ics(stack, "fay", feeds.publish("fay", ics([Ev("m", start, url=ONE_OFF)])))
    if failure == "status":
        feeds.fail("fay", 503)  # the local feed server answers "feed unavailable"
        remote = "feed unavailable"
    else:
        remote = "Sign in to see REMOTE-MARKER-51"
        feeds.publish("fay", f"<html>\n<body>{remote}\nline two</body>\n</html>", content_type="text/html")
    sync(stack, calendar_id)
    error = _calendar(stack, calendar_id).last_error or ""
    assert error and len(error.splitlines()) == 1
    assert remote not in error and "private-" not in error
    expected = "answered HTTP 503 (will retry" if failure == "status" else "is not valid iCalendar"
    assert expected in error


# --- registration --------------------------------------------------------------------------------


class _Resolver:
    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    def __call__(self, host: str, port: int) -> list[str]:
        return self.names.get(host, [])


REFUSED_REGISTRATIONS = [
    ("https://calendar.example.com/private-1/basic.ics", RefusedDestination, "resolves to 10.20.0.4"),
    ("webcal://calendar.example.com/private-1/basic.ics", RefusedDestination, "(private)"),
    ("http://169.254.169.254/latest/meta-data/private-1", RefusedDestination, "(link-local)"),
    ("https://[fd00::5]/private-1/basic.ics", RefusedDestination, "(private)"),
    ("https://gone.example.com/private-1/basic.ics", UnresolvableHost, "has no address"),
]


def test_registering_a_feed_that_points_inside_is_refused_and_stores_nothing(stack):
    c = stack.container
    guard = DestinationGuard(resolver=_Resolver({"calendar.example.com": ["10.20.0.4"]}))
    for url, error, words in REFUSED_REGISTRATIONS:
        with pytest.raises(error) as caught:
            add_ics_calendar(
                IcsRegistration("gus", url),
                repo=c.repository,
                sync_queue=c.calendar_sync_queue,
                clock=c.clock,
                check_address=guard.vet_url,
            )
        assert isinstance(caught.value, InvalidInput)  # a 4xx at the management API
        message = str(caught.value)
        assert message.startswith("the ICS feed address cannot be used: ") and words in message, url
        assert "private-1" not in message
    assert [cal for cal in c.repository.list_calendars() if cal.user_id == "gus"] == []
    assert queued(stack) == 0


# --- the allow-list: the local stack only ---------------------------------------------------------


def test_the_local_stack_allows_only_its_loopback_feed_server(stack, feeds):
    assert stack.container.settings.feed_allow_networks == ("127.0.0.1/32",)
    calendar_id = register_ics(stack, "hal", feeds.publish("hal", ics([Ev("m", _start(45), url=ONE_OFF)])))
    assert _calendar(stack, calendar_id).last_error is None and feeds.requests["hal"] == 1
    # Another loopback address is still inside.
    with pytest.raises(RefusedDestination, match=r"127\.0\.0\.2 is not a public address \(loopback\)"):
        stack.container.feed_guard.vet_url("http://127.0.0.2:8080/feed.ics")


def test_the_deployed_template_never_sets_the_feed_allow_list():
    assert "FEED_ALLOW_NETWORKS" not in TEMPLATE.read_text()
    template = load_template(TEMPLATE)
    environments = [template.get("Globals", {}).get("Function", {}).get("Environment", {})]
    environments += [
        resource.get("Properties", {}).get("Environment", {})
        for resource in template["Resources"].values()
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    ]
    assert len(environments) > 5
    for environment in environments:
        assert "FEED_ALLOW_NETWORKS" not in environment.get("Variables", {})
