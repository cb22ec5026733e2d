"""The calendar event every source produces, and which events ask for a bot."""

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meetpilot.domain.calendar import CalendarEvent, CalendarSourceError, SyncTokenExpired
from meetpilot.errors import MeetpilotError

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


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
        "updated": START - timedelta(days=1),
    }
    fields.update(overrides)
    return CalendarEvent(**fields)


def test_a_timed_meeting_with_a_link_wants_a_bot():
    assert event().wants_bot


@pytest.mark.parametrize(
    "overrides",
    [
        {"cancelled": True},
        {"declined_by_owner": True},
        {"all_day": True, "start": None, "end": None},
        {"meeting_url": None},
        {"meeting_url": ""},
        {"start": None, "end": None},
    ],
    ids=["cancelled", "declined", "all-day", "no-link", "empty-link", "no-start"],
)
def test_events_that_do_not_want_a_bot(overrides):
    assert not event(**overrides).wants_bot


def test_times_are_normalised_to_utc():
    berlin = timezone(timedelta(hours=2))
    local = event(start=datetime(2026, 5, 4, 11, 0, tzinfo=berlin), end=datetime(2026, 5, 4, 11, 30, tzinfo=berlin))
    assert local.start == START and local.start.tzinfo is UTC
    assert local.end is not None and local.end.tzinfo is UTC
    assert local == event()


@pytest.mark.parametrize("name", ["start", "end", "updated"])
def test_naive_times_are_rejected(name):
    with pytest.raises(ValueError, match="naive"):
        event(**{name: datetime(2026, 5, 4, 9, 0)})


def test_an_event_cannot_end_before_it_starts_or_lack_ids():
    with pytest.raises(ValueError, match="ends before"):
        event(end=START - timedelta(minutes=1))
    with pytest.raises(ValueError, match="id"):
        event(event_id="")
    with pytest.raises(ValueError, match="id"):
        event(calendar_id="")


def test_events_are_immutable_and_hashable():
    first = event()
    with pytest.raises(FrozenInstanceError):
        first.title = "changed"  # type: ignore[misc]
    assert len({first, replace(first), replace(first, event_id="evt-2")}) == 2
    assert first.recurring_event_id is None


def test_source_errors_belong_to_the_meetpilot_hierarchy():
    expired = SyncTokenExpired()
    assert isinstance(expired, CalendarSourceError)
    assert isinstance(expired, MeetpilotError)
    assert expired.status == 410 and expired.retryable
    failure = CalendarSourceError("feed answered HTTP 404", status=404)
    assert failure.status == 404 and not failure.retryable
    assert str(failure) == "feed answered HTTP 404"
