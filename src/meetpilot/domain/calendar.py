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

from meetpilot.domain.bot_settings import BotSettings
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
    # Whether the calendar's owner organises it, and how the owner answered the invitation
    # (accepted, tentative, declined, none, organizer); None when the source does not say.
    organized_by_owner: bool | None = None
    owner_response: str | None = None
    # The organiser's lower-cased address when the source names one (for a readable refusal).
    organizer: str | None = None

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


OWNER_RESPONSES = ("accepted", "tentative", "declined", "none", "organizer")


def _keywords(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    cleaned = []
    for value in values:
        word = " ".join(str(value).split()).lower()
        if word and word not in cleaned:
            cleaned.append(word[:100])
    if len(cleaned) > 50:
        raise InvalidInput("at most 50 title keywords per rule")
    return tuple(cleaned)


@dataclass(frozen=True)
class CalendarRules:
    """Per-calendar rules on top of "has a link, has a start, not all-day, not declined by the owner".

    With every rule off (the default) each meeting with a link gets a bot. Each rule that is set
    must pass (they combine with AND):

    - ``external_only``: someone from outside the owner's domain (and ``internal_domains``) attends;
    - ``organizer_only``: the owner organises it;
    - ``accepted_only``: the owner accepted it, or organises it;
    - ``min_attendees``: at least this many distinct people (organiser included);
    - ``include_keywords``: the title has at least one of these (any case);
    - ``exclude_keywords``: the title has none of these; ``opt_out_word`` is one more such word that
      is on by default (``"[no bot]"``); an empty word turns it off.

    When the source does not say who organises an event or how the owner answered (an ICS feed
    registered without the owner's address), ``organizer_only`` and ``accepted_only`` refuse it and
    say so ("the calendar does not say who organises it"): unknown never passes silently, and never
    skips silently either.
    """

    external_only: bool = False
    min_attendees: int = 0
    opt_out_word: str = DEFAULT_OPT_OUT_WORD
    internal_domains: tuple[str, ...] = ()
    organizer_only: bool = False
    accepted_only: bool = False
    include_keywords: tuple[str, ...] = ()
    exclude_keywords: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_attendees < 0:
            raise InvalidInput("min_attendees cannot be negative")
        if self.min_attendees > 10_000:
            raise InvalidInput("min_attendees above 10000 would refuse every meeting")
        object.__setattr__(self, "internal_domains", tuple(sorted({d.strip().lower() for d in self.internal_domains})))
        object.__setattr__(self, "include_keywords", _keywords(self.include_keywords))
        object.__setattr__(self, "exclude_keywords", _keywords(self.exclude_keywords))
        object.__setattr__(self, "opt_out_word", self.opt_out_word.strip())

    def as_dict(self) -> dict[str, object]:
        """The stored (and shown) form; ``from_dict`` reads it back, items written before included."""
        return {
            "external_only": self.external_only,
            "min_attendees": self.min_attendees,
            "opt_out_word": self.opt_out_word,
            "internal_domains": list(self.internal_domains),
            "organizer_only": self.organizer_only,
            "accepted_only": self.accepted_only,
            "include_keywords": list(self.include_keywords),
            "exclude_keywords": list(self.exclude_keywords),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object] | None) -> CalendarRules:
        f = dict(raw or {})

        def words(name: str) -> tuple[str, ...]:
            value = f.get(name)
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        minimum = f.get("min_attendees", 0)
        return cls(
            external_only=bool(f.get("external_only", False)),
            min_attendees=int(minimum) if isinstance(minimum, int | float | str) else 0,
            opt_out_word=str(f.get("opt_out_word", "")),
            internal_domains=words("internal_domains"),
            organizer_only=bool(f.get("organizer_only", False)),
            accepted_only=bool(f.get("accepted_only", False)),
            include_keywords=words("include_keywords"),
            exclude_keywords=words("exclude_keywords"),
        )


# The name the first version used; stored items and callers still say "filters".
CalendarFilters = CalendarRules


