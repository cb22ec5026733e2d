"""Per-event overrides: they beat every rule, apply at once, follow a moved event, cover a series
(an occurrence's own beats its series'), and go with the event or the calendar."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meetpilot.app.calendar_decisions import remove_override, set_override
from meetpilot.app.calendars import remove_calendar
from meetpilot.domain.calendar import CalendarRules
from meetpilot.domain.decisions import OverrideScope
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot.errors import Conflict, NotFound
from tests.support.calendar_world import START, URL, World, event

OCC, SERIES = OverrideScope.OCCURRENCE, OverrideScope.SERIES


@pytest.fixture
def world() -> World:
    return World()


def _key(start=START) -> str:
    return meeting_key(URL, start)


def _wanted(world: World, start=START) -> bool:
    meeting = world.repo.get_meeting(_key(start))
    return meeting is not None and meeting.desired is DesiredState.RECORD and bool(meeting.calendar_event_ids)


def test_record_override_beats_a_rule_at_once_and_removing_it_lets_the_rule_decide_again(world):
    world.calendar("ics-a", rules=CalendarRules(external_only=True))
    world.publish("ics-a", event())  # internal: the rule says no
    world.sync("ics-a")
    assert not _wanted(world) and world.decision("ics-a").reason.startswith("rule only-external")

    result = set_override("ics-a", "ev-1", record=True, scope=OCC, deps=world.deps)  # no sync in between
    assert _wanted(world) and _key() in world.scheduler.schedules
    assert [(d.recorded, d.reason) for d in result.decisions] == [(True, "override: record")]

    world.sync("ics-a")  # the next sync agrees
    assert world.decision("ics-a").reason == "override: record"

    remove_override("ics-a", "ev-1", scope=OCC, deps=world.deps)
    assert not _wanted(world) and world.decision("ics-a").reason.startswith("rule only-external")


def test_skip_override_withdraws_a_meeting_the_rules_want(world):
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    assert _wanted(world)
    set_override("ics-a", "ev-1", record=False, scope=OCC, deps=world.deps)
    assert world.repo.get_meeting(_key()).desired is DesiredState.CANCELLED
    assert world.decision("ics-a").reason == "override: skip"
    world.sync("ics-a")
    assert world.repo.get_meeting(_key()).desired is DesiredState.CANCELLED


def test_record_override_still_needs_a_link(world):
    world.calendar("ics-a")
    world.publish("ics-a", event(meeting_url=None))
    world.sync("ics-a")
    set_override("ics-a", "ev-1", record=True, scope=OCC, deps=world.deps)
    assert world.decision("ics-a").reason == "no meeting link" and not world.repo.table.meetings


def test_override_follows_a_moved_event(world):
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    set_override("ics-a", "ev-1", record=False, scope=OCC, deps=world.deps)
    moved = START + timedelta(hours=3)
    world.publish("ics-a", event(start=moved, end=moved + timedelta(minutes=30)))
    world.sync("ics-a")
    assert not _wanted(world, moved) and world.decision("ics-a").reason == "override: skip"
    assert world.repo.get_override("ics-a", OCC, "ev-1") is not None


def _series(n: int = 3):
    return [
        event(f"weekly/{i}", start=START + timedelta(days=i), end=None, recurring_event_id="weekly") for i in range(n)
    ]


def test_series_override_covers_every_instance_and_an_occurrence_override_beats_it(world):
    world.calendar("ics-a", rules=CalendarRules(min_attendees=5))
    world.publish("ics-a", *_series())
    world.sync("ics-a")
    assert not any(_wanted(world, START + timedelta(days=i)) for i in range(3))

    result = set_override("ics-a", "weekly/1", record=True, scope=SERIES, deps=world.deps)
    assert result.override.target_id == "weekly" and len(result.decisions) == 3
    assert all(_wanted(world, START + timedelta(days=i)) for i in range(3))
    assert world.decision("ics-a", "weekly/0").reason == "override: record (whole series)"

    set_override("ics-a", "weekly/2", record=False, scope=OCC, deps=world.deps)
    world.sync("ics-a")
    assert [_wanted(world, START + timedelta(days=i)) for i in range(3)] == [True, True, False]
    assert world.decision("ics-a", "weekly/2").reason == "override: skip"


def test_an_override_is_removed_with_its_cancelled_event(world):
    world.calendar("ics-a")
    world.publish("ics-a", event(), event("ev-2"))
    world.sync("ics-a")
    set_override("ics-a", "ev-1", record=False, scope=OCC, deps=world.deps)
    set_override("ics-a", "ev-2", record=False, scope=OCC, deps=world.deps)
    world.publish("ics-a", event(cancelled=True))  # ev-1 cancelled, ev-2 deleted from the feed
    world.sync("ics-a")
    assert world.repo.list_overrides("ics-a") == []
    assert world.decision("ics-a").reason == "cancelled"


def test_a_series_override_goes_when_its_series_is_deleted(world):
    world.calendar("ics-a")
    world.publish("ics-a", *_series(2))
    world.sync("ics-a")
    set_override("ics-a", "weekly", record=False, scope=SERIES, deps=world.deps)
    # Google reports a deleted series by the series id alone, without times.
    world.publish("ics-a", event("weekly", cancelled=True, start=None, end=None))
    from meetpilot.app.calendar_sync import converge_all

    converge_all(
        [event("weekly", calendar_id="ics-a", cancelled=True, start=None, end=None)],
        world.repo.get_calendar("ics-a"),
        world.deps,
    )
    assert world.repo.list_overrides("ics-a") == []
    assert {world.decision("ics-a", f"weekly/{i}").reason for i in range(2)} == {"cancelled"}


def test_removing_the_calendar_removes_its_overrides_and_decisions(world):
    world.calendar("ics-a")
    world.publish("ics-a", *_series(2))
    world.sync("ics-a")
    set_override("ics-a", "weekly/0", record=False, scope=SERIES, deps=world.deps)
    remove_calendar("ics-a", deps=world.deps, google=lambda: None)
    assert world.repo.table.overrides == {} and world.repo.table.decisions == {}


def test_overrides_need_an_event_the_sync_saw_and_one_that_is_not_cancelled(world):
    world.calendar("ics-a")
    world.publish("ics-a", event(cancelled=True))
    world.sync("ics-a")
    with pytest.raises(NotFound):
        set_override("ics-a", "never-seen", record=True, scope=OCC, deps=world.deps)
    with pytest.raises(NotFound):
        set_override("ics-a", "never-seen", record=True, scope=SERIES, deps=world.deps)
    with pytest.raises(Conflict):
        set_override("ics-a", "ev-1", record=True, scope=OCC, deps=world.deps)
    with pytest.raises(NotFound):
        remove_override("ics-a", "ev-1", scope=OCC, deps=world.deps)
