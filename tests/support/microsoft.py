"""Microsoft calendars in tests: an in-memory CalendarGrants, and a calendar connected on the local
stack against the fake Graph (stored, subscribed, synced), as the connect flow will do it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from meetpilot.app.calendar_sync import CalendarSyncConfig, open_subscription
from meetpilot.domain.calendar import (
    Calendar,
    CalendarFilters,
    CalendarKind,
    CalendarSourceError,
    OAuthClient,
    calendar_id_for,
)
from meetpilot_dev.stack.embedded import LocalStack

APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
APP_SECRET = "Zr48Q~app-secret-never-logged"
TENANT = "contoso-tenant-id"


@dataclass
class MemoryGrants:
    """``app.ports.CalendarGrants`` in memory: "sealing" is a lookup, the newest token per calendar wins."""

    clients: dict[CalendarKind, OAuthClient] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # calendar id -> its current refresh token
    sealed: dict[str, str] = field(default_factory=dict)  # sealed handle -> refresh token
    rotations: list[str] = field(default_factory=list)  # calendar ids, once per rotated token stored

    def client(self, kind: CalendarKind) -> OAuthClient:
        if kind not in self.clients:
            raise CalendarSourceError(f"no OAuth client configured for {kind.value}")
        return self.clients[kind]

    def seal(self, refresh_token: str) -> str:
        handle = "sealed:" + secrets.token_hex(8)
        self.sealed[handle] = refresh_token
        return handle

    def refresh_token(self, calendar: Calendar) -> str:
        if calendar.calendar_id in self.tokens:
            return self.tokens[calendar.calendar_id]
        if calendar.sealed_refresh_token in self.sealed:
            return self.sealed[calendar.sealed_refresh_token]
        raise CalendarSourceError(f"calendar {calendar.calendar_id} has no refresh token")

    def store_rotated(self, calendar: Calendar, refresh_token: str) -> None:
        self.tokens[calendar.calendar_id] = refresh_token
        self.rotations.append(calendar.calendar_id)


def graph_stack(stack: LocalStack) -> MemoryGrants:
    """Give the stack's container in-memory grants for the fake Graph's app; returns them."""
    assert stack.container is not None and stack.graph is not None
    stack.graph.add_client(APP_ID, APP_SECRET, tenant=TENANT)
    grants = MemoryGrants({CalendarKind.MICROSOFT: OAuthClient(APP_ID, APP_SECRET, TENANT)})
    # cached_property: an instance attribute of that name is what the container hands out.
    stack.container.__dict__["calendar_grants"] = grants
    return grants


def connect_microsoft(
    stack: LocalStack,
    grants: MemoryGrants,
    email: str,
    *,
    user: str = "ann",
    filters: CalendarFilters | None = None,
    config: CalendarSyncConfig | None = None,
    drain: bool = True,
) -> str:
    """Store a Microsoft calendar with the user's grant, subscribe to it and queue its first sync."""
    c = stack.container
    assert c is not None
    stack.graph.add_user(email)
    refresh_token = stack.graph.grant(APP_ID, email)
    calendar = Calendar(
        calendar_id=calendar_id_for(CalendarKind.MICROSOFT, user, "primary"),
        kind=CalendarKind.MICROSOFT,
        user_id=user,
        owner_email=email,
        source_calendar_id="primary",
        sealed_refresh_token=grants.seal(refresh_token),
        filters=filters or CalendarFilters(),
    )
    assert c.repository.put_calendar(calendar, c.clock.now())
    graph = c.graph_subscriptions
    assert graph is not None
    open_subscription(
        calendar, repo=c.repository, microsoft=c.microsoft_calendars, graph=graph, clock=c.clock, config=config
    )
    c.calendar_sync_queue.send({"calendar_id": calendar.calendar_id, "reason": "registered"})
    if drain:
        stack.drain()
    return calendar.calendar_id
