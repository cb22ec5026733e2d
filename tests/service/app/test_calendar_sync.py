"""Calendar sync on the local stack: ICS feeds over loopback converge meetings, schedules and bots.

One meeting per meeting key across calendars, moves, cancellations, revivals, the dispatcher racing
a cancellation, and feeds that fail or return garbage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.adapters.scheduler import at_expression, schedule_name
from meetpilot.app.calendars import CalendarBusy, list_calendars, remove_calendar
from meetpilot.app.dispatch import DispatchOutcome, MeetingRequest, submit_meeting
from meetpilot.app.ports import ClaimUnavailable
from meetpilot.domain.calendar import CalendarFilters, calendar_event_id
from meetpilot.domain.meeting import DesiredState, DispatchState, meeting_key
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.errors import InvalidInput, NotFound
from meetpilot_dev.fakes.feeds import FeedServer
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from meetpilot_dev.stack.scheduler_runner import rate_schedules_from_template
from tests.support.calendar_helpers import (
    Ev,
    dispatch,
    ics,
    live_bots,
    queued,
    register_ics,
    schedules,
    sync,
)
from tests.support.stacks import run_until

URL = "https://acme.zoom.us/j/85551234567?pwd=s3cret"
TEAMS = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjY5ZTQ2%40thread.v2/0"
    "?context=%7b%22Tid%22%3a%2272f988bf%22%7d"
)


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def _start(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def _meeting(stack, key):
    return stack.container.repository.get_meeting(key)


# --- one meeting, several calendars -----------------------------------------------------------


def test_same_meeting_on_three_calendars_gets_one_bot_until_the_last_event_is_cancelled(stack, feeds):
    start = _start(45)
    key = meeting_key(URL, start)
    owners = {"alice": "alice@acme.test", "bob": "bob@acme.test", "carol": "carol@acme.test"}
    calendars = {}
    for user, email in owners.items():
        # Each calendar has its own copy of the invitation (its own UID), the link written its own way.
        link = URL if user != "bob" else URL.replace("acme.zoom.us", "ACME.zoom.us") + "&utm_source=cal"
        event = Ev(f"{user}-uid", start, url=link, attendees=[(e, "ACCEPTED") for e in owners.values()])
        calendars[user] = register_ics(stack, user, feeds.publish(user, ics([event])), owner_email=email)

    meeting = _meeting(stack, key)
    assert meeting.desired is DesiredState.RECORD
    assert set(meeting.calendar_event_ids) == {calendar_event_id(c, f"{u}-uid") for u, c in calendars.items()}
    assert set(meeting.user_ids) == set(owners)
    assert list(schedules(stack)) == [schedule_name(key)]

    first = dispatch(stack, key)
    assert first.outcome is DispatchOutcome.CREATED
    assert dispatch(stack, key).outcome is DispatchOutcome.ALREADY_DISPATCHED
    assert stack.simulator.create_calls == 1

    # Alice deletes her copy, Bob's is cancelled: Carol's still wants the bot.
    feeds.publish("alice", ics([]))
    feeds.publish("bob", ics([Ev("bob-uid", start, url=URL, status="CANCELLED")]))
    sync(stack, calendars["alice"], calendars["bob"])
    meeting = _meeting(stack, key)
    assert meeting.desired is DesiredState.RECORD
    assert meeting.calendar_event_ids == [calendar_event_id(calendars["carol"], "carol-uid")]
    assert [b["bot_id"] for b in live_bots(stack)] == [first.bot_id]
    assert stack.session_for(key).outcome is None

    # Carol declines: the last event is gone, so is the bot (it had not joined yet).
    declined = Ev("carol-uid", start, url=URL, attendees=[("carol@acme.test", "DECLINED")])
    feeds.publish("carol", ics([declined]))
    sync(stack, calendars["carol"])
    meeting = _meeting(stack, key)
    assert meeting.desired is DesiredState.CANCELLED
    assert live_bots(stack) == []
    (bot,) = stack.simulator.bots()
    assert bot["cancelled"] is True
    session = stack.session_for(key)
    assert session.outcome is Outcome.CANCELLED and not session.needs_review
    assert stack.simulator.create_calls == 1
    assert stack.handler_errors == []


def test_a_meeting_submitted_directly_keeps_its_bot_when_its_calendar_event_goes(stack, feeds):
    start = _start(50)
    key = meeting_key(URL, start)
    c = stack.container
    submit_meeting(MeetingRequest(URL, start, user_id="dora"), repo=c.repository, clock=c.clock)
    cal = register_ics(stack, "dora", feeds.publish("dora", ics([Ev("d1", start, url=URL)])))
    feeds.publish("dora", ics([]))
    sync(stack, cal)
    meeting = _meeting(stack, key)
    assert meeting.desired is DesiredState.RECORD and meeting.calendar_event_ids == []
    assert schedule_name(key) in schedules(stack)


# --- moves ------------------------------------------------------------------------------------


def test_meeting_moved_by_an_hour_moves_its_schedule(stack, feeds):
    start = _start(120)
    cal = register_ics(stack, "erin", feeds.publish("erin", ics([Ev("weekly", start, url=URL)])))
    old_key, new_key = meeting_key(URL, start), meeting_key(URL, start + timedelta(hours=1))
    lead = timedelta(seconds=stack.container.dispatch_config.lead_time_seconds)
    assert schedules(stack) == {schedule_name(old_key): at_expression(start - lead)}

    feeds.publish("erin", ics([Ev("weekly", start + timedelta(hours=1), url=URL, sequence=1)]))
    sync(stack, cal)

    assert schedules(stack) == {schedule_name(new_key): at_expression(start + timedelta(hours=1) - lead)}
    assert _meeting(stack, old_key).desired is DesiredState.CANCELLED
    moved = _meeting(stack, new_key)
    assert moved.desired is DesiredState.RECORD and moved.calendar_event_ids == [calendar_event_id(cal, "weekly")]
    link = stack.container.repository.get_calendar_link(cal, "weekly")
    assert link.meeting_key == new_key
    assert stack.simulator.create_calls == 0


def test_moved_meeting_replaces_its_waiting_bot_and_never_leaves_two(stack, feeds):
    start = _start(30)
    cal = register_ics(stack, "fay", feeds.publish("fay", ics([Ev("m1", start, url=URL)])))
    first = dispatch(stack, meeting_key(URL, start))
    assert first.outcome is DispatchOutcome.CREATED
    assert stack.session_for(meeting_key(URL, start)).status is BotStatus.SCHEDULED

    later = start + timedelta(hours=1)
    feeds.publish("fay", ics([Ev("m1", later, url=URL, sequence=1)]))
    sync(stack, cal)
    assert live_bots(stack) == []  # the waiting bot was cancelled at once
    assert stack.session_for(meeting_key(URL, start)).outcome is Outcome.CANCELLED

    second = dispatch(stack, meeting_key(URL, later))
    assert second.outcome is DispatchOutcome.CREATED and second.bot_id != first.bot_id
    assert [b["bot_id"] for b in live_bots(stack)] == [second.bot_id]


def test_meeting_moved_into_the_past_gets_no_bot(stack, feeds):
    start = _start(90)
    cal = register_ics(stack, "gus", feeds.publish("gus", ics([Ev("m1", start, url=URL)])))
    past = datetime.now(UTC) - timedelta(minutes=50)
    feeds.publish("gus", ics([Ev("m1", past, minutes=30, url=URL, sequence=1)]))
    sync(stack, cal)
    assert stack.container.repository.get_meeting(meeting_key(URL, past)) is None
    assert _meeting(stack, meeting_key(URL, start)).desired is DesiredState.CANCELLED
    assert schedules(stack) == {}


# --- cancellations ----------------------------------------------------------------------------


def test_cancelled_meeting_gets_no_bot(stack, feeds):
    start = _start(40)
    key = meeting_key(URL, start)
    cal = register_ics(stack, "hal", feeds.publish("hal", ics([Ev("m1", start, url=URL)])))
    assert schedule_name(key) in schedules(stack)
    feeds.publish("hal", ics([Ev("m1", start, url=URL, status="CANCELLED", sequence=1)]))
    sync(stack, cal)
    assert schedules(stack) == {}
    # A dispatch message already on its way (the schedule fired just before) is refused.
    result = dispatch(stack, key)
    assert result.outcome is DispatchOutcome.SKIPPED and "cancelled" in result.reason
    assert stack.simulator.create_calls == 0


# A bot that stays in its call for minutes, so that it is there when the meeting is cancelled.
SLOW_CALL = {"speed": 4.0, "simulator_overrides": {"meeting_seconds": 3600.0, "step_seconds": 1.0}}


def test_cancelled_meeting_with_its_bot_in_the_call_has_the_bot_removed(stack_factory, feeds):
    stack = stack_factory(**SLOW_CALL)
    start = datetime.now(UTC) + timedelta(seconds=2)
    key = meeting_key(URL, start)
    cal = register_ics(stack, "ivy", feeds.publish("ivy", ics([Ev("now", start, url=URL)])))
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.status is BotStatus.RECORDING)

    feeds.publish("ivy", ics([Ev("now", start, url=URL, status="CANCELLED", sequence=1)]))
    sync(stack, cal)
    session = stack.session_for(key)
    assert session.outcome is Outcome.CANCELLED
    assert run_until(stack, lambda: live_bots(stack) == [], timeout=20)
    assert stack.simulator.bots()[0]["cancelled"] is False  # removed from the call, not a scheduled cancel
    assert stack.session_for(key).outcome is Outcome.CANCELLED  # later webhooks do not change it


def test_bot_stays_in_the_call_when_removal_on_cancel_is_off(stack_factory, feeds):
    stack = stack_factory(**SLOW_CALL)
    start = datetime.now(UTC) + timedelta(seconds=2)
    key = meeting_key(URL, start)
    cal = register_ics(stack, "jon", feeds.publish("jon", ics([Ev("now", start, url=URL)])))
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.status is BotStatus.RECORDING)
    deps = stack.container.calendar_sync_deps
    deps.dispatch_config = type(deps.dispatch_config)(
        **{**deps.dispatch_config.__dict__, "remove_bot_on_cancel": False}
    )
    feeds.publish("jon", ics([Ev("now", start, url=URL, status="CANCELLED", sequence=1)]))
    sync(stack, cal)
    assert _meeting(stack, key).desired is DesiredState.CANCELLED
    assert len(live_bots(stack)) == 1
    assert stack.session_for(key).outcome is None  # it records as usual


def test_dispatcher_mid_create_withdraws_the_bot_of_a_meeting_cancelled_meanwhile(stack, feeds):
    start = _start(30)
    key = meeting_key(URL, start)
    cal = register_ics(stack, "kim", feeds.publish("kim", ics([Ev("m1", start, url=URL)])))
    feeds.publish("kim", ics([]))

    class CancelDuringCreate:
        def __init__(self, inner):
            self.inner = inner

        def create_bot(self, request, *, idempotency_key):
            created = self.inner.create_bot(request, idempotency_key=idempotency_key)
            sync(stack, cal)  # the calendar sync runs while the provider is answering
            return created

        def __getattr__(self, name):
            return getattr(self.inner, name)

    c = stack.container
    from meetpilot.app.dispatch import dispatch_meeting

    result = dispatch_meeting(
        key,
        attempt=0,
        repo=c.repository,
        provider=CancelDuringCreate(c.provider),
        secrets=c.secrets,
        config=c.dispatch_config,
        clock=c.clock,
    )
    assert result.outcome is DispatchOutcome.CANCELLED
    assert live_bots(stack) == [] and stack.simulator.bots()[0]["cancelled"] is True
    assert stack.container.repository.get_session(result.session_id).outcome is Outcome.CANCELLED


def test_cancelled_meeting_revived_gets_a_fresh_session_and_key(stack, feeds):
    start = _start(30)
    key = meeting_key(URL, start)
    cal = register_ics(stack, "lou", feeds.publish("lou", ics([Ev("m1", start, url=URL)])))
    first = dispatch(stack, key)
    old = _meeting(stack, key)
    feeds.publish("lou", ics([]))
    sync(stack, cal)
    assert _meeting(stack, key).desired is DesiredState.CANCELLED

    feeds.publish("lou", ics([Ev("m1", start, url=URL, sequence=2)]))
    sync(stack, cal)
    revived = _meeting(stack, key)
    assert revived.desired is DesiredState.RECORD and revived.dispatch_state is DispatchState.PENDING
    assert revived.session_id is None and revived.idempotency_key is None and revived.bot_id is None
    assert revived.deduplication_key != old.deduplication_key
    assert schedule_name(key) in schedules(stack)

    second = dispatch(stack, key)
    assert second.outcome is DispatchOutcome.CREATED  # not a 507 replay of the cancelled bot
    assert second.bot_id != first.bot_id and second.session_id != old.session_id
    assert _meeting(stack, key).idempotency_key != old.idempotency_key
    assert [b["bot_id"] for b in live_bots(stack)] == [second.bot_id]


# --- which events get a bot -------------------------------------------------------------------


def test_calendar_filters_and_teams_link_only_in_the_description(stack, feeds):
    start = _start(60)
    team = [("me@acme.test", "ACCEPTED"), ("you@acme.test", "ACCEPTED")]
    guest = [*team, ("guest@partner.test", "ACCEPTED")]
    events = [
        Ev("external", start, url=URL + "1", attendees=guest),
        Ev("internal", start, url=URL + "2", attendees=team),
        Ev("opted-out", start, url=URL + "3", attendees=guest, title="Sync [No Bot]"),
        Ev("teams", start, url=TEAMS, attendees=guest, where="DESCRIPTION"),
        Ev("no-link", start, attendees=guest),
    ]
    filters = CalendarFilters(external_only=True, min_attendees=3)
    cal = register_ics(stack, "me", feeds.publish("me", ics(events)), owner_email="me@acme.test", filters=filters)
    links = {link.event_id for link in stack.container.repository.list_calendar_links(cal)}
    assert links == {"external", "teams"}
    assert _meeting(stack, meeting_key(TEAMS, start)) is not None


# --- feeds that fail --------------------------------------------------------------------------


def test_a_feed_that_returns_garbage_changes_nothing(stack, feeds, caplog):
    # Everything our code and the HTTP client log (botocore's DEBUG dumps of whole items are off in Lambda).
    caplog.set_level(logging.INFO)
    for name in ("meetpilot", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    start = _start(60)
    url = feeds.publish("max", ics([Ev("m1", start, url=URL), Ev("m2", start, url=TEAMS)]))
    cal = register_ics(stack, "max", url)
    repo = stack.container.repository
    before = {k: repo.get_meeting(k) for k in (meeting_key(URL, start), meeting_key(TEAMS, start))}
    etag = repo.get_calendar(cal).etag
    planned = schedules(stack)

    for broken in ("<html><body>Please sign in</body></html>", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:nonsense"):
        feeds.publish("max", broken, content_type="text/html")
        sync(stack, cal)
        calendar = repo.get_calendar(cal)
        assert "not valid iCalendar" in calendar.last_error or "cannot be read" in calendar.last_error
        assert calendar.etag == etag
        assert {k: repo.get_meeting(k) for k in before} == before
        assert schedules(stack) == planned
    feeds.publish("max", ics([Ev("m1", start, url=URL), Ev("m2", start, url=TEAMS)]))
    feeds.fail("max", 503)
    sync(stack, cal)
    assert "503" in repo.get_calendar(cal).last_error
    assert {k: repo.get_meeting(k) for k in before} == before
    assert len(repo.list_calendar_links(cal)) == 2
    secret_path = url.split("/", 3)[3]
    assert secret_path not in caplog.text and secret_path not in repr(repo.get_calendar(cal))
    assert stack.handler_errors == []

    feeds.publish("max", ics([Ev("m1", start, url=URL), Ev("m2", start, url=TEAMS)]))
    sync(stack, cal)
    assert repo.get_calendar(cal).last_error is None


def test_unchanged_feed_costs_one_304_and_changes_nothing(stack, feeds):
    start = _start(60)
    cal = register_ics(stack, "ned", feeds.publish("ned", ics([Ev("m1", start, url=URL)])))
    sync(stack, cal)
    assert feeds.not_modified["ned"] == 1
    assert len(stack.container.repository.list_calendar_links(cal)) == 1


def test_poller_queues_every_ics_feed_every_ten_minutes(stack, feeds):
    a = register_ics(stack, "ola", feeds.publish("ola", ics([])))
    b = register_ics(stack, "pia", feeds.publish("pia", ics([])))
    c = stack.container
    # The local scheduler runner runs the template's rate schedule, as EventBridge Scheduler does.
    (poll,) = [
        r
        for r in rate_schedules_from_template(stack.template, load_handler)
        if r.function_name == "CalendarPollFunction"
    ]
    assert poll.every_seconds == 600
    assert poll.handler(dict(poll.payload), LambdaContext(poll.function_name)) == {"ics_queued": 2}
    assert queued(stack) == 2
    before = {cal: c.repository.get_calendar(cal).last_synced_at for cal in (a, b)}
    time.sleep(0.01)
    stack.drain()
    assert all(c.repository.get_calendar(cal).last_synced_at > before[cal] for cal in (a, b))


# --- registration and removal -----------------------------------------------------------------


def test_registering_the_same_feed_twice_finds_the_first_registration(stack, feeds):
    url = feeds.publish("quinn", ics([Ev("m1", _start(60), url=URL)]))
    first = register_ics(stack, "quinn", url)
    assert register_ics(stack, "quinn", url) == first
    assert register_ics(stack, "rita", url) != first  # another user's copy of the feed is another calendar
    c = stack.container
    assert [cal.user_id for cal in list_calendars(repo=c.repository)] == ["quinn", "rita"]
    assert [cal.calendar_id for cal in list_calendars(repo=c.repository, user_id="quinn")] == [first]
    assert url not in repr(c.repository.get_calendar(first))
    with pytest.raises(InvalidInput):
        register_ics(stack, "quinn", "file:///etc/passwd")


def test_removing_a_calendar_withdraws_only_what_it_alone_asked_for(stack, feeds):
    shared, alone = _start(40), _start(50)
    alice = register_ics(
        stack, "alice", feeds.publish("alice", ics([Ev("a1", shared, url=URL), Ev("a2", alone, url=TEAMS)]))
    )
    bob = register_ics(stack, "bob", feeds.publish("bob", ics([Ev("b1", shared, url=URL)])))
    shared_bot = dispatch(stack, meeting_key(URL, shared))
    alone_bot = dispatch(stack, meeting_key(TEAMS, alone))
    c = stack.container

    removal = remove_calendar(alice, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)

    assert removal.actions == {"kept": 1, "bot_cancelled": 1}
    assert c.repository.get_calendar(alice) is None and c.repository.list_calendar_links(alice) == []
    assert _meeting(stack, meeting_key(URL, shared)).calendar_event_ids == [calendar_event_id(bob, "b1")]
    assert _meeting(stack, meeting_key(TEAMS, alone)).desired is DesiredState.CANCELLED
    assert [b["bot_id"] for b in live_bots(stack)] == [shared_bot.bot_id]
    assert alone_bot.bot_id not in {b["bot_id"] for b in live_bots(stack)}
    with pytest.raises(NotFound):
        remove_calendar(alice, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)
    # A sync job for the removed calendar, already queued, is dropped.
    sync(stack, alice)
    assert c.repository.list_calendar_links(alice) == []


def test_removal_waits_for_a_running_sync_and_no_new_sync_starts(stack, feeds):
    cal = register_ics(stack, "sam", feeds.publish("sam", ics([Ev("m1", _start(60), url=URL)])))
    c = stack.container
    c.repository.claim_calendar_sync(cal, now=c.clock.now(), lease_seconds=60)  # a sync is running
    with pytest.raises(CalendarBusy):
        remove_calendar(cal, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)
    calendar = c.repository.get_calendar(cal)
    assert calendar.removing is True
    with pytest.raises(ClaimUnavailable):
        c.repository.claim_calendar_sync(cal, now=c.clock.now() + timedelta(minutes=5), lease_seconds=60)
    c.repository.release_calendar_sync(cal)
    remove_calendar(cal, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)
    assert c.repository.get_calendar(cal) is None
    assert _meeting(stack, meeting_key(URL, _start(60))).desired is DesiredState.CANCELLED


def test_a_sync_that_finds_its_calendar_busy_comes_back_later(stack, feeds):
    cal = register_ics(stack, "tom", feeds.publish("tom", ics([])))
    c = stack.container
    c.repository.claim_calendar_sync(cal, now=c.clock.now(), lease_seconds=60)
    before = feeds.requests["tom"]
    sync(stack, cal)
    assert feeds.requests["tom"] == before  # the feed was not read twice at once
    assert queued(stack) == 1  # the job waits in the queue (delayed) for the lease to end
