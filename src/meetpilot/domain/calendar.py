"""Calendar events as every calendar source reports them, and the errors a source can raise.

Each source (Google Calendar, an ICS feed) turns its own format into ``CalendarEvent``; the sync use
case only ever sees this one shape. An event is one *occurrence*: a recurring series arrives as its
instances, each with an id of its own that stays the same when the instance is moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from meetpilot.errors import MeetpilotError


class CalendarSourceError(MeetpilotError):
    """A calendar could not be fetched, read or authorised; the message is one line and safe to show.

    ``status`` is the HTTP status when there was one. ``retryable`` says whether trying again later
    may help (a 5xx, a rate limit, a timeout) as opposed to a problem someone has to fix (a revoked
    refresh token, a feed URL that answers 404, a feed that is not iCalendar).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class SyncTokenExpired(CalendarSourceError):
    """Google answered 410 Gone: drop the stored sync token and run a full sync."""

    def __init__(self, message: str = "the Google sync token is no longer valid; run a full sync") -> None:
        super().__init__(message, status=410, retryable=True)


@dataclass(frozen=True)
class CalendarEvent:
    """One occurrence of a calendar event, from one calendar.

    ``start``/``end`` are timezone-aware UTC. They are ``None`` for all-day events (which never get a
    bot) and for cancelled items whose source sends no times (Google reports a deleted event with
    little more than its id). A cancelled item whose ``event_id`` is a recurring series' id cancels
    every instance whose ``recurring_event_id`` is that id.
    """

    calendar_id: str
    event_id: str
    title: str
    start: datetime | None
    end: datetime | None
    all_day: bool
    cancelled: bool
    declined_by_owner: bool
    meeting_url: str | None
    updated: datetime | None
    recurring_event_id: str | None = None

    def __post_init__(self) -> None:
        if not self.calendar_id or not self.event_id:
            raise ValueError("a calendar event needs a calendar id and an event id")
        for name in ("start", "end", "updated"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.tzinfo is None:
                raise ValueError(f"calendar event {name} is naive; sources must resolve time zones")
            # Frozen dataclass: normalising to UTC here keeps equality and keys independent of the
            # zone a source happened to report in.
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("calendar event ends before it starts")

    @property
    def wants_bot(self) -> bool:
        """Whether this occurrence, taken alone, asks for a bot in its meeting."""
        return (
            not self.cancelled
            and not self.declined_by_owner
            and not self.all_day
            and self.start is not None
            and bool(self.meeting_url)
        )
