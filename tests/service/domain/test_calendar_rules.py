"""Which calendar events get a bot (per-calendar filters), calendar ids, feed addresses, push checks."""

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.domain.calendar import (
    Calendar,
    CalendarEvent,
    CalendarFilters,
    CalendarKind,
    PushChannel,
    bot_refusal,
    calendar_id_for,
    channel_matches,
    check_feed_url,
    push_resource_state,
)
from meetpilot.domain.meeting import Meeting
from meetpilot.domain.status import Outcome
from meetpilot.errors import InvalidInput

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
TEAM = ("me@acme.test", "you@acme.test")


def event(**overrides):
    fields = {
        "calendar_id": "cal-1",
        "event_id": "evt-1",
        "title": "Standup",
        "start": START,
        "end": START + timedelta(minutes=30),
        "all_day": False,
        "cancelled": False,
        "declined_by_owner": False,
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        "updated": None,
        "attendees": TEAM,
    }
    fields.update(overrides)
    return CalendarEvent(**fields)


def test_a_timed_meeting_with_a_link_gets_a_bot_by_default():
    assert bot_refusal(event(), CalendarFilters()) is None


@pytest.mark.parametrize(
    "overrides,reason",
    [
        ({"cancelled": True}, "cancelled"),
        ({"declined_by_owner": True}, "declined by the calendar owner"),
        ({"all_day": True, "start": None, "end": None}, "all-day event"),
        ({"meeting_url": None}, "no meeting link"),
        ({"title": "1:1 [NO BOT] please"}, "opted out in the title"),
    ],
)
def test_events_that_get_no_bot_say_why(overrides, reason):
    assert bot_refusal(event(**overrides), CalendarFilters()) == reason


def test_opt_out_word_is_configurable_and_can_be_turned_off():
    titled = event(title="Private [no bot]")
    assert bot_refusal(titled, CalendarFilters(opt_out_word="")) is None
    assert bot_refusal(event(title="Offsite (private)"), CalendarFilters(opt_out_word="(private)")) is not None


def test_minimum_attendees_counts_distinct_people():
    filters = CalendarFilters(min_attendees=3)
    assert bot_refusal(event(), filters) == "fewer than 3 attendees"
    assert bot_refusal(event(attendees=(*TEAM, "you@acme.test")), filters) == "fewer than 3 attendees"
    assert bot_refusal(event(attendees=(*TEAM, "them@acme.test")), filters) is None


def test_external_only_looks_past_the_owners_domain_and_the_internal_ones():
    filters = CalendarFilters(external_only=True, internal_domains=("Acme-EU.test",))
    assert bot_refusal(event(), filters, "me@acme.test") == "no external attendees"
    assert bot_refusal(event(attendees=(*TEAM, "ops@acme-eu.test")), filters, "me@acme.test") is not None
    assert bot_refusal(event(attendees=(*TEAM, "buyer@customer.test")), filters, "me@acme.test") is None
    assert bot_refusal(event(attendees=()), filters, "me@acme.test") == "no external attendees"


def test_negative_minimum_is_refused():
    with pytest.raises(InvalidInput):
        CalendarFilters(min_attendees=-1)


def test_calendar_ids_are_stable_per_user_and_source_and_hide_the_feed_address():
    url = "https://calendar.example.test/ical/private-abc123/basic.ics"
    first = calendar_id_for(CalendarKind.ICS, "alice", url)
    assert first == calendar_id_for(CalendarKind.ICS, "alice", f"  {url} ")
    assert first != calendar_id_for(CalendarKind.ICS, "bob", url)
    assert first != calendar_id_for(CalendarKind.GOOGLE, "alice", url)
    assert first.startswith("ics-") and "abc123" not in first and "#" not in first


@pytest.mark.parametrize("url", ["webcal://cal.example.test/x.ics", "https://cal.example.test/x.ics"])
def test_feed_addresses_meetpilot_can_poll(url):
    assert check_feed_url(url) == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cal.example.test/x.ics", "https:///nohost", "nonsense"])
def test_other_feed_addresses_are_refused_without_echoing_them(url):
    with pytest.raises(InvalidInput) as refused:
        check_feed_url(url)
    assert url not in str(refused.value)


def test_secrets_stay_out_of_reprs():
    calendar = Calendar("ics-1", CalendarKind.ICS, "alice", feed_url="https://x.test/private-s3cr3t", sync_token="t0k")
    channel = PushChannel("ch-1", "google-1", "res-1", START, token="chan-t0ken")
    assert "s3cr3t" not in repr(calendar) and "t0k" not in repr(calendar)
    assert "chan-t0ken" not in repr(channel)


def test_push_channel_check_needs_both_id_and_token():
    headers = {"X-Goog-Channel-ID": "ch-1", "X-Goog-Channel-Token": "tok", "X-Goog-Resource-State": "Sync"}
    assert channel_matches("ch-1", "tok", headers)
    assert channel_matches("ch-1", "tok", {k.lower(): v for k, v in headers.items()})
    assert not channel_matches("ch-1", "tok2", headers)
    assert not channel_matches("ch-2", "tok", headers)
    assert not channel_matches("ch-1", "", headers)
    assert not channel_matches("ch-1", "tok", {"X-Goog-Channel-ID": "ch-1"})
    assert push_resource_state(headers) == "sync"
    assert push_resource_state({}) is None


def test_a_cancelled_meeting_is_its_own_outcome_and_needs_no_review():
    assert not Outcome.CANCELLED.is_success and not Outcome.CANCELLED.needs_review


def test_each_life_of_a_meeting_has_its_own_provider_deduplication_key():
    meeting = Meeting.new("https://meet.google.com/abc-defg-hij", START)
    assert meeting.deduplication_key == meeting.meeting_key
    meeting.revision = 2
    assert meeting.deduplication_key == f"{meeting.meeting_key}|r2"
