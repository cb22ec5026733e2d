"""Join punctuality: how late (or early) a bot reached its meeting, and how long it waited to be let in.

Both figures come from the provider's own event timestamps, never from when a webhook arrived:
``lateness`` is the bot's arrival (the waiting room if it met one, else the call itself) minus the
meeting's start, negative when it was early; ``admission wait`` is the time from the waiting room to
the call, 0 when it was let straight in. Each is decided once, by the first event that can decide it,
so a duplicate or stale event never changes it and its metric is published once per meeting.

    >>> from meetpilot.domain.events import normalise_event
    >>> start = datetime.fromisoformat("2026-07-02T15:00:00+00:00")
    >>> wait = normalise_event({"event": "bot.in_waiting_room", "timestamp": "2026-07-02T15:00:12Z"})
    >>> observe(Punctuality(), wait, status_before=BotStatus.JOINING, meeting_start=start)
    Punctuality(lateness_ms=12000, admission_wait_ms=None)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from meetpilot.domain.events import BotEvent
from meetpilot.domain.links import meeting_platform
from meetpilot.domain.status import BotStatus

# The dimension values of the metrics, by what ``links.meeting_platform`` calls each platform.
PLATFORM_LABELS = {"meet": "Google Meet", "zoom": "Zoom", "teams": "Teams", "webex": "Webex"}
OTHER_PLATFORM = "Other"


@dataclass(frozen=True)
class Punctuality:
    """The two figures, in milliseconds; None while (or when) a figure cannot be known."""

    lateness_ms: int | None = None
    admission_wait_ms: int | None = None

    @property
    def empty(self) -> bool:
        return self.lateness_ms is None and self.admission_wait_ms is None


def observe(
    current: Punctuality, event: BotEvent, *, status_before: BotStatus, meeting_start: datetime | None
) -> Punctuality:
    """The figures once ``event`` is applied to a session that was at ``status_before``.

    Only the first arrival in the waiting room and the first arrival in the call count, in the
    order the state machine accepted them: an event for a step the session has already passed (a
    duplicate, a late or reordered delivery) changes nothing. An event without a timestamp decides
    nothing, and leaves undecided what depends on it (a waiting room without a time gives no
    lateness and no wait, rather than a lateness measured from the call that would hide the wait).
    """
    if meeting_start is None or event.status not in (BotStatus.IN_WAITING_ROOM, BotStatus.IN_MEETING):
        return current
    if event.status is BotStatus.IN_WAITING_ROOM:
        if status_before.rank >= BotStatus.IN_WAITING_ROOM.rank or current.lateness_ms is not None:
            return current
        if event.timestamp is None:
            return current
        return replace(current, lateness_ms=_ms(event.timestamp - meeting_start))
    if status_before.rank >= BotStatus.IN_MEETING.rank or current.admission_wait_ms is not None:
        return current
    if event.timestamp is None:
        return current
    if status_before is BotStatus.IN_WAITING_ROOM:
        if current.lateness_ms is None:
            return current  # the waiting room had no time: when the bot arrived is not known
        arrived = meeting_start + timedelta(milliseconds=current.lateness_ms)
        wait = _ms(event.timestamp - arrived)
        return replace(current, admission_wait_ms=wait) if wait >= 0 else current
    return Punctuality(lateness_ms=_ms(event.timestamp - meeting_start), admission_wait_ms=0)


def newly_recorded(before: Punctuality, after: Punctuality) -> Punctuality:
    """The figures ``after`` has that ``before`` had not (the rest None): what to publish."""
    return Punctuality(
        lateness_ms=after.lateness_ms if before.lateness_ms is None else None,
        admission_wait_ms=after.admission_wait_ms if before.admission_wait_ms is None else None,
    )


def platform_label(meeting_key_or_url: str) -> str:
    """"Google Meet", "Zoom", "Teams", "Webex" or "Other" for a meeting key (or a meeting URL)."""
    url = meeting_key_or_url.rpartition("|")[0] or meeting_key_or_url
    platform = meeting_platform(url)
    return PLATFORM_LABELS.get(platform or "", OTHER_PLATFORM)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank, as CloudWatch reads a small sample; None if empty.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 95)
    (2, 4)
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats creeping in
    return ordered[int(rank) - 1]


def _ms(delta: timedelta) -> int:
    return round(delta / timedelta(milliseconds=1))

