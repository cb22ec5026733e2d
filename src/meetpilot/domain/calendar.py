"""Calendar events as every calendar source reports them, and the errors a source can raise.

Each source (Google Calendar, an ICS feed) turns its own format into ``CalendarEvent``; the sync use
case only ever sees this one shape. An event is one *occurrence*: a recurring series arrives as its
instances, each with an id of its own that stays the same when the instance is moved.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from meetpilot.errors import InvalidInput, MeetpilotError

DEFAULT_OPT_OUT_WORD = "[no bot]"


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
    """The source no longer knows the stored sync token or delta link: drop it and run a full sync.

    Google answers 410 Gone; Microsoft Graph answers 410 (or 400) with ``syncStateNotFound`` or
    ``resyncRequired``.
    """

    def __init__(self, message: str = "the Google sync token is no longer valid; run a full sync") -> None:
        super().__init__(message, status=410, retryable=True)


class AccessRevoked(CalendarSourceError):
    """The user's grant no longer works (Google ``invalid_grant``, a Microsoft AADSTS refusal, consent
    withdrawn): nothing but a new refresh token helps, so the calendar is marked disconnected.

    The message is one line a support person can read, e.g. ``"Microsoft refused the refresh token
    (AADSTS700082: expired after inactivity); reconnect the calendar"``; it never holds a token.
    """

    def __init__(self, message: str, *, status: int | None = 400) -> None:
        super().__init__(message, status=status, retryable=False)


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
    # Lower-cased e-mail addresses of the organizer and the attendees (rooms left out), for the
    # per-calendar filters; empty when the source does not say.
    attendees: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class SkippedSeries:
    """A series (or one-off event) of a feed that could not be read, and why, in our words.

    The rest of the feed is synced without it; its meetings are left as they were.
    """

    uid: str
    reason: str


def describe_skipped(skipped: tuple[SkippedSeries, ...]) -> str | None:
    """One line for the calendar's record: how many series were skipped, which, and why."""
    if not skipped:
        return None
    count = len(skipped)
    head = "synced without one series" if count == 1 else f"synced without {count} series"
    listed = "; ".join(f"UID {_shown_uid(s.uid)} {s.reason}" for s in skipped[:5])
    more = f"; and {count - 5} more" if count > 5 else ""
    return f"{head} that could not be read: {listed}{more}"


def _shown_uid(uid: str) -> str:
    # A UID is whatever the feed says: printable characters only, and not too many of them.
    text = "".join(ch if ch.isprintable() else "?" for ch in uid)
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


# --- registered calendars -----------------------------------------------------------------------


class CalendarKind(StrEnum):
    ICS = "ics"
    GOOGLE = "google"
    MICROSOFT = "microsoft"


@dataclass(frozen=True)
class OAuthClient:
    """The user's own OAuth application at a calendar provider (stack configuration, in SSM).

    ``tenant`` is Microsoft's directory (a tenant id, or ``common`` / ``organizations``); Google has none.
    """

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None


@dataclass(frozen=True)
class CalendarFilters:
    """Per-calendar rules on top of "has a link, not all-day, not declined by the owner".

    ``external_only``: only meetings with someone from outside the owner's domain (and
    ``internal_domains``). ``min_attendees``: at least this many people (organizer included).
    ``opt_out_word``: a title containing it (any case) gets no bot; empty turns the rule off.
    """

    external_only: bool = False
    min_attendees: int = 0
    opt_out_word: str = DEFAULT_OPT_OUT_WORD
    internal_domains: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_attendees < 0:
            raise InvalidInput("min_attendees cannot be negative")
        object.__setattr__(self, "internal_domains", tuple(sorted({d.strip().lower() for d in self.internal_domains})))


def bot_refusal(event: CalendarEvent, filters: CalendarFilters, owner_email: str | None = None) -> str | None:
    """Why this occurrence gets no bot from its calendar, or None when it should have one.

    The reason is short and safe to log, e.g. ``"declined by the calendar owner"``.
    """
    if event.cancelled:
        return "cancelled"
    if event.declined_by_owner:
        return "declined by the calendar owner"
    if event.all_day or event.start is None:
        return "all-day event"
    if not event.meeting_url:
        return "no meeting link"
    if filters.opt_out_word and filters.opt_out_word.lower() in event.title.lower():
        return "opted out in the title"
    if filters.min_attendees and len(set(event.attendees)) < filters.min_attendees:
        return f"fewer than {filters.min_attendees} attendees"
    if filters.external_only:
        internal = set(filters.internal_domains)
        if owner_email and "@" in owner_email:
            internal.add(owner_email.rsplit("@", 1)[1].strip().lower())
        if not any(_domain(a) not in internal for a in event.attendees if _domain(a)):
            return "no external attendees"
    return None


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[1].lower() if "@" in address else ""


