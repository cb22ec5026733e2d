"""A stand-in for the Microsoft Graph port (``app.ports.MicrosoftCalendars``) that records what it is
asked, for tests of connecting, reconnecting and removing Microsoft calendars."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meetpilot.app.ports import CalendarGrants, DeltaSync
from meetpilot.domain.calendar import Calendar, CalendarKind, PushChannel


@dataclass
class RecordingMicrosoftCalendars:
    """Subscriptions are ids in a set; each call opens the calendar's grant, as Graph would need it."""

    grants: CalendarGrants
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, calendar id)
    refresh_tokens_seen: list[str] = field(default_factory=list)

    def _grant(self, calendar: Calendar) -> None:
        self.grants.client(CalendarKind.MICROSOFT)
        self.refresh_tokens_seen.append(self.grants.refresh_token(calendar))

    def sync(
        self, calendar: Calendar, delta_link: str | None, *, window_start: datetime, window_end: datetime
    ) -> DeltaSync:
        self.calls.append(("sync", calendar.calendar_id))
        self._grant(calendar)
        return DeltaSync(
            events=(), delta_link="delta-1", full=delta_link is None, window_start=window_start, window_end=window_end
        )

    def subscribe(
        self,
        calendar: Calendar,
        *,
        client_state: str,
        notification_url: str,
        lifecycle_url: str,
        expires_at: datetime,
    ) -> PushChannel:
        self.calls.append(("subscribe", calendar.calendar_id))
        self._grant(calendar)
        sid = str(uuid.uuid4())
        self.subscriptions[sid] = {
            "notification_url": notification_url,
            "lifecycle_url": lifecycle_url,
            "client_state": client_state,
            "active": True,
        }
        return PushChannel(
            channel_id=sid, calendar_id=calendar.calendar_id, resource_id="me/events", expires_at=expires_at,
            token=client_state,
        )  # fmt: skip

    def renew(self, calendar: Calendar, channel: PushChannel, *, expires_at: datetime) -> PushChannel:
        self.calls.append(("renew", calendar.calendar_id))
        return PushChannel(channel.channel_id, channel.calendar_id, channel.resource_id, expires_at, channel.token)

    def unsubscribe(self, calendar: Calendar, channel: PushChannel) -> None:
        self.calls.append(("unsubscribe", calendar.calendar_id))
        if channel.channel_id in self.subscriptions:
            self.subscriptions[channel.channel_id]["active"] = False

    def active(self) -> list[str]:
        return [sid for sid, sub in self.subscriptions.items() if sub["active"]]
