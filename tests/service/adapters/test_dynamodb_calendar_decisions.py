"""Contract tests for decisions, overrides, user bot settings and calendar rules, on moto, DynamoDB
Local and the in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.ports import Storage
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import Calendar, CalendarKind, CalendarRules, EventFacts
from meetpilot.domain.decisions import Decision, EventOverride, OverrideScope
from meetpilot.domain.retention import LINK_RETENTION
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    StorageBackend,
    dynamodb_local,
    moto_server,
    storage_backend,
)

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


@pytest.fixture
def repo(storage_backend: StorageBackend) -> Storage:  # noqa: F811 - the fixture, by name
    return storage_backend.repo


def _decision(event_id: str, start: datetime | None, **fields) -> Decision:
    values = {
        "calendar_id": "ics-1",
        "event_id": event_id,
        "start": start,
        "end": start + timedelta(minutes=30) if start else None,
        "recorded": False,
        "reason": "rule min-attendees 3: 2 attendees",
        "decided_at": T0,
        "facts": EventFacts(
            title="Planning",
            owner_response="accepted",
            organized_by_owner=False,
            organizer="bob@x.test",
            attendee_count=2,
            attendee_domains=("acme.test", "x.test"),
        ),
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        "recurring_event_id": "weekly",
        **fields,
    }
    return Decision(**values)


def test_decisions_round_trip_overwrite_by_event_and_list_by_start(repo: Storage) -> None:
    later, sooner = _decision("ev-b", T0 + timedelta(hours=2)), _decision("ev-a", T0 + timedelta(hours=5))
    allday = _decision("ev-c", None, all_day=True, reason="all-day event", facts=EventFacts())
    for d in (later, sooner, allday):
        repo.put_decision(d)
    assert repo.get_decision("ics-1", "ev-b") == later
    assert [d.event_id for d in repo.list_decisions("ics-1")] == ["ev-c", "ev-b", "ev-a"]
    moved = _decision("ev-b", T0 + timedelta(hours=9), recorded=True, reason="recorded", meeting_key="k|m")
    repo.put_decision(moved)
    assert repo.get_decision("ics-1", "ev-b") == moved
    assert [d.event_id for d in repo.list_decisions("ics-1")] == ["ev-c", "ev-a", "ev-b"]
    repo.delete_decision("ics-1", "ev-b")
    assert repo.get_decision("ics-1", "ev-b") is None and repo.list_decisions("other") == []


def test_decision_items_expire_with_their_event_and_leave_the_links_listing_alone(
    repo: Storage,
    storage_backend: StorageBackend,  # noqa: F811
) -> None:
    start = T0 + timedelta(hours=2)
    repo.put_decision(_decision("ev-a", start))
    assert repo.list_calendar_links("ics-1") == []
    table = storage_backend.table()
    raw = table.client.get_item(
        TableName=table.table_name, Key={"pk": {"S": "CALENDAR#ics-1"}, "sk": {"S": "DECISION#ev-a"}}
    )["Item"]
    expected = int((start + timedelta(minutes=30) + LINK_RETENTION).timestamp())
    assert int(raw["expires_at"]["N"]) == expected
    assert "alice" not in str(raw) and raw["attendee_count"]["N"] == "2"  # counts, not addresses


def test_overrides_by_scope_and_target(repo: Storage) -> None:
    occ = EventOverride("ics-1", "weekly/1", OverrideScope.OCCURRENCE, False, set_at=T0, until=T0 + timedelta(hours=1))
    series = EventOverride(
        "ics-1", "weekly", OverrideScope.SERIES, True, bot=BotSettings(bot_name="Series Bot"), set_at=T0
    )
    repo.put_override(occ)
    repo.put_override(series)
    assert repo.get_override("ics-1", OverrideScope.OCCURRENCE, "weekly/1") == occ
    assert repo.get_override("ics-1", OverrideScope.SERIES, "weekly") == series
    assert repo.get_override("ics-1", OverrideScope.SERIES, "weekly/1") is None
    assert [o.scope for o in repo.list_overrides("ics-1")] == [OverrideScope.OCCURRENCE, OverrideScope.SERIES]
    assert repo.list_decisions("ics-1") == [] and repo.list_calendar_links("ics-1") == []
    assert repo.delete_override("ics-1", OverrideScope.SERIES, "weekly")
    assert not repo.delete_override("ics-1", OverrideScope.SERIES, "weekly")
    assert repo.list_overrides("ics-1") == [occ]


def test_user_bot_settings_round_trip_and_delete(repo: Storage) -> None:
    assert repo.get_user_bot_settings("alice") == BotSettings()
    settings = BotSettings(bot_name="A", live_transcripts=False, automatic_leave={"waiting_room_timeout": 60})
    repo.put_user_bot_settings("alice", settings, T0)
    assert repo.get_user_bot_settings("alice") == settings
    assert repo.user_meeting_entries("alice") == []  # the user's meeting listing does not see it
    assert repo.delete_user_bot_settings("alice") and not repo.delete_user_bot_settings("alice")
    assert repo.get_user_bot_settings("alice") == BotSettings()


def test_calendar_rules_and_bot_are_stored_and_replaced(repo: Storage) -> None:
    rules = CalendarRules(organizer_only=True, include_keywords=("demo",), exclude_keywords=("internal",))
    bot = BotSettings(bot_name="Cal", transcript_provider="none")
    calendar = Calendar("ics-1", CalendarKind.ICS, "alice", filters=rules, bot=bot, feed_url="https://x.test/a.ics")
    repo.put_calendar(calendar, T0)
    stored = repo.get_calendar("ics-1")
    assert (stored.filters, stored.bot) == (rules, bot)
    assert repo.set_calendar_rules("ics-1", rules=CalendarRules(accepted_only=True))
    assert repo.get_calendar("ics-1").filters == CalendarRules(accepted_only=True)
    assert repo.get_calendar("ics-1").bot == bot  # left as it was
    assert repo.set_calendar_rules("ics-1", bot=BotSettings())
    assert repo.get_calendar("ics-1").bot == BotSettings()
    assert not repo.set_calendar_rules("ics-missing", rules=CalendarRules())
