"""Why each calendar occurrence gets a bot or not: per-event overrides, the verdict, and the decision kept.

A sync keeps one ``Decision`` per occurrence it sees: recorded (and under which meeting key) or not,
with the reason in words a support person can read. The decision also keeps what the rules look
at (``EventFacts``) and what a meeting needs (link, times), so an override or a change of rules can
be applied, or previewed, without asking the calendar's provider again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import CalendarEvent, CalendarRules, EventFacts, rule_refusal, source_refusal
from meetpilot.domain.meeting import meeting_key
from meetpilot.errors import InvalidInput

# A meeting without an end is taken to last this long (as the sync does).
DEFAULT_LENGTH = timedelta(hours=1)
RECORDED = "recorded"


class OverrideScope(StrEnum):
    OCCURRENCE = "occurrence"  # this one event (one instance of a series)
    SERIES = "series"  # every instance whose recurring_event_id is the series id


@dataclass(frozen=True)
class EventOverride:
    """ "Record this one" or "skip this one", for one occurrence or a whole series of one calendar.

    Keyed by the event's (or series') id, not by its meeting: moving the event keeps it. It beats
    every rule and the owner's decline (someone asked for this one by name); ``record=True`` still
    needs a meeting link and a start, and a cancelled event takes its override with it. ``bot`` sets
    the bot's settings for this event above the calendar's and the user's.
    """

    calendar_id: str
    target_id: str  # the event id, or the series id for scope "series"
    scope: OverrideScope
    record: bool
    bot: BotSettings = field(default_factory=BotSettings)
    set_at: datetime | None = None
    # When the item may go (the occurrence's end plus the link retention); None for a series.
    until: datetime | None = None

    @property
    def label(self) -> str:
        verb = "record" if self.record else "skip"
        return f"override: {verb}" + (" (whole series)" if self.scope is OverrideScope.SERIES else "")


def applicable_override(
    event_id: str,
    recurring_event_id: str | None,
    occurrence: EventOverride | None,
    series: EventOverride | None,
) -> EventOverride | None:
    """The override that applies to an occurrence: its own beats its series'."""
    if occurrence is not None and occurrence.target_id == event_id:
        return occurrence
    if series is not None and recurring_event_id and series.target_id == recurring_event_id:
        return series
    return None


@dataclass(frozen=True)
class Verdict:
    record: bool
    reason: str
    meeting_key: str | None = None


def evaluate(
    event: CalendarEvent,
    *,
    rules: CalendarRules,
    owner_email: str | None,
    override: EventOverride | None,
    now: datetime,
    horizon: timedelta,
    facts: EventFacts | None = None,
) -> Verdict:
    """Whether this occurrence should have a bot now, and why, without touching anything.

    Order: what the event itself rules out (cancelled, all-day, no link), then the past, then an
    override, then the rules, then the horizon (a meeting far ahead is taken in by a later sync).
    """
    refused = source_refusal(event)
    if refused:
        return Verdict(False, refused)
    assert event.start is not None and event.meeting_url is not None
    if (event.end or event.start + DEFAULT_LENGTH) <= now:
        return Verdict(False, "already over")
    if override is not None and not override.record:
        return Verdict(False, override.label)
    if override is None:
        refused = rule_refusal(facts or EventFacts.of(event), rules, owner_email)
        if refused:
            return Verdict(False, refused)
    if event.start > now + horizon:
        return Verdict(False, f"beyond the {horizon.days}-day horizon")
    try:
        key = meeting_key(event.meeting_url, event.start)
    except InvalidInput:
        return Verdict(False, "the meeting link is not one a bot can join")
    return Verdict(True, override.label if override is not None else RECORDED, key)


@dataclass(frozen=True)
class Decision:
    """What the last sync decided for one occurrence of one calendar, and what it saw of the event."""

    calendar_id: str
    event_id: str
    start: datetime | None
    end: datetime | None
    recorded: bool
    reason: str
    meeting_key: str | None = None
    decided_at: datetime | None = None
    facts: EventFacts = field(default_factory=EventFacts)
    meeting_url: str | None = field(default=None, repr=False)
    all_day: bool = False
    cancelled: bool = False
    recurring_event_id: str | None = None

    @property
    def title(self) -> str:
        return self.facts.title

    @property
    def last_moment(self) -> datetime | None:
        if self.start is None:
            return self.end
        return self.end or self.start + DEFAULT_LENGTH

    def event(self) -> CalendarEvent:
        """The occurrence as the last sync saw it (attendees only as counted in ``facts``)."""
        return CalendarEvent(
            calendar_id=self.calendar_id,
            event_id=self.event_id,
            title=self.facts.title,
            start=self.start,
            end=self.end,
            all_day=self.all_day,
            cancelled=self.cancelled,
            declined_by_owner=self.facts.declined_by_owner,
            meeting_url=self.meeting_url,
            updated=None,
            recurring_event_id=self.recurring_event_id,
            organized_by_owner=self.facts.organized_by_owner,
            owner_response=self.facts.owner_response,
            organizer=self.facts.organizer,
        )

    def same_as(self, other: Decision | None) -> bool:
        """Equal but for when it was decided (an unchanged decision is not written again)."""
        if other is None:
            return False
        return self == type(self)(**{**other.__dict__, "decided_at": self.decided_at})


def decision_for(event: CalendarEvent, verdict: Verdict, now: datetime, facts: EventFacts | None = None) -> Decision:
    return Decision(
        calendar_id=event.calendar_id,
        event_id=event.event_id,
        start=event.start,
        end=event.end,
        recorded=verdict.record,
        reason=verdict.reason,
        meeting_key=verdict.meeting_key,
        decided_at=now,
        facts=facts or EventFacts.of(event),
        meeting_url=event.meeting_url,
        all_day=event.all_day,
        cancelled=event.cancelled,
        recurring_event_id=event.recurring_event_id,
    )