def source_refusal(event: CalendarEvent) -> str | None:
    """Why the event itself cannot have a bot, whatever the rules or an override say, or None."""
    if event.cancelled:
        return "cancelled"
    if event.all_day or event.start is None:
        return "all-day event"
    if not event.meeting_url:
        return "no meeting link"
    return None


@dataclass(frozen=True)
class EventFacts:
    """What the rules look at, and all a decision keeps of it: counts and domains, not addresses
    (the organiser's address alone, to name them in a refusal)."""

    title: str = ""
    declined_by_owner: bool = False
    owner_response: str | None = None
    organized_by_owner: bool | None = None
    organizer: str | None = None
    attendee_count: int = 0
    attendee_domains: tuple[str, ...] = ()

    @classmethod
    def of(cls, event: CalendarEvent) -> EventFacts:
        people = set(event.attendees)
        return cls(
            title=event.title[:300],
            declined_by_owner=event.declined_by_owner,
            owner_response=event.owner_response,
            organized_by_owner=event.organized_by_owner,
            organizer=event.organizer,
            attendee_count=len(people),
            attendee_domains=tuple(sorted({_domain(a) for a in people if _domain(a)})),
        )


def rule_refusal(event: CalendarEvent | EventFacts, rules: CalendarRules, owner_email: str | None = None) -> str | None:
    """The first of the calendar's rules (and the owner's decline) that refuses the event, or None.

    Each reason names its rule and what the event said, e.g. ``"rule min-attendees 3: 2 attendees"``.
    """
    facts = event if isinstance(event, EventFacts) else EventFacts.of(event)
    if facts.declined_by_owner or facts.owner_response == "declined":
        return "declined by the calendar owner"
    title = facts.title.lower()
    if rules.opt_out_word and rules.opt_out_word.lower() in title:
        return f"opted out in the title: {rules.opt_out_word!r}"
    for word in rules.exclude_keywords:
        if word in title:
            return f"rule exclude-keywords: title has {word!r}"
    if rules.include_keywords and not any(word in title for word in rules.include_keywords):
        return f"rule keywords: title has none of {', '.join(rules.include_keywords)}"
    if rules.min_attendees and facts.attendee_count < rules.min_attendees:
        counted = "1 attendee" if facts.attendee_count == 1 else f"{facts.attendee_count} attendees"
        return f"rule min-attendees {rules.min_attendees}: {counted}"
    if rules.external_only:
        internal = set(rules.internal_domains)
        owner_domain = _domain(owner_email or "")
        if owner_domain:
            internal.add(owner_domain)
        domains = list(facts.attendee_domains)
        if not domains:
            return "rule only-external: the calendar lists no attendees"
        if all(d in internal for d in domains):
            return f"rule only-external: all attendees at {', '.join(domains)}"
    organises = facts.organized_by_owner is True or facts.owner_response == "organizer"
    if rules.organizer_only and not organises:
        if facts.organized_by_owner is None and facts.owner_response is None:
            return "rule organiser-only: the calendar does not say who organises it"
        return f"rule organiser-only: organised by {facts.organizer or 'someone else'}"
    if rules.accepted_only and not (organises or facts.owner_response == "accepted"):
        if facts.owner_response is None and facts.organized_by_owner is None:
            return "rule accepted-only: the calendar does not say whether the owner accepted"
        answer = {"tentative": "answered tentative", "none": "not answered"}.get(
            facts.owner_response or "", "not accepted"
        )
        return f"rule accepted-only: {answer}"
    return None


def bot_refusal(event: CalendarEvent, filters: CalendarRules, owner_email: str | None = None) -> str | None:
    """Why this occurrence gets no bot from its calendar (no override), or None when it should have one.

    The reason is short and safe to log, e.g. ``"declined by the calendar owner"``.
    """
    return source_refusal(event) or rule_refusal(event, filters, owner_email)


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[1].strip().lower() if "@" in address else ""


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
    filters: CalendarRules = field(default_factory=CalendarRules)
    # The bot this calendar's meetings get, over the user's settings and the stack's (see
    # ``domain.bot_settings``); empty: inherit everything.
    bot: BotSettings = field(default_factory=BotSettings)
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
