"""Registering calendars: add an ICS feed, or connect a Google or Microsoft 365 calendar with the
user's refresh token; list, change and reconnect them; remove one.

Registering the same feed (or provider calendar) for the same user again finds the first
registration instead of making a second. A new calendar gets a sync job at once. Removing one
withdraws exactly what only that calendar asked for: a meeting that another calendar (or a direct
request) still wants keeps its bot.

    registered = add_ics_calendar(
        IcsRegistration("alice", feed_url), repo=repo, sync_queue=queue, clock=clock, check_address=guard.vet_url
    )
    connected = connect_calendar(GrantRegistration(CalendarKind.GOOGLE, "bob", refresh_token), deps=grant_deps)
    remove_calendar(registered.calendar.calendar_id, deps=deps, google=lambda: google)
"""

from __future__ import annotations

import contextlib
import hmac
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from meetpilot.app.calendar_decisions import forget_decisions
from meetpilot.app.calendar_sync import (
    CalendarSyncConfig,
    SyncDeps,
    graph_notification_urls,
    leave_meeting,
    open_channel,
    push_address,
)
from meetpilot.app.messages import CalendarSyncJob
from meetpilot.app.ports import (
    CalendarGrants,
    Calendars,
    CalendarStorage,
    ClaimUnavailable,
    GoogleCalendars,
    MessageQueue,
    MicrosoftCalendars,
)
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import (
    Calendar,
    CalendarFilters,
    CalendarKind,
    CalendarSourceError,
    PushChannel,
    calendar_id_for,
    check_feed_url,
)
from meetpilot.domain.clock import Clock
from meetpilot.errors import ConcurrentUpdate, InvalidInput, NotFound

# Graph refuses subscriptions on events more than 10,070 minutes ahead; the reconciler renews them daily.
# Google's refresh tokens are about 100 characters, Microsoft's a few thousand at most.
MAX_REFRESH_TOKEN = 8192


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
class GrantRegistration:
    """A Google or Microsoft 365 calendar, with the refresh token the user's app got at consent.

    ``source_calendar_id`` is the calendar at the provider: ``primary`` (the user's main calendar),
    a Google calendar id or a Microsoft calendar id.
    """

    kind: CalendarKind
    user_id: str
    refresh_token: str = field(repr=False)
    source_calendar_id: str = "primary"
    owner_email: str | None = None
    label: str = ""
    filters: CalendarFilters = field(default_factory=CalendarFilters)
    bot: BotSettings = field(default_factory=BotSettings)


@dataclass
class GrantDeps:
    """What connecting a calendar with a grant needs: storage, the grants, the sources, the sync queue."""

    repo: CalendarStorage
    grants: CalendarGrants
    google: Callable[[], GoogleCalendars]
    microsoft: Callable[[], MicrosoftCalendars]
    sync_queue: MessageQueue
    clock: Clock
    public_base_url: str
    new_id: Callable[[], str]
    new_token: Callable[[], str]
    config: CalendarSyncConfig = field(default_factory=CalendarSyncConfig)


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


def _check_token(refresh_token: str) -> str:
    token = refresh_token.strip()
    if not token:
        raise InvalidInput("refresh_token: is required to connect a Google or Microsoft calendar")
    if len(token) > MAX_REFRESH_TOKEN or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise InvalidInput("refresh_token: is not a refresh token (one line of printable characters, no spaces)")
    return token


