"""Which settings a meeting's bot gets, worked out when the bot is created.

The rule for a meeting on several calendars (one bot, so one set of settings): the calendar
connected first wins, by ``created_at`` and then calendar id, among the calendars whose events
still want the meeting. Its event's override, the calendar, and the calendar's user then layer over
the stack's configuration. A meeting no calendar wants (asked for directly) takes its first user's
settings.

    bot = resolve_bot(meeting, lookup=repo, config=dispatch_config)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from meetpilot.app.ports import BotSettingsLookup, UserBotSettings
from meetpilot.domain.bot_settings import BotSettings, EffectiveBot, effective_bot
from meetpilot.domain.calendar import Calendar
from meetpilot.domain.clock import Clock
from meetpilot.domain.decisions import OverrideScope, applicable_override
from meetpilot.domain.meeting import Meeting
from meetpilot.errors import InvalidInput

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SettingsOwner:
    """The calendar (and its event) whose settings a meeting's bot uses."""

    calendar: Calendar
    event_id: str

    @property
    def name(self) -> str:
        label = self.calendar.label
        return f"{self.calendar.calendar_id} ({label})" if label else self.calendar.calendar_id


def settings_owner(calendar_event_ids: list[str], lookup: BotSettingsLookup) -> SettingsOwner | None:
    """The earliest-connected calendar among those whose events want the meeting (created_at, then id)."""
    candidates: list[SettingsOwner] = []
    for ident in calendar_event_ids:
        calendar_id, sep, event_id = ident.partition("#")
        if not sep:
            continue
        calendar = lookup.get_calendar(calendar_id)
        if calendar is not None and not calendar.removing:
            candidates.append(SettingsOwner(calendar, event_id))
    if not candidates:
        return None
    return min(candidates, key=lambda o: (o.calendar.created_at or _EARLIEST, o.calendar.calendar_id, o.event_id))


def resolve_bot(
    meeting: Meeting,
    *,
    lookup: BotSettingsLookup,
    bot_name: str,
    transcript_provider: str | None,
    live_transcripts: bool,
    automatic_leave: dict[str, int],
    calendar_bot: BotSettings | None = None,
) -> EffectiveBot:
    """The bot for ``meeting``: owning event override > its calendar > its user > the stack's values.

    ``calendar_bot`` stands in for the owning calendar's stored settings (a dry run of a change).
    """
    layers: list[tuple[str, BotSettings]] = []
    owner = settings_owner(list(meeting.calendar_event_ids), lookup)
    if owner is not None:
        link = lookup.get_calendar_link(owner.calendar.calendar_id, owner.event_id)
        recurring = link.recurring_event_id if link is not None else None
        occurrence = lookup.get_override(owner.calendar.calendar_id, OverrideScope.OCCURRENCE, owner.event_id)
        series = lookup.get_override(owner.calendar.calendar_id, OverrideScope.SERIES, recurring) if recurring else None
        override = applicable_override(owner.event_id, recurring, occurrence, series)
        if override is not None:
            layers.append(("event", override.bot))
        layers.append(("calendar", calendar_bot if calendar_bot is not None else owner.calendar.bot))
        user_id: str | None = owner.calendar.user_id
    else:
        user_id = sorted(meeting.user_ids)[0] if meeting.user_ids else None
    if user_id:
        layers.append(("user", lookup.get_user_bot_settings(user_id)))
    return effective_bot(
        layers,
        bot_name=bot_name,
        transcript_provider=transcript_provider,
        live_transcripts=live_transcripts,
        automatic_leave=automatic_leave,
    )


def set_user_bot_settings(user_id: str, settings: BotSettings, *, repo: UserBotSettings, clock: Clock) -> BotSettings:
    """Replace a user's bot settings (empty settings inherit everything from the stack again)."""
    user = user_id.strip()
    if not user:
        raise InvalidInput("a user id is required")
    repo.put_user_bot_settings(user, replace(settings), clock.now())
    return repo.get_user_bot_settings(user)
