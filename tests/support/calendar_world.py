"""A calendar world on the in-memory ports: calendars fed by hand-made events, synced, dispatched.

For the rules, decisions, overrides and bot-settings tests, which need no HTTP and no AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from meetpilot.app.calendar_sync import CalendarSyncConfig, SyncDeps, SyncReport, sync_calendar
from meetpilot.app.dispatch import DispatchConfig, DispatchResult, dispatch_meeting
from meetpilot.app.ports import FeedRead, GoogleCalendars
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import Calendar, CalendarEvent, CalendarKind, CalendarRules
from meetpilot.domain.clock import FixedClock
from meetpilot_dev.fakes.aws import MemoryDispatchScheduler, MemoryQueue, MemorySecrets
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
START = T0 + timedelta(days=1)
URL = "https://meet.google.com/abc-defg-hij"
CONFIG = DispatchConfig(bot_name="Stack Bot", public_base_url="https://mp.example.test", transcript_provider="deepgram")


def event(event_id: str = "ev-1", **fields: object) -> CalendarEvent:
    values: dict[str, object] = {
        "calendar_id": "-",
        "event_id": event_id,
        "title": "Planning",
        "start": START,
        "end": START + timedelta(minutes=30),
        "all_day": False,
        "cancelled": False,
        "declined_by_owner": False,
        "meeting_url": URL,
        "updated": T0,
        "attendees": ("alice@acme.test", "bob@acme.test"),
    }
    values.update(fields)
    return CalendarEvent(**values)  # type: ignore[arg-type]


class ScriptedFeeds:
    """``app.ports.IcsFeeds``: each calendar's feed answers the events a test put there."""

    def __init__(self) -> None:
        self.events: dict[str, list[CalendarEvent]] = {}

    def read(self, url, etag, *, calendar_id, window_start, window_end, owner_email) -> FeedRead:
        events = tuple(replace(e, calendar_id=calendar_id) for e in self.events.get(url, []))
        return FeedRead(not_modified=False, etag=None, events=events)


def _no_google() -> GoogleCalendars:
    raise AssertionError("these calendars are ICS feeds")


@dataclass
class World:
    repo: MemoryRepository = field(default_factory=MemoryRepository)
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    provider: MemoryBotProvider = field(default_factory=MemoryBotProvider)
    feeds: ScriptedFeeds = field(default_factory=ScriptedFeeds)
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    scheduler: MemoryDispatchScheduler = field(default_factory=MemoryDispatchScheduler)

    @property
    def deps(self) -> SyncDeps:
        return SyncDeps(
            repo=self.repo,
            scheduler=self.scheduler,
            provider=self.provider,
            dispatch_queue=self.queue,
            dispatch_config=CONFIG,
            clock=self.clock,
            config=CalendarSyncConfig(),
        )

    def calendar(
        self,
        calendar_id: str,
        user: str = "alice",
        *,
        owner_email: str | None = "alice@acme.test",
        rules: CalendarRules | None = None,
        bot: BotSettings | None = None,
        created: datetime | None = None,
        label: str = "",
    ) -> str:
        self.repo.put_calendar(
            Calendar(
                calendar_id=calendar_id,
                kind=CalendarKind.ICS,
                user_id=user,
                owner_email=owner_email,
                label=label,
                filters=rules or CalendarRules(),
                bot=bot or BotSettings(),
                feed_url=f"https://feeds.example.test/{calendar_id}.ics",
            ),
            created or self.clock.now(),
        )
        return calendar_id

    def publish(self, calendar_id: str, *events: CalendarEvent) -> None:
        self.feeds.events[f"https://feeds.example.test/{calendar_id}.ics"] = list(events)

    def sync(self, calendar_id: str) -> SyncReport:
        return sync_calendar(calendar_id, deps=self.deps, ics=lambda: self.feeds, google=_no_google)

    def decision(self, calendar_id: str, event_id: str = "ev-1"):
        found = self.repo.get_decision(calendar_id, event_id)
        assert found is not None, f"no decision for {event_id}"
        return found

    def dispatch(self, key: str) -> DispatchResult:
        return dispatch_meeting(
            key,
            attempt=0,
            repo=self.repo,
            provider=self.provider,
            secrets=MemorySecrets(),
            config=CONFIG,
            clock=self.clock,
        )

    def bot_request(self, result: DispatchResult):
        assert result.bot_id is not None, result
        return self.provider.bots[result.bot_id].request