def connect_calendar(registration: GrantRegistration, *, deps: GrantDeps) -> Registered:
    """Connect a Google or Microsoft calendar: seal its token, open its channel, store it, queue a full sync.

    The same user, provider and calendar again finds the first registration (``created`` False);
    the token it holds already changes nothing, any other one reconnects the calendar with it
    (``reconnect_calendar``). Opening the channel (Google) or subscription (Microsoft) also proves
    the grant works; a failure raises CalendarSourceError (AccessRevoked for a refused grant) and
    stores nothing, so a stale token posted again never replaces one that works.
    """
    kind = registration.kind
    if kind not in (CalendarKind.GOOGLE, CalendarKind.MICROSOFT):
        raise InvalidInput("provider: only google and microsoft calendars connect with a refresh token")
    user = _check_user(registration.user_id)
    token = _check_token(registration.refresh_token)
    source_id = registration.source_calendar_id.strip() or "primary"
    if len(source_id) > 1024:
        raise InvalidInput("calendar_id: at most 1024 characters")
    if not deps.public_base_url.lower().startswith(("https://", "http://")):
        raise InvalidInput("PUBLIC_BASE_URL must be set: the provider pushes changes to it")
    calendar_id = calendar_id_for(kind, user, source_id)
    existing = deps.repo.get_calendar(calendar_id)
    if existing is not None:
        if existing.removing:
            raise ConcurrentUpdate(f"calendar {calendar_id} is being removed; connect it again once it is gone")
        if existing.connected and _holds(existing, token, deps.grants):
            return Registered(existing, created=False)
        return Registered(reconnect_calendar(calendar_id, token, deps=deps), created=False)
    calendar = Calendar(
        calendar_id=calendar_id,
        kind=kind,
        user_id=user,
        owner_email=(registration.owner_email or "").strip().lower() or None,
        label=registration.label.strip()[:200],
        filters=registration.filters,
        bot=registration.bot,
        source_calendar_id=source_id,
        sealed_refresh_token=deps.grants.seal(token, calendar_id=calendar_id),
    )
    channel = _open(calendar, deps)
    calendar.channel_id, calendar.channel_expires_at = channel.channel_id, channel.expires_at
    if not deps.repo.put_calendar(calendar, deps.clock.now()):
        # Connected concurrently: keep theirs, close ours.
        _close(calendar, channel, deps)
        current = deps.repo.get_calendar(calendar_id)
        if current is None:
            raise ConcurrentUpdate(f"calendar {calendar_id} changed while being connected; try again")
        return Registered(current, created=False)
    deps.sync_queue.send(CalendarSyncJob(calendar_id=calendar_id, reason="registered", full=True).to_body())
    return Registered(calendar, created=True)


def reconnect_calendar(calendar_id: str, refresh_token: str, *, deps: GrantDeps) -> Calendar:
    """A new grant for a connected or disconnected calendar: open a new channel or subscription with
    it, then store it sealed, clear the disconnection, close the old channel and queue a full resync.

    Opening is what proves the grant works (a refused one raises AccessRevoked and changes nothing),
    so it is done for every provider, and a Graph subscription made under a refused grant is
    unauthorised anyway."""
    token = _check_token(refresh_token)
    calendar = deps.repo.get_calendar(calendar_id)
    if calendar is None:
        raise NotFound(f"no calendar {calendar_id}; 'calendars list' shows the registered ones")
    if calendar.kind not in (CalendarKind.GOOGLE, CalendarKind.MICROSOFT):
        raise InvalidInput("refresh_token: an ICS calendar has no grant; it reads its feed address")
    if calendar.removing:
        raise ConcurrentUpdate(f"calendar {calendar_id} is being removed")
    calendar.sealed_refresh_token = deps.grants.seal(token, calendar_id=calendar_id)
    old = deps.repo.get_channel(calendar.channel_id) if calendar.channel_id else None
    # With the new grant in hand (the in-memory calendar holds it), so opening proves it works.
    new = _open(calendar, deps)
    if not deps.repo.set_calendar_channel(calendar_id, new, expect_channel_id=calendar.channel_id):
        _close(calendar, new, deps)
        raise ConcurrentUpdate(f"calendar {calendar_id} changed while being reconnected; try again")
    if old is not None:
        _close(calendar, old, deps)
    calendar.channel_id, calendar.channel_expires_at = new.channel_id, new.expires_at
    if not deps.repo.reconnect_calendar(calendar_id, calendar.sealed_refresh_token):
        raise ConcurrentUpdate(f"calendar {calendar_id} is being removed")
    deps.sync_queue.send(CalendarSyncJob(calendar_id=calendar_id, reason="reconnected", full=True).to_body())
    current = deps.repo.get_calendar(calendar_id)
    if current is None:
        raise NotFound(f"calendar {calendar_id} was removed meanwhile")
    return current


