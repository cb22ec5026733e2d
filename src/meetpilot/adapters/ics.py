"""ICS feeds: fetch a secret iCal address with ETag revalidation, and expand it into occurrences.

A feed URL is a bearer secret (anyone holding it reads the calendar), so it never appears in an
error message, a log line or a chained traceback: only its scheme and host do.

Times: ``TZID`` values use that zone (IANA or Windows names, or the feed's own VTIMEZONE); UTC stays
UTC; *floating* times (no zone) and times in a zone nobody can resolve are read in the feed's
``X-WR-TIMEZONE`` when it declares one, and otherwise as UTC. All-day (DATE) events are reported
with ``all_day=True`` and no start or end.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import icalendar
import recurring_ical_events

from meetpilot.adapters.public_http import MAX_REDIRECTS, DestinationGuard, overall_deadline, public_http_client
from meetpilot.app.ports import FeedRead
from meetpilot.domain.calendar import CalendarEvent, CalendarSourceError, SkippedSeries
from meetpilot.domain.links import find_meeting_url
from meetpilot.errors import DeadlineExceeded, RefusedDestination, UnresolvableHost

logger = logging.getLogger(__name__)

_USER_AGENT = "meetpilot-ics/1"
# Expansion is padded so that floating times read in another zone by the expander are not cut
# off; the exact window is applied afterwards on UTC instants.
_EXPANSION_PADDING = timedelta(days=2)
_MAX_OCCURRENCES = 20_000
# Meetings do not repeat every second or minute; such a rule would expand into tens of thousands of
# occurrences per window, so its series is skipped (and logged) instead of stalling the poll.
_UNSUPPORTED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY"})
# Where calendar programs put a conference link, most specific first.
_CONFERENCE_PROPERTIES = ("X-GOOGLE-CONFERENCE", "X-MICROSOFT-SKYPETEAMSMEETINGURL", "CONFERENCE")


@dataclass(frozen=True)
class FeedFetch:
    """The result of one conditional fetch: ``not_modified`` (HTTP 304) or the new body and ETag."""

    not_modified: bool
    etag: str | None
    body: bytes | None


def redact_feed_url(url: str) -> str:
    """The part of a feed URL that is safe to show: scheme and host, never path, query or user info."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or "?"
    except ValueError:
        return "<feed URL>"
    scheme = parts.scheme.lower() or "?"
    return f"{scheme}://{host}/…"


