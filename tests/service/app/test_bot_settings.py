"""The bot a meeting gets: event override > calendar > user > stack, read when the bot is created;
a meeting on several calendars takes the earliest-connected calendar's settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meetpilot.app.bot_settings import set_user_bot_settings
from meetpilot.app.calendar_decisions import set_override, update_calendar_settings
from meetpilot.app.dispatch import MeetingRequest, submit_meeting
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.decisions import OverrideScope
from meetpilot.domain.meeting import meeting_key
from meetpilot.domain.session import TranscriptMode
from meetpilot.errors import InvalidInput
from tests.support.calendar_world import CONFIG, START, T0, URL, World, event

KEY = meeting_key(URL, START)


@pytest.fixture
def world() -> World:
    return World()


def _bot(world: World):
    world.clock.set(START - timedelta(minutes=5))
    return world.bot_request(world.dispatch(KEY))


def test_stack_defaults_when_nobody_set_anything(world):
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    request = _bot(world)
    assert (request.bot_name, request.transcript_provider, dict(request.automatic_leave)) == (
        "Stack Bot",
        "deepgram",
        dict(CONFIG.automatic_leave),
    )
    assert request.live_transcription_url is None


def test_each_level_beats_the_one_below_field_by_field(world):
    set_user_bot_settings(
        "alice",
        BotSettings(
            bot_name="User Bot", transcript_provider="assemblyai", automatic_leave={"waiting_room_timeout": 120}
        ),
        repo=world.repo,
        clock=world.clock,
    )
    world.calendar("ics-a", bot=BotSettings(bot_name="Calendar Bot", live_transcripts=True))
    world.publish("ics-a", event())
    world.sync("ics-a")
    set_override(
        "ics-a",
        "ev-1",
        record=True,
        scope=OverrideScope.OCCURRENCE,
        deps=world.deps,
        bot=BotSettings(bot_name="Event Bot", automatic_leave={"everyone_left_timeout": 30}),
    )
    request = _bot(world)
    assert request.bot_name == "Event Bot"  # event > calendar > user
    assert request.transcript_provider == "assemblyai"  # only the user set it
    assert request.live_transcription_url is not None  # the calendar turned it on
    assert dict(request.automatic_leave) == {
        **CONFIG.automatic_leave,
        "waiting_room_timeout": 120,
        "everyone_left_timeout": 30,
    }


def test_calendar_beats_user_and_user_beats_stack(world):
    set_user_bot_settings("alice", BotSettings(bot_name="User Bot"), repo=world.repo, clock=world.clock)
    world.calendar("ics-a")
    world.publish("ics-a", event())
    world.sync("ics-a")
    update_calendar_settings("ics-a", deps=world.deps, bot=BotSettings(transcript_provider="none"))
    world.clock.set(START - timedelta(minutes=5))
    result = world.dispatch(KEY)
    request = world.bot_request(result)
    assert (request.bot_name, request.transcript_provider) == ("User Bot", None)
    assert world.repo.get_session(result.session_id).transcript_mode is TranscriptMode.for_provider(None)


def test_a_change_after_the_meeting_was_scheduled_reaches_its_bot(world):
    world.calendar("ics-a", bot=BotSettings(bot_name="Before"))
    world.publish("ics-a", event())
    world.sync("ics-a")
    assert KEY in world.scheduler.schedules  # planned with the old settings
    update_calendar_settings("ics-a", deps=world.deps, bot=BotSettings(bot_name="After"))
    assert _bot(world).bot_name == "After"


def test_a_shared_meeting_has_one_bot_with_the_earliest_connected_calendars_settings(world):
    world.calendar("ics-late", "bob", bot=BotSettings(bot_name="Bob Bot"), created=T0 - timedelta(days=1))
    world.calendar("ics-early", "alice", bot=BotSettings(bot_name="Alice Bot"), created=T0 - timedelta(days=9))
    world.calendar("ics-tie", "carol", bot=BotSettings(bot_name="Carol Bot"), created=T0 - timedelta(days=9))
    for calendar_id in ("ics-late", "ics-tie", "ics-early"):
        world.publish(calendar_id, event(f"{calendar_id}-ev"))
        world.sync(calendar_id)
    # Same created_at for ics-early and ics-tie: the calendar id breaks the tie.
    assert _bot(world).bot_name == "Alice Bot"
    assert len(world.provider.bots) == 1


def test_the_settings_owner_leaving_hands_the_meeting_to_the_next_calendar(world):
    world.calendar("ics-early", "alice", bot=BotSettings(bot_name="Alice Bot"), created=T0 - timedelta(days=9))
    world.calendar("ics-late", "bob", bot=BotSettings(bot_name="Bob Bot"), created=T0 - timedelta(days=1))
    for calendar_id in ("ics-early", "ics-late"):
        world.publish(calendar_id, event(f"{calendar_id}-ev"))
        world.sync(calendar_id)
    world.publish("ics-early", event("ics-early-ev", declined_by_owner=True))
    world.sync("ics-early")
    assert _bot(world).bot_name == "Bob Bot"


def test_an_event_override_of_a_calendar_that_does_not_own_the_meeting_does_not_change_its_bot(world):
    world.calendar("ics-early", "alice", created=T0 - timedelta(days=9))
    world.calendar("ics-late", "bob", created=T0 - timedelta(days=1))
    for calendar_id in ("ics-early", "ics-late"):
        world.publish(calendar_id, event(f"{calendar_id}-ev"))
        world.sync(calendar_id)
    set_override(
        "ics-late",
        "ics-late-ev",
        record=True,
        scope=OverrideScope.OCCURRENCE,
        deps=world.deps,
        bot=BotSettings(bot_name="Ignored"),
    )
    assert _bot(world).bot_name == "Stack Bot"


def test_a_meeting_asked_for_directly_takes_its_users_settings(world):
    set_user_bot_settings("dora", BotSettings(bot_name="Dora Bot"), repo=world.repo, clock=world.clock)
    submit_meeting(MeetingRequest(URL, START, user_id="dora"), repo=world.repo, clock=world.clock)
    assert _bot(world).bot_name == "Dora Bot"


@pytest.mark.parametrize(
    "settings",
    [
        {"bot_name": "   "},
        {"transcript_provider": "deep gram!"},
        {"automatic_leave": {"nap_timeout": 60}},
        {"automatic_leave": {"waiting_room_timeout": 1}},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(InvalidInput):
        BotSettings(**settings)
