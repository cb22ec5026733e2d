"""A calendar's decisions as support reads them, per-event overrides, and changing (or previewing) its rules.

Everything here works from what the last sync kept of each occurrence (``domain.decisions``): an
override or a change of rules takes effect at once, without asking the calendar's provider, and
the next sync evaluates the same way.

    page = list_decisions("ics-1a2b", start_from=now, start_to=now + timedelta(days=7), repo=repo, clock=clock)
    set_override("ics-1a2b", "evt-42", record=False, scope=OverrideScope.OCCURRENCE, deps=deps)
    changes = preview_calendar_settings("ics-1a2b", rules=CalendarRules(external_only=True), deps=deps)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from meetpilot.app.bot_settings import settings_owner
from meetpilot.app.calendar_sync import REMOVED_AT_SOURCE, SyncDeps, converge_event, override_for
from meetpilot.app.dispatch import bot_for
from meetpilot.app.ports import CalendarRepository, CalendarStorage
from meetpilot.domain.bot_settings import BotSettings, EffectiveBot
from meetpilot.domain.calendar import Calendar, CalendarLink, CalendarRules
from meetpilot.domain.clock import Clock, parse_iso, to_iso
from meetpilot.domain.decisions import Decision, EventOverride, OverrideScope, evaluate
from meetpilot.domain.meeting import Meeting
from meetpilot.errors import Conflict, InvalidInput, NotFound

# How far ahead a dry run looks, whatever the sync horizon.
PREVIEW_AHEAD = timedelta(days=14)
# A listing without bounds: from a day back to the sync horizon.
DEFAULT_BACK = timedelta(days=1)
MAX_SPAN = timedelta(days=62)


def _calendar(calendar_id: str, repo: CalendarStorage) -> Calendar:
    calendar = repo.get_calendar(calendar_id)
    if calendar is None:
        raise NotFound(f"no calendar {calendar_id}; GET /v1/calendars lists the registered ones")
    return calendar


# --- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionView:
    """One decision as listed: the stored one, its reason as of now, and the bot once known."""

    decision: Decision
    reason: str
    recorded: bool
    session_id: str | None = None
    bot_id: str | None = None
    settings_from: str | None = None  # the calendar whose settings the bot uses, when it is shared


@dataclass(frozen=True)
class DecisionPage:
    calendar: Calendar
    items: list[DecisionView]
    cursor: str | None = None


def _cursor(d: Decision) -> str:
    text = f"{to_iso(d.start) if d.start else ''}|{d.event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _after(cursor: str) -> tuple[str, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, sep, event_id = text.partition("|")
        if not sep:
            raise ValueError(cursor)
        if start:
            parse_iso(start)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor: is not one a listing returned; start again without it") from None
    return start, event_id


def list_decisions(
    calendar_id: str,
    *,
    repo: CalendarRepository,
    clock: Clock,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
    horizon: timedelta = PREVIEW_AHEAD,
) -> DecisionPage:
    """The calendar's decisions for occurrences starting in ``[start_from, start_to)``, by start.

    Without bounds: a day back to the horizon. Events without a start (all-day ones) come first on
    the first page. A recorded meeting shared with an earlier-connected calendar says whose settings
    its one bot uses; a disconnected calendar's decisions say the calendar is disconnected.
    """
    calendar = _calendar(calendar_id, repo)
    now = clock.now()
    low = start_from or now - DEFAULT_BACK
    high = start_to or now + horizon
    if high <= low:
        raise InvalidInput("to: must be after from")
    if high - low > MAX_SPAN:
        raise InvalidInput(f"from/to: at most {MAX_SPAN.days} days at a time")
    after = _after(cursor) if cursor else None
    picked: list[Decision] = []
    for d in repo.list_decisions(calendar_id):
        if d.start is not None and not low <= d.start < high:
            continue
        if after is not None and (to_iso(d.start) if d.start else "", d.event_id) <= after:
            continue
        picked.append(d)
    page, more = picked[:limit], len(picked) > limit
    views = [view_of(d, calendar, repo) for d in page]
    return DecisionPage(calendar, views, _cursor(page[-1]) if more and page else None)


def view_of(d: Decision, calendar: Calendar, repo: CalendarRepository) -> DecisionView:
    """A decision as listed: joined with its meeting (session, bot, whose settings), and the calendar's state."""
    reason, recorded = d.reason, d.recorded
    session_id = bot_id = settings_from = None
    if d.recorded and d.meeting_key:
        meeting = repo.get_meeting(d.meeting_key)
        if meeting is not None:
            session_id, bot_id = meeting.session_id, meeting.bot_id
            owner = settings_owner(list(meeting.calendar_event_ids), repo)
            if owner is not None and owner.calendar.calendar_id != calendar.calendar_id:
                settings_from = owner.calendar.calendar_id
                reason = f"shared with {owner.name}: one bot for this meeting, using {owner.name}'s settings"
    if not calendar.connected:
        reason = f"calendar disconnected ({calendar.disconnected_reason}); as of its last sync: {reason}"
    return DecisionView(d, reason, recorded, session_id, bot_id, settings_from)


