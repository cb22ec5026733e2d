"""How long meetpilot keeps each kind of record before the table's TTL lets it go.

Forgetting deletes at once; these are the lifetimes of what nobody asked to forget. Each returns an
epoch second, the form DynamoDB's TTL (``expires_at``) reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from meetpilot.domain.calendar import CalendarLink, PushChannel
from meetpilot.domain.decisions import Decision, EventOverride

# A session, and a user's entry for a meeting, outlive the meeting by about thirteen months, so a
# year-over-year look back still finds them.
SESSION_RETENTION = timedelta(days=400)
# An event link outlives the event it names by this much: a late edit of a past event still finds it.
LINK_RETENTION = timedelta(days=30)
# Google stops delivering to a channel at its expiry; its item may go a week later.
CHANNEL_RETENTION = timedelta(days=7)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def session_expires_at(written_at: datetime) -> int:
    """A session expires this long after its last write."""
    return _epoch(written_at) + int(SESSION_RETENTION.total_seconds())


def user_meeting_expires_at(start: datetime) -> int:
    """A user's entry for a meeting expires with the sessions of that meeting."""
    return _epoch(start) + int(SESSION_RETENTION.total_seconds())


def link_expires_at(link: CalendarLink) -> int:
    return _epoch(link.last_moment) + int(LINK_RETENTION.total_seconds())


def channel_expires_at(channel: PushChannel) -> int:
    return _epoch(channel.expires_at) + int(CHANNEL_RETENTION.total_seconds())


def decision_expires_at(decision: Decision) -> int:
    """A decision goes with its event's link: long enough to answer "why no bot last week?"."""
    moment = decision.last_moment or decision.decided_at
    assert moment is not None, "a decision without times has at least its decision time"
    return _epoch(moment) + int(LINK_RETENTION.total_seconds())


def override_expires_at(override: EventOverride) -> int | None:
    """An occurrence's override goes with its event; a series' stays until removed (it has no last instance)."""
    return _epoch(override.until) + int(LINK_RETENTION.total_seconds()) if override.until else None