def calendar_event_id(calendar_id: str, event_id: str) -> str:
    """The id that names one event of one calendar everywhere (meeting items, the index)."""
    return f"{calendar_id}#{event_id}"


def calendar_id_for(kind: CalendarKind, user_id: str, source: str) -> str:
    """A stable id for a user's calendar: registering the same feed or calendar twice finds the first.

    A digest, so that an ICS feed's secret address never shows in the id (ids appear in logs).
    """
    digest = hashlib.sha256(f"{kind.value}\0{user_id}\0{source.strip()}".encode()).hexdigest()[:20]
    return f"{kind.value}-{digest}"


def check_feed_url(url: str) -> str:
    """A feed address meetpilot can poll (http, https or webcal, with a host); the message never echoes it."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise InvalidInput("the ICS feed address is not a URL") from None
    if parts.scheme.lower() not in ("http", "https", "webcal") or not parts.hostname:
        raise InvalidInput("the ICS feed address must be an http(s) or webcal URL with a host")
    return text


@dataclass
class Calendar:
    """A registered calendar: whose it is, where its events come from, and how far its sync got.

    ``feed_url`` and ``sync_token`` are secrets of a kind (the feed URL reads the calendar), so
    they stay out of the repr.
    """

    calendar_id: str
    kind: CalendarKind
    user_id: str
    owner_email: str | None = None
    label: str = ""
    filters: CalendarFilters = field(default_factory=CalendarFilters)
    feed_url: str | None = field(default=None, repr=False)
    etag: str | None = None
    # The calendar at its provider: a Google calendar id, a Microsoft calendar id, or "primary".
    source_calendar_id: str | None = None
    # The user's refresh token, sealed with the stack's KMS key (see the CalendarGrants port); only
    # the grants adapter can open it.
    sealed_refresh_token: str | None = field(default=None, repr=False)
    # Google: the sync token. Microsoft: the delta link of the last finished round.
    sync_token: str | None = field(default=None, repr=False)
    # Google: the push channel. Microsoft: the Graph subscription (its id and expiry).
    channel_id: str | None = None
    channel_expires_at: datetime | None = None
    # Set when the grant stopped working: the one-line reason. Cleared by a reconnect.
    disconnected_reason: str | None = None
    disconnected_at: datetime | None = None
    last_synced_at: datetime | None = None
    last_full_sync_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    sync_lease_until: datetime | None = None
    removing: bool = False
    created_at: datetime | None = None

    @property
    def connected(self) -> bool:
        return self.disconnected_reason is None

    @property
    def status(self) -> str:
        """``connected``, ``disconnected`` or ``removing``, as the API shows it."""
        if self.removing:
            return "removing"
        return "connected" if self.connected else "disconnected"


@dataclass(frozen=True)
class CalendarLink:
    """One calendar event pointing at the meeting it asks a bot for."""

    calendar_id: str
    event_id: str
    meeting_key: str
    start: datetime
    end: datetime | None = None
    recurring_event_id: str | None = None

    @property
    def calendar_event_id(self) -> str:
        return calendar_event_id(self.calendar_id, self.event_id)

    @property
    def last_moment(self) -> datetime:
        return self.end or self.start


@dataclass(frozen=True)
class PushChannel:
    """A Google push channel, or a Microsoft Graph subscription, on one calendar.

    ``token`` comes back on every notification (Google's ``X-Goog-Channel-Token``, Graph's
    ``clientState``). For Graph, ``channel_id`` is the subscription id and ``resource_id`` its resource.
    """

    channel_id: str
    calendar_id: str
    resource_id: str
    expires_at: datetime
    token: str = field(repr=False)


def channel_matches(expected_channel_id: str, expected_token: str, headers: Mapping[str, str]) -> bool:
    """Whether a push notification belongs to our channel: channel id and token, compared in constant time.

    Header names are matched case-insensitively (API Gateway lower-cases them). Missing headers,
    an empty expectation or any mismatch is False.
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    channel_id = lowered.get("x-goog-channel-id")
    token = lowered.get("x-goog-channel-token")
    if not expected_channel_id or not expected_token or not isinstance(channel_id, str) or not isinstance(token, str):
        return False
    # Both comparisons always run, so the timing does not tell which one failed.
    id_ok = hmac.compare_digest(channel_id.encode(), expected_channel_id.encode())
    token_ok = hmac.compare_digest(token.encode(), expected_token.encode())
    return id_ok and token_ok


def push_resource_state(headers: Mapping[str, str]) -> str | None:
    """``X-Goog-Resource-State`` of a notification: ``sync`` (channel opened; ignore), ``exists``, ``not_exists``."""
    for key, value in headers.items():
        if str(key).lower() == "x-goog-resource-state":
            return str(value).strip().lower() or None
    return None
