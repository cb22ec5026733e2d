"""Meetings and their dedup key: the same meeting on five calendars is one meeting, one bot."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from meetpilot.domain.links import canonical_meeting_url, without_passcode
from meetpilot.errors import InvalidInput


class DesiredState(StrEnum):
    RECORD = "record"
    CANCELLED = "cancelled"


class DispatchState(StrEnum):
    PENDING = "pending"  # waiting for its dispatch time
    CLAIMED = "claimed"  # a dispatcher holds the lease and is talking to the provider
    DISPATCHED = "dispatched"  # the provider created the bot and we recorded it
    FAILED = "failed"  # the provider refused the bot; see failure_reason


def normalise_meeting_url(url: str) -> str:
    """A canonical form of a meeting URL for deduplication: links that join the same meeting are equal.

    Host case, default ports, redirect wrappers (Outlook safelinks), tracking parameters, fragments
    and trailing punctuation do not count; per-platform rules (Zoom meeting number and a digest of
    ``pwd``, Meet code, Teams thread id) are in ``meetpilot.domain.links.canonical_meeting_url``.
    The result never holds a passcode: it becomes the meeting's key and id.
    """
    text = url.strip()
    if not text:
        raise InvalidInput("meeting URL is empty")
    canonical = canonical_meeting_url(text)
    if canonical is None:
        shown = without_passcode(text)[:200]
        raise InvalidInput(f"meeting URL must be an http(s) link with a host, got {shown!r}")
    return canonical


def start_minute(start: datetime) -> str:
    if start.tzinfo is None:
        raise InvalidInput("meeting start has no timezone; send UTC (Z) or an offset")
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def meeting_key(url: str, start: datetime) -> str:
    """The dedup key: normalised URL + start minute in UTC."""
    return f"{normalise_meeting_url(url)}|{start_minute(start)}"


def start_of_meeting_key(key: str) -> datetime | None:
    """The start minute a dedup key carries (its part after the last ``|``), or None if it has none."""
    _, sep, minute = key.rpartition("|")
    if not sep:
        return None
    try:
        return datetime.strptime(minute, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class Meeting:
    meeting_key: str
    meeting_url: str
    start: datetime
    end: datetime | None = None
    title: str = ""
    user_ids: list[str] = field(default_factory=list)
    calendar_event_ids: list[str] = field(default_factory=list)
    desired: DesiredState = DesiredState.RECORD
    dispatch_state: DispatchState = DispatchState.PENDING
    session_id: str | None = None
    idempotency_key: str | None = None
    bot_id: str | None = None
    claim_expires_at: datetime | None = None
    dispatch_attempts: int = 0
    failure_reason: str | None = None
    created_at: datetime | None = None
    schedule_name: str | None = None
    dispatch_at: datetime | None = None
    # Someone asked for this meeting directly (CLI, HTTP API), not only through calendar events:
    # it keeps its bot when the last calendar event pointing at it goes away.
    adhoc: bool = False
    # How many times the meeting came back after being cancelled. Each life gets its own provider
    # deduplication key: the provider answers a known key with the (cancelled) bot it made for it.
    revision: int = 0

    @property
    def deduplication_key(self) -> str:
        return self.meeting_key if self.revision == 0 else f"{self.meeting_key}|r{self.revision}"

    @classmethod
    def new(
        cls,
        url: str,
        start: datetime,
        *,
        end: datetime | None = None,
        title: str = "",
        user_id: str | None = None,
        calendar_event_id: str | None = None,
        adhoc: bool = False,
    ) -> Meeting:
        key = meeting_key(url, start)
        if end is not None and end <= start:
            raise InvalidInput("meeting end must be after its start")
        return cls(
            meeting_key=key,
            meeting_url=url.strip(),
            start=start.astimezone(UTC),
            end=end.astimezone(UTC) if end else None,
            title=title[:300],
            user_ids=[user_id] if user_id else [],
            calendar_event_ids=[calendar_event_id] if calendar_event_id else [],
            adhoc=adhoc,
        )


# The dispatch lead time when none is configured (LEAD_TIME_SECONDS has the same default).
DEFAULT_LEAD_TIME = timedelta(minutes=10)
# How long after its planned dispatch a meeting may still have no bot before the reconciler looks.
ATTENTION_GRACE = timedelta(minutes=5)


def planned_dispatch(meeting: Meeting, lead_time: timedelta) -> datetime:
    """When the meeting's bot is due to be dispatched: its schedule, else start minus the lead time."""
    return meeting.dispatch_at or meeting.start - lead_time


def meeting_attention_due(meeting: Meeting, lead_time: timedelta) -> datetime | None:
    """When the reconciler should check that a meeting got its bot; None once that is settled.

    ``lead_time`` is the configured dispatch lead time (``LEAD_TIME_SECONDS``): a meeting not yet
    scheduled is due to be dispatched that long before it starts, and looked at a grace period later.
    """
    if meeting.desired is not DesiredState.RECORD:
        return None
    if meeting.dispatch_state not in (DispatchState.PENDING, DispatchState.CLAIMED):
        return None
    return planned_dispatch(meeting, lead_time) + ATTENTION_GRACE
