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

    The first waiting-room event with a time decides the lateness; the first in-call event with a
    time decides the wait (from that arrival), or both figures when no waiting room came first. A
    figure once decided never changes: a duplicate or a second copy (the reconciler's, from
    /detail) decides nothing. Deliveries can be applied out of order (SQS does not keep it), so a
    step that arrives after a later one (the call after the bot stopped) still counts; only a
    waiting room applied after the call comes too late to count. An event without a timestamp
    decides nothing, and a waiting room without one leaves both figures undecided rather than a
    lateness measured from the call that would hide the wait.
    """
    if meeting_start is None or event.timestamp is None:
        return current
    offset = _ms(event.timestamp - meeting_start)
    if event.status is BotStatus.IN_WAITING_ROOM:
        return current if current.lateness_ms is not None else replace(current, lateness_ms=offset)
    if event.status is not BotStatus.IN_MEETING or current.admission_wait_ms is not None:
        return current
    if current.lateness_ms is not None:
        wait = offset - current.lateness_ms
        return replace(current, admission_wait_ms=wait) if wait >= 0 else current
    if status_before is BotStatus.IN_WAITING_ROOM:
        return current  # it waited, but the waiting room had no time: when it arrived is not known
    return Punctuality(lateness_ms=offset, admission_wait_ms=0)


def newly_recorded(before: Punctuality, after: Punctuality) -> Punctuality:
    """The figures ``after`` has that ``before`` had not (the rest None): what to publish."""
    return Punctuality(
        lateness_ms=after.lateness_ms if before.lateness_ms is None else None,
        admission_wait_ms=after.admission_wait_ms if before.admission_wait_ms is None else None,
    )


def platform_label(meeting_key_or_url: str) -> str:
    """ "Google Meet", "Zoom", "Teams", "Webex" or "Other" for a meeting key (or a meeting URL)."""
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