def update_calendar(
    calendar_id: str, *, repo: Calendars, label: str | None = None, owner_email: str | None = None
) -> Calendar:
    """Change a calendar's label or owner e-mail ("" clears the e-mail); None leaves a field as it is."""
    if not repo.update_calendar_details(
        calendar_id,
        label=label.strip()[:200] if label is not None else None,
        owner_email=owner_email.strip().lower() if owner_email is not None else None,
    ):
        raise NotFound(f"no calendar {calendar_id}; 'calendars list' shows the registered ones")
    calendar = repo.get_calendar(calendar_id)
    if calendar is None:
        raise NotFound(f"calendar {calendar_id} was removed meanwhile")
    return calendar


def get_calendar(calendar_id: str, *, repo: Calendars) -> Calendar:
    calendar = repo.get_calendar(calendar_id)
    if calendar is None:
        raise NotFound(f"no calendar {calendar_id}; 'calendars list' shows the registered ones")
    return calendar


def _holds(calendar: Calendar, token: str, grants: CalendarGrants) -> bool:
    """Whether ``token`` is the refresh token the calendar already holds."""
    try:
        held = grants.refresh_token(calendar)
    except CalendarSourceError:
        return False  # unreadable: the new token is all there is
    return hmac.compare_digest(held.encode(), token.encode())


def _open(calendar: Calendar, deps: GrantDeps) -> PushChannel:
    """A new Google channel or Graph subscription on the calendar, stored (not yet pointed at)."""
    if calendar.kind is CalendarKind.GOOGLE:
        return open_channel(
            calendar,
            repo=deps.repo,
            google=deps.google(),
            address=push_address(deps.public_base_url),
            new_id=deps.new_id,
            new_token=deps.new_token,
            config=deps.config,
        )
    notification_url, lifecycle_url = graph_notification_urls(deps.public_base_url)
    channel = deps.microsoft().subscribe(
        calendar,
        client_state=deps.new_token(),
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        expires_at=deps.clock.now() + deps.config.subscription_lifetime,
    )
    deps.repo.put_channel(channel)
    return channel


def _close(calendar: Calendar, channel: PushChannel, deps: GrantDeps) -> None:
    # One the provider will not close expires on its own; its notifications find no channel item.
    with contextlib.suppress(CalendarSourceError):
        if calendar.kind is CalendarKind.GOOGLE:
            deps.google().stop(calendar, channel)
        else:
            deps.microsoft().unsubscribe(calendar, channel)
    deps.repo.delete_channel(channel.channel_id)


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


def remove_calendar(
    calendar_id: str,
    *,
    deps: SyncDeps,
    google: Callable[[], GoogleCalendars],
    microsoft: Callable[[], MicrosoftCalendars] | None = None,
) -> Removal:
    """Remove a calendar and withdraw what only it asked for.

    The calendar is first flagged (no sync or renewal starts on it any more) and its sync lease
    taken, so no sync adds a link behind the removal's back; a running sync raises CalendarBusy.
    Then its Google push channel is stopped or its Graph subscription deleted, and every event link
    leaves its meeting (cancelling the meetings nothing else wants). Running it again after a
    failure finishes the job.
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
    channel = repo.get_channel(calendar.channel_id) if calendar.channel_id else None
    if channel is not None and calendar.kind in (CalendarKind.GOOGLE, CalendarKind.MICROSOFT):
        try:
            if calendar.kind is CalendarKind.GOOGLE:
                google().stop(calendar, channel)
                removal.actions["channel_stopped"] += 1
            elif microsoft is not None:
                microsoft().unsubscribe(calendar, channel)
                removal.actions["subscription_deleted"] += 1
            else:
                removal.actions["channel_left_to_expire"] += 1
        except CalendarSourceError:
            # A revoked grant cannot stop anything; the channel or subscription expires on its own.
            removal.actions["channel_left_to_expire"] += 1
        repo.delete_channel(channel.channel_id)
    for link in repo.list_calendar_links(calendar_id):
        removal.actions[leave_meeting(link, deps)] += 1
    # Its decisions and overrides go with it (before the calendar item, so a rerun finds them).
    forget_decisions(calendar_id, repo=repo)
    repo.delete_calendar(calendar_id)
    return removal
