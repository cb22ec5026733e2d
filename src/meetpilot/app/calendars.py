"""Registering calendars: add an ICS feed or a Google calendar for a user, list them, remove one.

Registering the same feed (or Google calendar) for the same user again finds the first
registration instead of making a second. A new calendar gets a sync job at once. Removing one
withdraws exactly what only that calendar asked for: a meeting that another calendar (or a direct
request) still wants keeps its bot.

    registered = add_ics_calendar(
        IcsRegistration("alice", feed_url), repo=repo, sync_queue=queue, clock=clock, check_address=guard.vet_url
    )
    remove_calendar(registered.calendar.calendar_id, deps=deps, google=lambda: google)
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from meetpilot.app.calendar_decisions import forget_decisions
from meetpilot.app.calendar_sync import CalendarSyncConfig, SyncDeps, leave_meeting, open_channel
from meetpilot.app.messages import CalendarSyncJob
from meetpilot.app.ports import Calendars, CalendarStorage, ClaimUnavailable, GoogleCalendars, MessageQueue
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import (
    Calendar,
    CalendarFilters,
    CalendarKind,
    CalendarSourceError,
    calendar_id_for,
    check_feed_url,
)
from meetpilot.domain.clock import Clock
from meetpilot.errors import ConcurrentUpdate, InvalidInput, NotFound


@dataclass(frozen=True)
class IcsRegistration:
    """A user's secret iCal address. ``owner_email`` lets meetpilot see the user's own declines."""

    user_id: str
    feed_url: str = field(repr=False)
    owner_email: str | None = None
    label: str = ""
    filters: CalendarFilters = field(default_factory=CalendarFilters)
    bot: BotSettings = field(default_factory=BotSettings)


@dataclass(frozen=True)
class GoogleRegistration:
    """A Google calendar, and the SSM SecureString holding ``{client_id, client_secret, refresh_token}``."""

    user_id: str
    google_calendar_id: str
    credentials_param: str
    owner_email: str | None = None
    label: str = ""
    filters: CalendarFilters = field(default_factory=CalendarFilters)


@dataclass(frozen=True)
class Registered:
    calendar: Calendar
    created: bool  # False: this calendar was registered already, nothing changed


def _check_user(user_id: str) -> str:
    user = user_id.strip()
    if not user:
        raise InvalidInput("a calendar needs the id of the user it belongs to")
    return user


def add_ics_calendar(
    registration: IcsRegistration,
    *,
    repo: Calendars,
    sync_queue: MessageQueue,
    clock: Clock,
    check_address: Callable[[str], None],
) -> Registered:
    """Register an ICS feed and queue its first sync.

    ``check_address`` resolves the feed's host and raises (an ``InvalidInput``) when it points inside
    or does not resolve: such an address is refused here, not stored to fail on every poll.
    """
    user = _check_user(registration.user_id)
    url = check_feed_url(registration.feed_url)
    try:
        check_address(url)
    except InvalidInput as exc:
        raise type(exc)(f"the ICS feed address cannot be used: {exc}") from None
    calendar_id = calendar_id_for(CalendarKind.ICS, user, url)
    calendar = Calendar(
        calendar_id=calendar_id,
        kind=CalendarKind.ICS,
        user_id=user,
        owner_email=(registration.owner_email or "").strip().lower() or None,
        label=registration.label.strip()[:200],
        filters=registration.filters,
        bot=registration.bot,
        feed_url=url,
    )
    if not repo.put_calendar(calendar, clock.now()):
        existing = repo.get_calendar(calendar_id)
        if existing is not None:
            return Registered(existing, created=False)
        raise ConcurrentUpdate(f"calendar {calendar_id} changed while being registered; try again")
    sync_queue.send(CalendarSyncJob(calendar_id=calendar_id, reason="registered").to_body())
    return Registered(calendar, created=True)


def add_google_calendar(
    registration: GoogleRegistration,
    *,
    repo: CalendarStorage,
    google: GoogleCalendars,
    sync_queue: MessageQueue,
    clock: Clock,
    address: str,
    secrets_prefix: str,
    new_id: Callable[[], str],
    new_token: Callable[[], str],
    config: CalendarSyncConfig | None = None,
) -> Registered:
    """Register a Google calendar: open its push channel, store both, queue a full sync.

    Opening the channel also proves the credentials parameter can be read and the calendar
    exists; a failure raises CalendarSourceError and stores nothing.
    """
    user = _check_user(registration.user_id)
    google_id = registration.google_calendar_id.strip()
    param = registration.credentials_param.strip()
    if not google_id:
        raise InvalidInput("a Google calendar id is required (e.g. the owner's address for the primary calendar)")
    if not param.startswith("/") or (secrets_prefix and not param.startswith(secrets_prefix)):
        raise InvalidInput(
            f"the credentials parameter must be an SSM name under {secrets_prefix or '/'} "
            "(the functions may read only that path)"
        )
    if not address.lower().startswith(("https://", "http://")):
        raise InvalidInput("PUBLIC_BASE_URL must be set: Google pushes changes to it")
    calendar_id = calendar_id_for(CalendarKind.GOOGLE, user, google_id)
    existing = repo.get_calendar(calendar_id)
    if existing is not None:
        return Registered(existing, created=False)
    calendar = Calendar(
        calendar_id=calendar_id,
        kind=CalendarKind.GOOGLE,
        user_id=user,
        owner_email=(registration.owner_email or "").strip().lower() or None,
        label=registration.label.strip()[:200],
        filters=registration.filters,
        source_calendar_id=google_id,
        credentials_param=param,
    )
    channel = open_channel(
        calendar,
        repo=repo,
        google=google,
        address=address,
        new_id=new_id,
        new_token=new_token,
        config=config or CalendarSyncConfig(),
    )
    calendar.channel_id, calendar.channel_expires_at = channel.channel_id, channel.expires_at
    if not repo.put_calendar(calendar, clock.now()):
        # Registered concurrently: keep theirs, close ours.
        with contextlib.suppress(CalendarSourceError):
            google.stop(calendar, channel)
        repo.delete_channel(channel.channel_id)
        current = repo.get_calendar(calendar_id)
        if current is None:
            raise ConcurrentUpdate(f"calendar {calendar_id} changed while being registered; try again")
        return Registered(current, created=False)
    sync_queue.send(CalendarSyncJob(calendar_id=calendar_id, reason="registered", full=True).to_body())
    return Registered(calendar, created=True)


def list_calendars(*, repo: Calendars, user_id: str | None = None) -> list[Calendar]:
    """Registered calendars, a user's only when ``user_id`` is given, ordered by user and id."""
    calendars = [c for c in repo.list_calendars() if user_id is None or c.user_id == user_id]
    return sorted(calendars, key=lambda c: (c.user_id, c.calendar_id))


