"""Which calendar events get a bot (per-calendar filters), calendar ids, feed addresses, push checks."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.domain.calendar import (
    Calendar,
    CalendarEvent,
    CalendarFilters,
    CalendarKind,
    CalendarRules,
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
    assert CalendarFilters is CalendarRules  # the old name still works


@pytest.mark.parametrize(
    "overrides,reason",
    [
        ({"cancelled": True}, "cancelled"),
        ({"declined_by_owner": True}, "declined by the calendar owner"),
        ({"owner_response": "declined"}, "declined by the calendar owner"),
        ({"all_day": True, "start": None, "end": None}, "all-day event"),
        ({"meeting_url": None}, "no meeting link"),
        ({"title": "1:1 [NO BOT] please"}, "opted out in the title: '[no bot]'"),
    ],
)
def test_events_that_get_no_bot_say_why(overrides, reason):
    assert bot_refusal(event(**overrides), CalendarRules()) == reason


def test_opt_out_word_is_configurable_and_can_be_turned_off():
    titled = event(title="Private [no bot]")
    assert bot_refusal(titled, CalendarRules(opt_out_word="")) is None
    assert bot_refusal(event(title="Offsite (private)"), CalendarRules(opt_out_word="(private)")) is not None


def test_minimum_attendees_counts_distinct_people_and_says_how_many():
    rules = CalendarRules(min_attendees=3)
    assert bot_refusal(event(), rules) == "rule min-attendees 3: 2 attendees"
    assert bot_refusal(event(attendees=("me@acme.test",)), rules) == "rule min-attendees 3: 1 attendee"
    assert bot_refusal(event(attendees=(*TEAM, "you@acme.test")), rules) == "rule min-attendees 3: 2 attendees"
    assert bot_refusal(event(attendees=(*TEAM, "them@acme.test")), rules) is None


def test_external_only_names_the_domains_it_saw():
    rules = CalendarRules(external_only=True, internal_domains=("Acme-EU.test",))
    assert bot_refusal(event(), rules, "me@acme.test") == "rule only-external: all attendees at acme.test"
    both = event(attendees=(*TEAM, "ops@acme-eu.test"))
    assert bot_refusal(both, rules, "me@acme.test") == "rule only-external: all attendees at acme-eu.test, acme.test"
    assert bot_refusal(event(attendees=(*TEAM, "buyer@customer.test")), rules, "me@acme.test") is None
    empty = event(attendees=())
    assert bot_refusal(empty, rules, "me@acme.test") == "rule only-external: the calendar lists no attendees"


def test_organiser_only_passes_the_owners_own_meetings_and_names_the_organiser_of_others():
    rules = CalendarRules(organizer_only=True)
    assert bot_refusal(event(organized_by_owner=True, owner_response="organizer"), rules) is None
    theirs = event(organized_by_owner=False, organizer="bob@x.com", owner_response="accepted")
    assert bot_refusal(theirs, rules) == "rule organiser-only: organised by bob@x.com"
    assert bot_refusal(event(organized_by_owner=False), rules) == "rule organiser-only: organised by someone else"


def test_accepted_only_passes_accepted_and_organised_meetings():
    rules = CalendarRules(accepted_only=True)
    assert bot_refusal(event(owner_response="accepted", organized_by_owner=False), rules) is None
    assert bot_refusal(event(owner_response="organizer", organized_by_owner=True), rules) is None
    assert bot_refusal(event(organized_by_owner=True), rules) is None
    tentative = event(owner_response="tentative", organized_by_owner=False)
    assert bot_refusal(tentative, rules) == "rule accepted-only: answered tentative"
    unanswered = event(owner_response="none", organized_by_owner=False)
    assert bot_refusal(unanswered, rules) == "rule accepted-only: not answered"


def test_unknown_organiser_or_answer_is_refused_with_a_reason_that_says_it_is_unknown():
    # A feed registered without the owner's address cannot say: such events are not silently
    # recorded, nor silently skipped.
    unknown = event()
    assert unknown.organized_by_owner is None and unknown.owner_response is None
    assert (
        bot_refusal(unknown, CalendarRules(organizer_only=True))
        == "rule organiser-only: the calendar does not say who organises it"
    )
    assert (
        bot_refusal(unknown, CalendarRules(accepted_only=True))
        == "rule accepted-only: the calendar does not say whether the owner accepted"
    )
    assert bot_refusal(unknown, CalendarRules()) is None  # without those rules, unknown does not matter


def test_title_keywords_any_of_and_none_of_ignore_case():
    wanted = CalendarRules(include_keywords=("Interview", "demo"))
    assert bot_refusal(event(title="Product DEMO for Acme"), wanted) is None
    assert bot_refusal(event(title="Standup"), wanted) == "rule keywords: title has none of interview, demo"
    unwanted = CalendarRules(exclude_keywords=("internal", "1:1"))
    assert bot_refusal(event(title="Internal sync"), unwanted) == "rule exclude-keywords: title has 'internal'"
    assert bot_refusal(event(title="Customer call"), unwanted) is None


def test_rules_combine_and_every_one_that_is_set_must_pass():
    rules = CalendarRules(
        external_only=True, organizer_only=True, min_attendees=3, include_keywords=("demo",), exclude_keywords=("dry",)
    )
    good = event(
        title="Demo",
        attendees=("me@acme.test", "a@customer.test", "b@customer.test"),
        organized_by_owner=True,
        owner_response="organizer",
    )
    assert bot_refusal(good, rules, "me@acme.test") is None
    refusals = {
        "title": (replace(good, title="Demo dry run"), "rule exclude-keywords: title has 'dry'"),
        "keywords": (replace(good, title="Review"), "rule keywords: title has none of demo"),
        "size": (replace(good, attendees=("me@acme.test", "a@customer.test")), "rule min-attendees 3: 2 attendees"),
        "internal": (
            replace(good, attendees=("me@acme.test", "a@acme.test", "b@acme.test")),
            "rule only-external: all attendees at acme.test",
        ),
        "organiser": (
            replace(good, organized_by_owner=False, organizer="a@customer.test", owner_response="accepted"),
            "rule organiser-only: organised by a@customer.test",
        ),
    }
    for name, (refused, reason) in refusals.items():
        assert bot_refusal(refused, rules, "me@acme.test") == reason, name


def test_rules_read_back_from_their_stored_form_and_old_items_keep_todays_behaviour():
    rules = CalendarRules(
        external_only=True, organizer_only=True, include_keywords=(" Demo ", "demo"), exclude_keywords=("X",)
    )
    assert rules.include_keywords == ("demo",) and rules.exclude_keywords == ("x",)
    assert CalendarRules.from_dict(rules.as_dict()) == rules
    old_item = {"external_only": False, "min_attendees": 0, "opt_out_word": "[no bot]", "internal_domains": []}
    assert CalendarRules.from_dict(old_item) == CalendarRules()


def test_negative_minimum_is_refused():
    with pytest.raises(InvalidInput):
        CalendarRules(min_attendees=-1)


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