class IcsFeedClient:
    """Fetches ICS feeds over HTTP(S), revalidating with ``If-None-Match``.

    ``webcal://`` addresses are fetched over HTTPS. Only public addresses are connected to (see
    ``meetpilot.adapters.public_http``), on the first hop and on each of at most five redirects, and
    the whole fetch ends within ``deadline`` seconds. The body is read in chunks and abandoned once it
    exceeds ``max_bytes`` (after decompression). An ``http`` client passed in is used as it is, guard
    or none (tests with a mock transport).
    """

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        timeout: float = 15.0,
        deadline: float = 30.0,
        max_bytes: int = 20 * 1024 * 1024,
        guard: DestinationGuard | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._guard = guard or DestinationGuard()
        self._http = http or public_http_client(self._guard, timeout=timeout, verify=verify)
        self._timeout = timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        _install_log_redaction()

    def close(self) -> None:
        self._http.close()

    def fetch(self, url: str, etag: str | None = None) -> FeedFetch:
        """Fetch ``url``; with ``etag`` from the last good fetch, an unchanged feed costs one 304.

        Raises ``CalendarSourceError`` for a non-2xx answer, a body over the size limit, an address
        inside, a fetch past its deadline, or a network failure. The message is one line of our own:
        it names the feed's host and what failed, never the path or anything the server sent.
        """
        target = _fetchable(url)
        shown = redact_feed_url(url)
        headers = {"Accept": "text/calendar, */*;q=0.5", "User-Agent": _USER_AGENT}
        if etag:
            headers["If-None-Match"] = etag
        token = _FETCHING_FEED.set(True)
        try:
            with (
                overall_deadline(self._deadline),
                self._http.stream("GET", target, headers=headers, timeout=self._timeout) as response,
            ):
                if response.status_code == 304:
                    return FeedFetch(not_modified=True, etag=response.headers.get("ETag") or etag, body=None)
                if not 200 <= response.status_code < 300:
                    raise CalendarSourceError(
                        f"ICS feed {shown} answered HTTP {response.status_code}{_status_hint(response.status_code)}",
                        status=response.status_code,
                        retryable=response.status_code == 429 or response.status_code >= 500,
                    )
                body = self._read_limited(response, shown)
                return FeedFetch(not_modified=False, etag=response.headers.get("ETag"), body=body)
        except (
            RefusedDestination,
            UnresolvableHost,
            DeadlineExceeded,
            httpx.HTTPError,
            httpx.InvalidURL,
            httpx.StreamError,
        ) as exc:
            # ``from None``: httpx exceptions carry the request, and so the secret URL.
            raise _fetch_failure(exc, shown, self._deadline) from None
        finally:
            _FETCHING_FEED.reset(token)

    def _read_limited(self, response: httpx.Response, shown: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise CalendarSourceError(
                f"ICS feed {shown} is {int(declared)} bytes, over the {self._max_bytes}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise CalendarSourceError(f"ICS feed {shown} is over the {self._max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


def _fetch_failure(exc: Exception, shown: str, deadline: float) -> CalendarSourceError:
    """What went wrong, in our words: exception texts from below may quote the server or the URL."""
    prefix = f"could not fetch ICS feed {shown}"
    if isinstance(exc, RefusedDestination):
        return CalendarSourceError(f"refused to fetch ICS feed {shown}: {exc}")
    if isinstance(exc, UnresolvableHost):
        return CalendarSourceError(f"{prefix}: its host name does not resolve", retryable=True)
    if isinstance(exc, DeadlineExceeded):
        return CalendarSourceError(f"{prefix}: it took longer than the {deadline:g} s allowed", retryable=True)
    if isinstance(exc, httpx.TooManyRedirects):
        return CalendarSourceError(f"{prefix}: it redirected more than {MAX_REDIRECTS} times")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return CalendarSourceError(f"{prefix}: it redirected to an address that is not http(s)")
    if isinstance(exc, httpx.TimeoutException):
        return CalendarSourceError(f"{prefix}: the server did not answer in time", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return CalendarSourceError(f"{prefix}: its TLS certificate is not valid for that host")
        return CalendarSourceError(f"{prefix}: the connection could not be made", retryable=True)
    if isinstance(exc, httpx.TransportError):
        return CalendarSourceError(f"{prefix}: the connection broke off ({type(exc).__name__})", retryable=True)
    return CalendarSourceError(f"{prefix} ({type(exc).__name__})", retryable=True)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # httpx -> httpcore -> ssl: a short chain
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class IcsFeeds:
    """The sync use case's view of ICS feeds: one conditional fetch, then the occurrences in a window."""

    def __init__(self, client: IcsFeedClient | None = None) -> None:
        self._client = client or IcsFeedClient()

    def read(
        self,
        url: str,
        etag: str | None,
        *,
        calendar_id: str,
        window_start: datetime,
        window_end: datetime,
        owner_email: str | None,
    ) -> FeedRead:
        fetched = self._client.fetch(url, etag)
        if fetched.not_modified or fetched.body is None:
            return FeedRead(not_modified=True, etag=fetched.etag)
        parsed = read_feed(
            fetched.body,
            calendar_id=calendar_id,
            window_start=window_start,
            window_end=window_end,
            owner_email=owner_email,
        )
        return FeedRead(
            not_modified=False, etag=fetched.etag, events=tuple(parsed.events), skipped_series=parsed.skipped
        )


@dataclass(frozen=True)
class ParsedFeed:
    """The occurrences of a feed in a window, and the series left out because they could not be read."""

    events: list[CalendarEvent]
    skipped: tuple[SkippedSeries, ...] = ()


def parse_feed(
    body: bytes,
    *,
    calendar_id: str,
    window_start: datetime,
    window_end: datetime,
    owner_email: str | None = None,
) -> list[CalendarEvent]:
    """The events of ``read_feed``, without the report of skipped series."""
    return read_feed(
        body, calendar_id=calendar_id, window_start=window_start, window_end=window_end, owner_email=owner_email
    ).events


def read_feed(
    body: bytes,
    *,
    calendar_id: str,
    window_start: datetime,
    window_end: datetime,
    owner_email: str | None = None,
) -> ParsedFeed:
    """Every occurrence that overlaps ``[window_start, window_end)``, as calendar events.

    Recurring series are expanded (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides). An occurrence's id
    is the UID for a one-off event and ``UID/<original start>`` for a series instance (the original
    start in UTC, ``YYYYMMDDTHHMMSSZ``, or ``YYYYMMDD`` for all-day series), so a moved instance
    keeps its id. An instance removed with EXDATE is reported as a cancelled event, so a bot that was
    scheduled for it can be withdrawn. ``STATUS:CANCELLED`` marks an event or instance cancelled; the
    owner's ``ATTENDEE`` entry with ``PARTSTAT=DECLINED`` marks it declined.

    A series (all components of one UID) that cannot be expanded or read is left out whole and
    named in ``skipped``; the other series are kept. A body that is not iCalendar at all raises
    ``CalendarSourceError``: the caller keeps its last good state rather than acting on nothing.
    Messages are our own words: nothing of the body is quoted but a skipped series' UID.
    """
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("the window must be timezone-aware")
    window_start = window_start.astimezone(UTC)
    window_end = window_end.astimezone(UTC)
    try:
        calendars = icalendar.Calendar.from_ical(body, multiple=True)
    except ValueError:
        raise CalendarSourceError(
            "the ICS feed is not valid iCalendar (a line cannot be read; the address may lead to a web page)"
        ) from None
    if not calendars or any(cal.name != "VCALENDAR" for cal in calendars):
        raise CalendarSourceError("the ICS feed is not valid iCalendar: no VCALENDAR object")
    owner = _email(owner_email) if owner_email else None
    found: dict[str, tuple[int, CalendarEvent]] = {}
    skipped: dict[str, str] = {}
    for cal in calendars:
        for sequence, event in _events_of(cal, calendar_id, window_start, window_end, owner, skipped):
            kept = found.get(event.event_id)
            # The same UID twice (a feed that repeats an event): the higher SEQUENCE is the newer one.
            if kept is None or sequence > kept[0]:
                found[event.event_id] = (sequence, event)
    events = sorted(
        (event for _, event in found.values() if _series_of(event) not in skipped),
        key=lambda e: (e.start or datetime.min.replace(tzinfo=UTC), e.event_id),
    )
    for uid, reason in skipped.items():
        logger.warning("skipping ICS series %r: %s", uid[:80], reason)
    return ParsedFeed(events, tuple(SkippedSeries(uid, reason) for uid, reason in skipped.items()))


def _series_of(event: CalendarEvent) -> str:
    return event.recurring_event_id or event.event_id


# --- expansion --------------------------------------------------------------------------------


def _events_of(
    cal: icalendar.Calendar,
    calendar_id: str,
    window_start: datetime,
    window_end: datetime,
    owner: str | None,
    skipped: dict[str, str],
) -> Iterator[tuple[int, CalendarEvent]]:
    """The calendar's events in the window; a series that cannot be read goes into ``skipped`` instead."""
    default_zone = _declared_zone(cal)
    recurring_uids: set[str] = set()
    for component in cal.walk("VEVENT"):
        if any(name in component for name in ("RRULE", "RDATE", "RECURRENCE-ID")):
            recurring_uids.add(_uid(component))
    _drop_unsupported_series(cal, skipped)

    occurrences = _expand(cal, window_start - _EXPANSION_PADDING, window_end + _EXPANSION_PADDING, skipped)
    if len(occurrences) > _MAX_OCCURRENCES:
        raise CalendarSourceError(
            f"the ICS feed has {len(occurrences)} occurrences in the sync window, over the limit of {_MAX_OCCURRENCES}"
        )

    seen: set[str] = set()
    for occurrence in occurrences:
        uid = _uid(occurrence)
        if uid in skipped:
            continue
        try:
            event = _occurrence_event(occurrence, calendar_id, recurring_uids, default_zone, owner)
        except (ValueError, TypeError, AttributeError, KeyError):
            skipped[uid] = "has an instance whose times cannot be read"
            continue
        seen.add(event.event_id)
        if _overlaps(occurrence, event, window_start, window_end, default_zone):
            yield _sequence(occurrence), event

    for sequence, event in _excluded_instances(cal, calendar_id, default_zone, owner, skipped):
        if event.event_id not in seen and _instant_in_window(event, window_start, window_end):
            yield sequence, event


def _expand(
    cal: icalendar.Calendar, start: datetime, end: datetime, skipped: dict[str, str]
) -> list[icalendar.Component]:
    """Every occurrence between ``start`` and ``end``, series by series once one of them fails.

    ``recurring_ical_events`` can skip bad series itself (``skip_bad_series``), but it cannot say
    which one it dropped, and skips only three error classes: a feed's owner needs to know which.
    """
    try:
        occurrences: list[icalendar.Component] = recurring_ical_events.of(cal).between(start, end)
        return occurrences
    except Exception:  # noqa: S110 - the expander raises many types for one cause; found below
        pass
    occurrences = []
    for uid, part in _series_calendars(cal):
        try:
            occurrences.extend(recurring_ical_events.of(part).between(start, end))
        except Exception as exc:  # one bad series: leave it out, keep the others
            skipped[uid] = _expansion_failure(exc)
    return occurrences


def _series_calendars(cal: icalendar.Calendar) -> Iterator[tuple[str, icalendar.Calendar]]:
    """One calendar per UID: its events, with the feed's properties and time zones around them."""
    zones = [c for c in cal.subcomponents if c.name == "VTIMEZONE"]
    by_uid: dict[str, list[icalendar.Component]] = {}
    for component in cal.subcomponents:
        if component.name == "VEVENT":
            by_uid.setdefault(_uid(component), []).append(component)
    for uid, components in by_uid.items():
        part = icalendar.Calendar()
        for name, value in cal.property_items(recursive=False)[1:-1]:  # without BEGIN and END
            part.add(name, value)
        part.subcomponents.extend(zones + components)
        yield uid, part


def _expansion_failure(exc: Exception) -> str:
    if isinstance(exc, recurring_ical_events.BadRuleStringFormat):
        return "has a repeat rule (RRULE) that cannot be read"
    if isinstance(exc, recurring_ical_events.PeriodEndBeforeStart):
        return "ends before it starts"
    if isinstance(exc, ValueError | TypeError):
        return "has a date, time or repeat rule that cannot be read"
    return f"cannot be expanded ({type(exc).__name__})"


def _occurrence_event(
    component: icalendar.Component,
    calendar_id: str,
    recurring_uids: set[str],
    default_zone: tzinfo,
    owner: str | None,
) -> CalendarEvent:
    uid = _uid(component)
    start_value = component.decoded("DTSTART")
    end_value = component.get("DTEND")
    end_raw = end_value.dt if end_value is not None else start_value
    all_day = not isinstance(start_value, datetime)
    event_id = uid
    if uid in recurring_uids:
        recurrence = component.get("RECURRENCE-ID")
        original = recurrence.dt if recurrence is not None else start_value
        event_id = f"{uid}/{_occurrence_stamp(original, default_zone)}"
    return CalendarEvent(
        calendar_id=calendar_id,
        event_id=event_id,
        title=str(component.get("SUMMARY", "")).strip(),
        start=None if all_day else _utc(start_value, default_zone),
        end=None if all_day else _utc(end_raw, default_zone),
        all_day=all_day,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
        declined_by_owner=_declined_by(component, owner),
        meeting_url=_meeting_url(component),
        updated=_updated(component, default_zone),
        recurring_event_id=uid if uid in recurring_uids else None,
        attendees=_attendees(component),
        **_ownership(component, owner),
    )


def _excluded_instances(
    cal: icalendar.Calendar, calendar_id: str, default_zone: tzinfo, owner: str | None, skipped: dict[str, str]
) -> Iterator[tuple[int, CalendarEvent]]:
    """One cancelled event per EXDATE of each series: a removed instance is a cancelled meeting."""
    for master in cal.walk("VEVENT"):
        if "RECURRENCE-ID" in master or not ("RRULE" in master or "RDATE" in master) or "EXDATE" not in master:
            continue
        uid = _uid(master)
        if uid in skipped:
            continue
        try:
            yield from list(_excluded_of(master, uid, calendar_id, default_zone, owner))
        except (ValueError, TypeError, AttributeError, KeyError):
            skipped[uid] = "has an EXDATE that cannot be read"


def _excluded_of(
    master: icalendar.Component, uid: str, calendar_id: str, default_zone: tzinfo, owner: str | None
) -> Iterator[tuple[int, CalendarEvent]]:
    start_value = master.decoded("DTSTART")
    duration = _duration(master, start_value)
    master_zone = start_value.tzinfo if isinstance(start_value, datetime) else None
    for value in _exdates(master):
        excluded = value
        if isinstance(value, datetime) and value.tzinfo is None and master_zone is not None:
            excluded = value.replace(tzinfo=master_zone)  # a floating EXDATE is in DTSTART's zone
        all_day = not isinstance(excluded, datetime)
        start = None if all_day else _utc(excluded, default_zone)
        yield (
            _sequence(master),
            CalendarEvent(
                calendar_id=calendar_id,
                event_id=f"{uid}/{_occurrence_stamp(excluded, default_zone)}",
                title=str(master.get("SUMMARY", "")).strip(),
                start=start,
                end=start + duration if start is not None else None,
                all_day=all_day,
                cancelled=True,
                declined_by_owner=_declined_by(master, owner),
                meeting_url=_meeting_url(master),
                updated=_updated(master, default_zone),
                recurring_event_id=uid,
                attendees=_attendees(master),
                **_ownership(master, owner),
            ),
        )


def _drop_unsupported_series(cal: icalendar.Calendar, skipped: dict[str, str]) -> None:
    for component in list(cal.subcomponents):
        if component.name != "VEVENT" or "RRULE" not in component:
            continue
        try:
            rules = _values(component, "RRULE")
            frequencies = {str(f).upper() for rule in rules for f in rule.get("FREQ", [])}
            intervals = [int(i) for rule in rules for i in rule.get("INTERVAL", [])]
        except (ValueError, AttributeError, TypeError):
            continue  # a broken rule: the expander reports it
        if frequencies & _UNSUPPORTED_FREQUENCIES:
            skipped[_uid(component)] = f"repeats {'/'.join(sorted(frequencies))}, which no meeting does"
            cal.subcomponents.remove(component)
        elif any(interval < 1 for interval in intervals):
            # dateutil would look for the next instance of an INTERVAL=0 rule forever.
            skipped[_uid(component)] = "has a repeat rule with an INTERVAL below 1"
            cal.subcomponents.remove(component)


# --- fields -----------------------------------------------------------------------------------


def _uid(component: icalendar.Component) -> str:
    uid = str(component.get("UID", "")).strip()
    if uid:
        return uid
    # RFC 5545 requires a UID; some exporters omit it. A digest of what identifies the event in
    # the feed keeps the id stable from one poll to the next.
    start = component.get("DTSTART")
    basis = f"{start.to_ical().decode() if start is not None else ''}|{component.get('SUMMARY', '')}"
    return "no-uid-" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def _sequence(component: icalendar.Component) -> int:
    try:
        return int(component.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        return 0


def _meeting_url(component: icalendar.Component) -> str | None:
    conference = None
    for name in _CONFERENCE_PROPERTIES:
        for value in _values(component, name):
            text = str(value).strip()
            if text and find_meeting_url(hangout_link=text):
                conference = text
                break
        if conference:
            break
    location = " ".join(str(v) for v in _values(component, "LOCATION")) or None
    # Outlook sends the invitation twice: as HTML (X-ALT-DESC, links in <a href>) and as plain text
    # (links in <angle brackets>). Each is read on its own so neither format confuses the other.
    html = "\n".join(str(v) for v in _values(component, "X-ALT-DESC")) or None
    plain = "\n".join(str(v) for v in _values(component, "DESCRIPTION")) or None
    url = find_meeting_url(hangout_link=conference, location=location, description=html)
    if url is None and plain:
        url = find_meeting_url(description=plain)
    if url is None:
        # The URL property usually links to an event page, but a few exporters put the join link there.
        for value in _values(component, "URL"):
            url = find_meeting_url(location=str(value))
            if url:
                break
    return url


def _values(component: icalendar.Component, name: str) -> list[Any]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _email(address: object) -> str:
    text = str(address).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _attendees(component: icalendar.Component) -> tuple[str, ...]:
    """ORGANIZER and ATTENDEE addresses, lower-cased, rooms and resources left out."""
    found: list[str] = []
    for value in _values(component, "ORGANIZER") + _values(component, "ATTENDEE"):
        params = getattr(value, "params", {})
        if str(params.get("CUTYPE", "")).upper() in ("ROOM", "RESOURCE"):
            continue
        email = _email(value)
        if "@" in email and email not in found:
            found.append(email)
    return tuple(found)


# PARTSTAT in the words of CalendarEvent.owner_response (DELEGATED and anything else: no answer).
_PARTSTATS = {"ACCEPTED": "accepted", "TENTATIVE": "tentative", "DECLINED": "declined", "NEEDS-ACTION": "none"}


def _ownership(component: icalendar.Component, owner: str | None) -> dict[str, Any]:
    """ORGANIZER and the owner's ATTENDEE PARTSTAT, when the calendar was registered with the owner's
    address; without it (or without an ORGANIZER) the feed does not say, and the fields stay None."""
    if not owner:
        return {}
    fields: dict[str, Any] = {}
    organizers = _values(component, "ORGANIZER")
    if organizers:
        organizer = _email(organizers[0])
        fields["organizer"] = organizer if "@" in organizer else None
        fields["organized_by_owner"] = organizer == owner
        if organizer == owner:
            fields["owner_response"] = "organizer"
    if "owner_response" not in fields:
        for attendee in _values(component, "ATTENDEE"):
            if _email(attendee) == owner:
                params = getattr(attendee, "params", {})
                fields["owner_response"] = _PARTSTATS.get(str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(), "none")
                fields.setdefault("organized_by_owner", False)
                break
    return fields


def _declined_by(component: icalendar.Component, owner: str | None) -> bool:
    if not owner:
        return False
    for attendee in _values(component, "ATTENDEE"):
        if _email(attendee) == owner:
            params = getattr(attendee, "params", {})
            return str(params.get("PARTSTAT", "")).upper() == "DECLINED"
    return False


def _updated(component: icalendar.Component, default_zone: tzinfo) -> datetime | None:
    for name in ("LAST-MODIFIED", "DTSTAMP"):
        value = component.get(name)
        if value is not None and isinstance(value.dt, datetime):
            return _utc(value.dt, default_zone)
    return None


def _duration(component: icalendar.Component, start: date | datetime) -> timedelta:
    if "DTEND" in component:
        end = component.decoded("DTEND")
        return _utc(end, UTC) - _utc(start, UTC) if isinstance(start, datetime) else end - start
    if "DURATION" in component:
        duration: timedelta = component.decoded("DURATION")
        return duration
    return timedelta(days=1) if not isinstance(start, datetime) else timedelta(0)


def _exdates(component: icalendar.Component) -> Iterator[date | datetime]:
    for prop in _values(component, "EXDATE"):
        for item in getattr(prop, "dts", []):
            yield item.dt


# --- time -------------------------------------------------------------------------------------


def _declared_zone(cal: icalendar.Calendar) -> tzinfo:
    """The zone floating times are read in: the feed's X-WR-TIMEZONE if it resolves, else UTC."""
    name = str(cal.get("X-WR-TIMEZONE", "")).strip()
    if name:
        with contextlib.suppress(ValueError, ZoneInfoNotFoundError):
            return ZoneInfo(name)
    return UTC


def _utc(value: date | datetime, default_zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time.min, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_zone)
    return value.astimezone(UTC)


def _occurrence_stamp(value: date | datetime, default_zone: tzinfo) -> str:
    if not isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    return _utc(value, default_zone).strftime("%Y%m%dT%H%M%SZ")


def _overlaps(
    component: icalendar.Component,
    event: CalendarEvent,
    window_start: datetime,
    window_end: datetime,
    default_zone: tzinfo,
) -> bool:
    if event.all_day:
        start = _utc(component.decoded("DTSTART"), default_zone)
        end_value = component.get("DTEND")
        end = _utc(end_value.dt, default_zone) if end_value is not None else start + timedelta(days=1)
    else:
        assert event.start is not None and event.end is not None
        start, end = event.start, event.end
    if start == end:  # an instant: in the window when it starts in it
        return window_start <= start < window_end
    return start < window_end and end > window_start


def _instant_in_window(event: CalendarEvent, window_start: datetime, window_end: datetime) -> bool:
    if event.start is None:  # an all-day instance: report it; it never wants a bot anyway
        return True
    end = event.end or event.start
    if end == event.start:
        return window_start <= event.start < window_end
    return event.start < window_end and end > window_start


def _status_hint(status: int) -> str:
    if status in (401, 403, 404, 410):
        return " (the feed address may have been reset or revoked; paste the current one)"
    if status == 429 or status >= 500:
        return " (will retry on the next poll)"
    return ""


def _fetchable(url: str) -> str:
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise CalendarSourceError("the ICS feed address is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme == "webcal":
        return "https" + text[len(parts.scheme) :]
    if scheme not in ("http", "https") or not parts.hostname:
        raise CalendarSourceError(f"the ICS feed address must be an http(s) or webcal URL, got {redact_feed_url(text)}")
    return text


# --- keeping feed URLs out of logs ------------------------------------------------------------

# httpx logs every request line with its full URL at INFO level. While a feed is being fetched
# (this context variable is set), that URL is replaced by its redacted form.
_FETCHING_FEED: contextvars.ContextVar[bool] = contextvars.ContextVar("meetpilot_fetching_feed", default=False)


class _RedactFeedUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _FETCHING_FEED.get() and isinstance(record.args, tuple):
            record.args = tuple(
                redact_feed_url(str(arg)) if isinstance(arg, httpx.URL) or _looks_like_url(arg) else arg
                for arg in record.args
            )
        return True


def _looks_like_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://", "webcal://"))


_REDACTION = _RedactFeedUrls()


def _install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if _REDACTION not in target.filters:
            target.addFilter(_REDACTION)
