"""Calendar sync as a use case, on the in-memory ports: an ICS feed's events become meetings and
schedules, the same meeting on two calendars is one meeting, a cancelled event withdraws it, and
a sync another one holds answers busy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.calendar_sync import SyncDeps, sync_calendar
from meetpilot.app.dispatch import DispatchConfig
from meetpilot.app.ports import FeedRead, GoogleCalendars
from meetpilot.domain.calendar import Calendar, CalendarEvent, CalendarKind, calendar_event_id
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot_dev.fakes.aws import MemoryDispatchScheduler, MemoryQueue
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
START = T0 + timedelta(days=1)
URL = "https://meet.google.com/abc-defg-hij"
FEED = "https://calendar.example.test/alice.ics"


class MemoryIcsFeeds:
    """``app.ports.IcsFeeds`` answering each feed URL with the events a test put there."""

    def __init__(self) -> None:
        self.feeds: dict[str, list[CalendarEvent]] = {}

    def read(self, url, etag, *, calendar_id, window_start, window_end, owner_email) -> FeedRead:
        events = tuple(replace(e, calendar_id=calendar_id) for e in self.feeds.get(url, []))
        return FeedRead(not_modified=False, etag=None, events=events)


def _event(event_id: str = "ev-1", *, cancelled: bool = False) -> CalendarEvent:
    return CalendarEvent(
        calendar_id="-",
        event_id=event_id,
        title="Planning",
        start=START,
        end=START + timedelta(minutes=30),
        all_day=False,
        cancelled=cancelled,
        declined_by_owner=False,
        meeting_url=URL,
        updated=T0,
    )


def _no_google() -> GoogleCalendars:
    raise AssertionError("an ICS calendar never asks for Google")


@pytest.fixture
def world():
    repo = MemoryRepository()
    clock = FixedClock(T0)
    deps = SyncDeps(
        repo=repo,
        scheduler=MemoryDispatchScheduler(),
        provider=MemoryBotProvider(),
        dispatch_queue=MemoryQueue(),
        dispatch_config=DispatchConfig(bot_name="Notetaker", public_base_url="", transcript_provider="deepgram"),
        clock=clock,
    )
    feeds = MemoryIcsFeeds()
    for calendar_id, user, url in (("ics-a", "alice", FEED), ("ics-b", "bob", FEED + "?bob")):
        repo.put_calendar(Calendar(calendar_id=calendar_id, kind=CalendarKind.ICS, user_id=user, feed_url=url), T0)
    return repo, deps, feeds


def _sync(calendar_id: str, deps: SyncDeps, feeds: MemoryIcsFeeds):
    return sync_calendar(calendar_id, deps=deps, ics=lambda: feeds, google=_no_google)


def test_a_feed_event_becomes_a_meeting_with_a_dispatch_schedule(world) -> None:
    repo, deps, feeds = world
    feeds.feeds[FEED] = [_event()]

    report = _sync("ics-a", deps, feeds)

    assert report.outcome == "synced" and report.actions["added"] == 1
    key = meeting_key(URL, START)
    meeting = repo.get_meeting(key)
    assert meeting is not None and meeting.user_ids == ["alice"]
    assert meeting.calendar_event_ids == [calendar_event_id("ics-a", "ev-1")]
    assert deps.scheduler.schedules == {key: START - timedelta(seconds=deps.dispatch_config.lead_time_seconds)}
    calendar = repo.get_calendar("ics-a")
    assert calendar is not None and calendar.last_synced_at == T0 and calendar.sync_lease_until is None


def test_the_same_meeting_on_two_calendars_is_one_meeting(world) -> None:
    repo, deps, feeds = world
    feeds.feeds[FEED] = [_event()]
    feeds.feeds[FEED + "?bob"] = [_event("ev-b")]

    _sync("ics-a", deps, feeds)
    _sync("ics-b", deps, feeds)

    meeting = repo.get_meeting(meeting_key(URL, START))
    assert meeting is not None and meeting.user_ids == ["alice", "bob"]
    assert len(meeting.calendar_event_ids) == 2
    assert len(deps.scheduler.schedules) == 1


def test_an_event_cancelled_in_the_feed_cancels_its_meeting_and_schedule(world) -> None:
    repo, deps, feeds = world
    feeds.feeds[FEED] = [_event()]
    _sync("ics-a", deps, feeds)
    feeds.feeds[FEED] = []  # gone from the feed

    report = _sync("ics-a", deps, feeds)

    assert report.outcome == "synced"
    meeting = repo.get_meeting(meeting_key(URL, START))
    assert meeting is not None and meeting.desired is DesiredState.CANCELLED
    assert deps.scheduler.schedules == {}
    assert repo.list_calendar_links("ics-a") == []


def test_a_meeting_kept_by_another_calendar_survives_one_calendar_dropping_it(world) -> None:
    repo, deps, feeds = world
    feeds.feeds[FEED] = [_event()]
    feeds.feeds[FEED + "?bob"] = [_event("ev-b")]
    _sync("ics-a", deps, feeds)
    _sync("ics-b", deps, feeds)
    feeds.feeds[FEED] = []

    _sync("ics-a", deps, feeds)

    meeting = repo.get_meeting(meeting_key(URL, START))
    assert meeting is not None and meeting.desired is DesiredState.RECORD
    assert meeting.calendar_event_ids == [calendar_event_id("ics-b", "ev-b")]


def test_a_calendar_another_sync_holds_answers_busy(world) -> None:
    repo, deps, feeds = world
    repo.claim_calendar_sync("ics-a", now=T0, lease_seconds=120)

    report = _sync("ics-a", deps, feeds)

    assert report.outcome == "busy" and report.retry_in == 120