# --- overrides --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideResult:
    override: EventOverride | None
    decisions: list[Decision] = field(default_factory=list)  # the occurrences it applies to, re-decided


def _live(d: Decision, now: datetime) -> bool:
    last = d.last_moment
    return not d.cancelled and d.reason != REMOVED_AT_SOURCE and (last is None or last > now)


def _target(
    calendar_id: str, event_id: str, scope: OverrideScope, repo: CalendarRepository
) -> tuple[str, list[Decision]]:
    """The override's target id and the kept decisions it covers; NotFound for an event never seen."""
    own = repo.get_decision(calendar_id, event_id)
    if scope is OverrideScope.OCCURRENCE:
        if own is None:
            raise NotFound(
                f"calendar {calendar_id} has no event {event_id} in its last sync "
                "(it covers the sync window; GET .../events lists what it saw)"
            )
        return event_id, [own]
    series_id = own.recurring_event_id if own is not None and own.recurring_event_id else event_id
    covered = [d for d in repo.list_decisions(calendar_id) if d.recurring_event_id == series_id]
    if not covered:
        raise NotFound(f"calendar {calendar_id} has no recurring series {series_id} in its last sync")
    return series_id, covered


def set_override(
    calendar_id: str,
    event_id: str,
    *,
    record: bool,
    scope: OverrideScope,
    deps: SyncDeps,
    bot: BotSettings | None = None,
) -> OverrideResult:
    """Record (or skip) one occurrence or a whole series, whatever the rules say, and apply it now."""
    repo = deps.repo
    calendar = _calendar(calendar_id, repo)
    now = deps.clock.now()
    target, covered = _target(calendar_id, event_id, scope, repo)
    if scope is OverrideScope.OCCURRENCE and not _live(covered[0], now):
        raise Conflict(f"event {event_id} is {covered[0].reason}; an override would have nothing to act on")
    # An occurrence's override expires with its event; a series' has no last instance to go with.
    until = (covered[0].last_moment or now) if scope is OverrideScope.OCCURRENCE else None
    override = EventOverride(calendar_id, target, scope, record, bot=bot or BotSettings(), set_at=now, until=until)
    repo.put_override(override)
    return OverrideResult(override, _reconverge(calendar, covered, deps))


def remove_override(calendar_id: str, event_id: str, *, scope: OverrideScope, deps: SyncDeps) -> OverrideResult:
    """Take the override back: the rules decide again, at once."""
    repo = deps.repo
    calendar = _calendar(calendar_id, repo)
    target, covered = _target(calendar_id, event_id, scope, repo)
    if not repo.delete_override(calendar_id, scope, target):
        raise NotFound(f"event {event_id} of calendar {calendar_id} has no {scope.value} override")
    return OverrideResult(None, _reconverge(calendar, covered, deps))


def _reconverge(calendar: Calendar, decisions: list[Decision], deps: SyncDeps) -> list[Decision]:
    """Converge occurrences again from what their decisions kept, as a sync would have."""
    now = deps.clock.now()
    out = []
    for d in decisions:
        if _live(d, now):
            converge_event(d.event(), calendar, deps, facts=d.facts)
        out.append(deps.repo.get_decision(calendar.calendar_id, d.event_id) or d)
    return out


# --- rules and bot settings -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a decision is (or would be): recorded or not, why, and the bot's settings when this
    calendar's settings are the ones its bot uses."""

    recorded: bool
    reason: str
    bot: EffectiveBot | None = None


@dataclass(frozen=True)
class DecisionChange:
    decision: Decision
    before: Outcome
    after: Outcome


