"""Every occurrence a sync sees keeps a decision with a reason support can read, and the listing
joins it with its meeting: recorded (and by which bot), shared with another calendar, disconnected."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meetpilot.app.calendar_decisions import list_decisions
from meetpilot.app.calendar_sync import REMOVED_AT_SOURCE
from meetpilot.domain.calendar import CalendarRules
from meetpilot.domain.meeting import meeting_key
from meetpilot.errors import InvalidInput
from tests.support.calendar_world import START, T0, URL, World, event


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize(
    "fields,reason",
    [
        ({"meeting_url": None}, "no meeting link"),
        ({"declined_by_owner": True}, "declined by the calendar owner"),
        ({"cancelled": True}, "cancelled"),
        ({"all_day": True, "start": None, "end": None}, "all-day event"),
        ({"title": "Retro [no bot]"}, "opted out in the title: '[no bot]'"),
        ({"start": START + timedelta(days=20), "end": None}, "beyond the 14-day horizon"),
        ({"meeting_url": "https:///"}, "the meeting link is not one a bot can join"),
    ],
)
def test_each_occurrence_that_gets_no_bot_keeps_a_decision_saying_why(world, fields, reason):
    world.calendar("ics-a")
    world.publish("ics-a", event(**fields))
    world.sync("ics-a")
    decision = world.decision("ics-a")
    assert (decision.recorded, decision.reason, decision.meeting_key) == (False, reason, None)


def test_a_recorded_occurrence_names_its_meeting_and_the_listing_its_bot(world):
    world.calendar("ics-a")
    world.publish("ics-a", event(title="Planning " + "x" * 400))
    world.sync("ics-a")
    key = meeting_key(URL, START)
    decision = world.decision("ics-a")
    assert (decision.recorded, decision.reason, decision.meeting_key) == (True, "recorded", key)
    assert len(decision.title) == 300 and decision.facts.attendee_domains == ("acme.test",)
    assert decision.facts.attendee_count == 2

    world.clock.set(START - timedelta(minutes=5))
    result = world.dispatch(key)
    (view,) = list_decisions("ics-a", repo=world.repo, clock=world.clock).items
    assert (view.recorded, view.reason, view.bot_id, view.session_id) == (
        True,
        "recorded",
        result.bot_id,
        result.session_id,
    )


def test_rule_refusals_are_kept_with_the_rule_and_what_the_event_said(world):
    world.calendar("ics-a", rules=CalendarRules(external_only=True, min_attendees=2))
    world.publish("ics-a", event("ev-1"), event("ev-2", attendees=("alice@acme.test",)))
    world.sync("ics-a")
    assert world.decision("ics-a", "ev-1").reason == "rule only-external: all attendees at acme.test"
    assert world.decision("ics-a", "ev-2").reason == "rule min-attendees 2: 1 attendee"


def test_a_meeting_on_two_calendars_has_one_bot_and_the_later_calendar_says_whose_settings_it_uses(world):
    world.calendar("ics-early", "alice", created=T0 - timedelta(days=3), label="Alice work")
    world.calendar("ics-late", "bob", owner_email="bob@acme.test", created=T0 - timedelta(days=1))
    world.publish("ics-early", event("a-1"))
    world.publish("ics-late", event("b-1"))
    world.sync("ics-late")  # the later-connected calendar syncs first: the rule is not "first come"
    world.sync("ics-early")

    meeting = world.repo.get_meeting(meeting_key(URL, START))
    assert meeting is not None and len(meeting.calendar_event_ids) == 2
    (late,) = list_decisions("ics-late", repo=world.repo, clock=world.clock).items
    assert late.recorded and late.settings_from == "ics-early"
    assert late.reason == (
        "shared with ics-early (Alice work): one bot for this meeting, using ics-early (Alice work)'s settings"
    )
    (early,) = list_decisions("ics-early", repo=world.repo, clock=world.clock).items
    assert (early.reason, early.settings_from) == ("recorded", None)
    world.clock.set(START - timedelta(minutes=5))
    world.dispatch(meeting.meeting_key)
    assert len(world.provider.bots) == 1


def test_a_moved_event_keeps_one_decision_at_its_new_time(world):
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    moved = START + timedelta(hours=2)
    world.publish("ics-a", event(start=moved, end=moved + timedelta(minutes=30)))
    world.sync("ics-a")
    decisions = world.repo.list_decisions("ics-a")
    assert [(d.event_id, d.start, d.meeting_key) for d in decisions] == [("ev-1", moved, meeting_key(URL, moved))]


def test_an_event_gone_from_a_complete_feed_says_it_was_removed(world):
    world.calendar("ics-a")
    world.publish("ics-a", event("ev-1"), event("ev-2", meeting_url=None))
    world.sync("ics-a")
    world.publish("ics-a")
    world.sync("ics-a")
    for event_id in ("ev-1", "ev-2"):
        decision = world.decision("ics-a", event_id)
        assert (decision.recorded, decision.reason) == (False, REMOVED_AT_SOURCE)


def test_an_unchanged_event_is_not_written_again(world):
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    first = world.decision("ics-a")
    world.clock.advance(600)
    world.sync("ics-a")
    assert world.decision("ics-a").decided_at == first.decided_at


def test_decisions_of_a_disconnected_calendar_say_so(world):
    from dataclasses import replace

    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    stored = world.repo.table.calendars["ics-a"]
    world.repo.table.calendars["ics-a"] = replace(stored, disconnected_reason="Google refused the refresh token")
    (view,) = list_decisions("ics-a", repo=world.repo, clock=world.clock).items
    assert view.reason == "calendar disconnected (Google refused the refresh token); as of its last sync: recorded"


def test_listing_bounds_and_pages_by_start(world):
    world.calendar("ics-a")
    events = [event(f"ev-{i}", start=START + timedelta(hours=i), end=None) for i in range(5)]
    world.publish("ics-a", *events, event("allday", all_day=True, start=None, end=None))
    world.sync("ics-a")

    window = list_decisions(
        "ics-a",
        repo=world.repo,
        clock=world.clock,
        start_from=START + timedelta(hours=1),
        start_to=START + timedelta(hours=3),
    )
    assert [v.decision.event_id for v in window.items] == ["allday", "ev-1", "ev-2"]
    seen, cursor = [], None
    while True:
        page = list_decisions("ics-a", repo=world.repo, clock=world.clock, limit=2, cursor=cursor)
        seen += [v.decision.event_id for v in page.items]
        if not (cursor := page.cursor):
            break
    assert seen == ["allday", "ev-0", "ev-1", "ev-2", "ev-3", "ev-4"]


@pytest.mark.parametrize(
    "bounds,message",
    [
        ({"start_from": START, "start_to": START}, "to: must be after from"),
        ({"start_from": START, "start_to": START + timedelta(days=90)}, "from/to: at most 62 days at a time"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor:"),
    ],
)
def test_bad_listing_bounds_are_refused_with_the_field(world, bounds, message):
    world.calendar("ics-a")
    with pytest.raises(InvalidInput) as refused:
        list_decisions("ics-a", repo=world.repo, clock=world.clock, **bounds)
    assert str(refused.value).startswith(message)


def test_occurrences_far_beyond_the_horizon_are_not_kept_until_they_come_closer(world):
    world.calendar("ics-a")
    world.publish(
        "ics-a",
        event("near", start=START + timedelta(days=20), end=None),
        event("far", start=START + timedelta(days=40), end=None),
    )
    world.sync("ics-a")
    assert [d.event_id for d in world.repo.list_decisions("ics-a")] == ["near"]
