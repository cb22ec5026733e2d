"""Helpers for calendar tests on the local stack: ICS documents, registration, syncing, bot counts."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meetpilot.app.calendar_sync import CalendarSyncConfig
from meetpilot.app.calendars import GrantDeps, GrantRegistration, IcsRegistration, add_ics_calendar, connect_calendar
from meetpilot.app.dispatch import dispatch_meeting
from meetpilot.domain.calendar import CalendarFilters, CalendarKind
from meetpilot_dev.simulator.lifecycle import FINAL_STATUSES
from meetpilot_dev.stack.embedded import LocalStack


@dataclass
class Ev:
    """One VEVENT for ``ics``."""

    uid: str
    start: datetime
    minutes: int = 30
    url: str | None = None
    title: str = "Meeting"
    status: str | None = None  # CANCELLED
    where: str = "LOCATION"  # or DESCRIPTION
    attendees: list[tuple[str, str]] = field(default_factory=list)  # (email, PARTSTAT)
    organizer: str | None = None
    sequence: int = 0


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ics(events: Iterable[Ev]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//meetpilot tests//EN"]
    for e in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{e.uid}",
            f"DTSTAMP:{_stamp(datetime.now(UTC))}",
            f"SEQUENCE:{e.sequence}",
            f"DTSTART:{_stamp(e.start)}",
            f"DTEND:{_stamp(e.start + timedelta(minutes=e.minutes))}",
            f"SUMMARY:{e.title}",
        ]
        if e.url:
            lines.append(f"{e.where}:{e.url}")
        if e.status:
            lines.append(f"STATUS:{e.status}")
        if e.organizer:
            lines.append(f"ORGANIZER:mailto:{e.organizer}")
        for email, partstat in e.attendees:
            lines.append(f"ATTENDEE;PARTSTAT={partstat}:mailto:{email}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def register_ics(
    stack: LocalStack, user: str, url: str, *, owner_email: str | None = None, filters: CalendarFilters | None = None
) -> str:
    c = stack.container
    registered = add_ics_calendar(
        IcsRegistration(user, url, owner_email=owner_email, filters=filters or CalendarFilters()),
        repo=c.repository,
        sync_queue=c.calendar_sync_queue,
        clock=c.clock,
        check_address=c.feed_guard.vet_url,
    )
    stack.drain()
    return registered.calendar.calendar_id


def grant_deps(stack: LocalStack, *, config: CalendarSyncConfig | None = None, microsoft: Any = None) -> GrantDeps:
    """What connecting a calendar with a grant needs, on the local stack."""
    c = stack.container
    assert c is not None

    def no_microsoft() -> Any:
        raise AssertionError("this test connects no Microsoft calendar")

    return GrantDeps(
        repo=c.repository,
        grants=c.calendar_grants,
        google=lambda: c.google_calendars,
        microsoft=(lambda: microsoft) if microsoft is not None else no_microsoft,
        sync_queue=c.calendar_sync_queue,
        clock=c.clock,
        public_base_url=c.settings.public_base_url,
        new_id=lambda: str(uuid.uuid4()),
        new_token=lambda: secrets.token_urlsafe(32),
        config=config or CalendarSyncConfig(),
    )


def connect_google(
    stack: LocalStack,
    user: str,
    refresh_token: str,
    *,
    calendar: str = "primary",
    owner_email: str | None = None,
    ttl_seconds: int = 7 * 86400,
) -> str:
    """Connect a Google calendar with a user's refresh token (as POST /v1/calendars does), sync it."""
    registered = connect_calendar(
        GrantRegistration(CalendarKind.GOOGLE, user, refresh_token, calendar, owner_email=owner_email),
        deps=grant_deps(stack, config=CalendarSyncConfig(channel_ttl_seconds=ttl_seconds)),
    )
    stack.drain()
    return registered.calendar.calendar_id


def sync(stack: LocalStack, *calendar_ids: str, full: bool = False) -> None:
    for calendar_id in calendar_ids:
        stack.container.calendar_sync_queue.send({"calendar_id": calendar_id, "full": full})
    stack.drain()


def dispatch(stack: LocalStack, key: str, clock=None):
    c = stack.container
    return dispatch_meeting(
        key,
        attempt=0,
        repo=c.repository,
        provider=c.provider,
        secrets=c.secrets,
        config=c.dispatch_config,
        clock=clock or c.clock,
    )


def live_bots(stack: LocalStack) -> list[dict]:
    """Bots the provider still runs or will run: not cancelled, not out of their meeting."""
    return [b for b in stack.simulator.bots() if not b["cancelled"] and b["status"] not in FINAL_STATUSES]


def schedules(stack: LocalStack) -> dict[str, str]:
    """Schedule name -> its at() expression, in the stack's schedule group."""
    scheduler = stack.container.client("scheduler")
    group = stack.container.settings.schedule_group
    out = {}
    for s in scheduler.list_schedules(GroupName=group)["Schedules"]:
        out[s["Name"]] = scheduler.get_schedule(Name=s["Name"], GroupName=group)["ScheduleExpression"]
    return out


def queued(stack: LocalStack, setting: str = "calendar_sync_queue_url") -> int:
    sqs = stack.container.client("sqs")
    url = getattr(stack.container.settings, setting)
    names = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in names)