class _WithCalendar:
    """The repository's reads, with one calendar as a change would make it (nothing is written)."""

    def __init__(self, repo: CalendarRepository, calendar: Calendar) -> None:
        self._repo = repo
        self._calendar = calendar

    def get_calendar(self, calendar_id: str) -> Calendar | None:
        if calendar_id == self._calendar.calendar_id:
            return self._calendar
        return self._repo.get_calendar(calendar_id)

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None:
        return self._repo.get_calendar_link(calendar_id, event_id)

    def get_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> EventOverride | None:
        return self._repo.get_override(calendar_id, scope, target_id)

    def get_user_bot_settings(self, user_id: str) -> BotSettings:
        return self._repo.get_user_bot_settings(user_id)


def _outcome(d: Decision, calendar: Calendar, deps: SyncDeps, now: datetime) -> Outcome:
    """The decision ``calendar`` (as stored, or as a change would make it) gives ``d`` now; reads only."""
    event = d.event()
    verdict = evaluate(
        event,
        rules=calendar.filters,
        owner_email=calendar.owner_email,
        override=override_for(event, calendar.calendar_id, deps.repo),
        now=now,
        horizon=deps.config.horizon,
        facts=d.facts,
    )
    if not verdict.record or verdict.meeting_key is None or d.start is None or d.meeting_url is None:
        return Outcome(False, verdict.reason)
    lookup = _WithCalendar(deps.repo, calendar)
    stored = deps.repo.get_meeting(verdict.meeting_key)
    ids = sorted(
        set(stored.calendar_event_ids if stored is not None else []) | {f"{calendar.calendar_id}#{d.event_id}"}
    )
    owner = settings_owner(ids, lookup)
    if owner is not None and owner.calendar.calendar_id != calendar.calendar_id:
        return Outcome(True, f"shared with {owner.name}: one bot for this meeting, using {owner.name}'s settings")
    probe = Meeting(
        meeting_key=verdict.meeting_key,
        meeting_url=d.meeting_url,
        start=d.start,
        user_ids=list(stored.user_ids) if stored is not None else [calendar.user_id],
        calendar_event_ids=ids,
    )
    return Outcome(True, verdict.reason, bot_for(probe, lookup=lookup, config=deps.dispatch_config))


def _proposed(calendar: Calendar, rules: CalendarRules | None, bot: BotSettings | None) -> Calendar:
    return replace(
        calendar,
        filters=rules if rules is not None else calendar.filters,
        bot=bot if bot is not None else calendar.bot,
    )


def preview_calendar_settings(
    calendar_id: str, *, deps: SyncDeps, rules: CalendarRules | None = None, bot: BotSettings | None = None
) -> list[DecisionChange]:
    """How the decisions of the next 14 days would change under new rules and/or bot settings.

    Nothing is written: each kept occurrence is evaluated under the calendar as it is and as it
    would be, and the ones whose outcome (recorded, reason, the bot's settings) differs are returned.
    """
    calendar = _calendar(calendar_id, deps.repo)
    proposed = _proposed(calendar, rules, bot)
    now = deps.clock.now()
    changes = []
    for d in deps.repo.list_decisions(calendar_id):
        if not _live(d, now) or d.start is None or d.start >= now + PREVIEW_AHEAD:
            continue
        before, after = _outcome(d, calendar, deps, now), _outcome(d, proposed, deps, now)
        if before != after:
            changes.append(DecisionChange(d, before, after))
    return changes


def update_calendar_settings(
    calendar_id: str, *, deps: SyncDeps, rules: CalendarRules | None = None, bot: BotSettings | None = None
) -> Calendar:
    """Store new rules and/or bot settings and apply new rules at once to every occurrence still ahead.

    Bot settings need no converging: they are read when each bot is created.
    """
    _calendar(calendar_id, deps.repo)
    if not deps.repo.set_calendar_rules(calendar_id, rules=rules, bot=bot):
        raise NotFound(f"calendar {calendar_id} was removed meanwhile")
    calendar = _calendar(calendar_id, deps.repo)
    if rules is not None:
        now = deps.clock.now()
        _reconverge(calendar, [d for d in deps.repo.list_decisions(calendar_id) if _live(d, now)], deps)
    return calendar


def forget_decisions(calendar_id: str, *, repo: CalendarStorage) -> int:
    """Delete every decision and override of a calendar (it is being removed); returns how many."""
    count = 0
    for d in repo.list_decisions(calendar_id):
        repo.delete_decision(calendar_id, d.event_id)
        count += 1
    for o in repo.list_overrides(calendar_id):
        count += repo.delete_override(calendar_id, o.scope, o.target_id)
    return count