def request_sync(calendar_id: str, *, repo: Calendars, queue: MessageQueue, full: bool = False) -> None:
    """Queue a sync of one calendar now (``full`` re-lists a Google calendar from scratch)."""
    if repo.get_calendar(calendar_id) is None:
        raise NotFound(f"no calendar {calendar_id}; 'calendars list' shows the registered ones")
    queue.send(CalendarSyncJob(calendar_id=calendar_id, reason="requested", full=full).to_body())


class CalendarBusy(ConcurrentUpdate):
    """A sync of the calendar is running; the removal can go on once it is done."""

    def __init__(self, calendar_id: str, retry_in: float) -> None:
        super().__init__(f"calendar {calendar_id} is being synced; run the removal again in {retry_in:.0f} s")
        self.retry_in = retry_in


@dataclass
class Removal:
    calendar_id: str
    actions: Counter[str] = field(default_factory=Counter)


def remove_calendar(calendar_id: str, *, deps: SyncDeps, google: Callable[[], GoogleCalendars]) -> Removal:
    """Remove a calendar and withdraw what only it asked for.

    The calendar is first flagged (no sync or renewal starts on it any more) and its sync lease
    taken, so no sync adds a link behind the removal's back; a running sync raises CalendarBusy.
    Then its push channel is stopped and every event link leaves its meeting (cancelling the
    meetings nothing else wants). Running it again after a failure finishes the job.
    """
    repo = deps.repo
    now = deps.clock.now()
    calendar = repo.get_calendar(calendar_id)
    if calendar is None:
        raise NotFound(f"no calendar {calendar_id}; 'calendars list' shows the registered ones")
    removal = Removal(calendar_id)
    repo.mark_calendar_removing(calendar_id)
    try:
        repo.claim_calendar_sync(calendar_id, now=now, lease_seconds=deps.config.lease_seconds, removal=True)
    except ClaimUnavailable as busy:
        if busy.state == "busy":
            raise CalendarBusy(calendar_id, busy.retry_in_seconds or 1.0) from None
        raise NotFound(f"calendar {calendar_id} was removed meanwhile") from None
    if calendar.kind is CalendarKind.GOOGLE and calendar.channel_id:
        channel = repo.get_channel(calendar.channel_id)
        if channel is not None:
            try:
                google().stop(calendar, channel)
                removal.actions["channel_stopped"] += 1
            except CalendarSourceError:
                removal.actions["channel_left_to_expire"] += 1
            repo.delete_channel(channel.channel_id)
    for link in repo.list_calendar_links(calendar_id):
        removal.actions[leave_meeting(link, deps)] += 1
    # Its decisions and overrides go with it (before the calendar item, so a rerun finds them).
    forget_decisions(calendar_id, repo=repo)
    repo.delete_calendar(calendar_id)
    return removal
