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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import icalendar
import recurring_ical_events

from meetpilot.app.ports import FeedRead
from meetpilot.domain.calendar import CalendarEvent, CalendarSourceError
from meetpilot.domain.links import find_meeting_url

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

    ``webcal://`` addresses are fetched over HTTPS. Redirects are followed. The body is read in
    chunks and abandoned once it exceeds ``max_bytes`` (after decompression).
    """

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        timeout: float = 15.0,
        max_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=True)
        self._timeout = timeout
        self._max_bytes = max_bytes
        _install_log_redaction()

    def close(self) -> None:
        self._http.close()

    def fetch(self, url: str, etag: str | None = None) -> FeedFetch:
        """Fetch ``url``; with ``etag`` from the last good fetch, an unchanged feed costs one 304.

        Raises ``CalendarSourceError`` for a non-2xx answer, a body over the size limit, or a network
        failure; the message names the status or failure and the feed's host only.
        """
        target = _fetchable(url)
        shown = redact_feed_url(url)
        headers = {"Accept": "text/calendar, */*;q=0.5", "User-Agent": _USER_AGENT}
        if etag:
            headers["If-None-Match"] = etag
        token = _FETCHING_FEED.set(True)
        try:
            with self._http.stream(
                "GET", target, headers=headers, timeout=self._timeout, follow_redirects=True
            ) as response:
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
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            # ``from None``: httpx exceptions carry the request, and so the secret URL.
            raise CalendarSourceError(
                f"could not fetch ICS feed {shown}: {type(exc).__name__}", retryable=True
            ) from None
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
        events = parse_feed(
            fetched.body,
            calendar_id=calendar_id,
            window_start=window_start,
            window_end=window_end,
            owner_email=owner_email,
        )
        return FeedRead(not_modified=False, etag=fetched.etag, events=tuple(events))


def parse_feed(
    body: bytes,
    *,
    calendar_id: str,
    window_start: datetime,
    window_end: datetime,
    owner_email: str | None = None,
) -> list[CalendarEvent]:
    """Every occurrence that overlaps ``[window_start, window_end)``, as calendar events.

    Recurring series are expanded (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides). An occurrence's id
    is the UID for a one-off event and ``UID/<original start>`` for a series instance (the original
    start in UTC, ``YYYYMMDDTHHMMSSZ``, or ``YYYYMMDD`` for all-day series), so a moved instance
    keeps its id. An instance removed with EXDATE is reported as a cancelled event, so a bot that was
    scheduled for it can be withdrawn. ``STATUS:CANCELLED`` marks an event or instance cancelled; the
    owner's ``ATTENDEE`` entry with ``PARTSTAT=DECLINED`` marks it declined.

    A body that is not iCalendar, or a series that cannot be expanded, raises
    ``CalendarSourceError``: the caller keeps its last good state rather than acting on half a feed.
    """
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("the window must be timezone-aware")
    window_start = window_start.astimezone(UTC)
    window_end = window_end.astimezone(UTC)
    try:
        calendars = icalendar.Calendar.from_ical(body, multiple=True)
    except ValueError as exc:
        raise CalendarSourceError(f"the ICS feed is not valid iCalendar: {_short(exc)}") from None
    if not calendars or any(cal.name != "VCALENDAR" for cal in calendars):
        raise CalendarSourceError("the ICS feed is not valid iCalendar: no VCALENDAR object")
    owner = _email(owner_email) if owner_email else None
    found: dict[str, tuple[int, CalendarEvent]] = {}
    for cal in calendars:
        for sequence, event in _events_of(cal, calendar_id, window_start, window_end, owner):
            kept = found.get(event.event_id)
            # The same UID twice (a feed that repeats an event): the higher SEQUENCE is the newer one.
            if kept is None or sequence > kept[0]:
                found[event.event_id] = (sequence, event)
    return sorted(
        (event for _, event in found.values()),
        key=lambda e: (e.start or datetime.min.replace(tzinfo=UTC), e.event_id),
    )


# --- expansion --------------------------------------------------------------------------------


def _events_of(
    cal: icalendar.Calendar, calendar_id: str, window_start: datetime, window_end: datetime, owner: str | None
) -> Iterator[tuple[int, CalendarEvent]]:
    default_zone = _declared_zone(cal)
    recurring_uids: set[str] = set()
    for component in cal.walk("VEVENT"):
        if any(name in component for name in ("RRULE", "RDATE", "RECURRENCE-ID")):
            recurring_uids.add(_uid(component))
    _drop_unsupported_series(cal)

    try:
        occurrences = recurring_ical_events.of(cal).between(
            window_start - _EXPANSION_PADDING, window_end + _EXPANSION_PADDING
        )
    except Exception as exc:  # the expander raises many types for one cause: a broken feed
        raise CalendarSourceError(f"the ICS feed could not be expanded: {_short(exc)}") from None
    if len(occurrences) > _MAX_OCCURRENCES:
        raise CalendarSourceError(
            f"the ICS feed has {len(occurrences)} occurrences in the sync window, over the limit of {_MAX_OCCURRENCES}"
        )

    seen: set[str] = set()
    for occurrence in occurrences:
        try:
            event = _occurrence_event(occurrence, calendar_id, recurring_uids, default_zone, owner)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise CalendarSourceError(
                f"the ICS feed has an event that cannot be read (UID {_uid(occurrence)[:80]!r}): {_short(exc)}"
            ) from None
        seen.add(event.event_id)
        if _overlaps(occurrence, event, window_start, window_end, default_zone):
            yield _sequence(occurrence), event

    for sequence, event in _excluded_instances(cal, calendar_id, default_zone, owner):
        if event.event_id not in seen and _instant_in_window(event, window_start, window_end):
            yield sequence, event


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
    )


def _excluded_instances(
    cal: icalendar.Calendar, calendar_id: str, default_zone: tzinfo, owner: str | None
) -> Iterator[tuple[int, CalendarEvent]]:
    """One cancelled event per EXDATE of each series: a removed instance is a cancelled meeting."""
    for master in cal.walk("VEVENT"):
        if "RECURRENCE-ID" in master or not ("RRULE" in master or "RDATE" in master) or "EXDATE" not in master:
            continue
        uid = _uid(master)
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
                ),
            )


def _drop_unsupported_series(cal: icalendar.Calendar) -> None:
    for component in list(cal.subcomponents):
        if component.name != "VEVENT" or "RRULE" not in component:
            continue
        try:
            frequencies = {str(f).upper() for rule in _values(component, "RRULE") for f in rule.get("FREQ", [])}
        except (ValueError, AttributeError, TypeError):
            continue  # a broken rule: the expander reports it
        if frequencies & _UNSUPPORTED_FREQUENCIES:
            logger.warning(
                "skipping ICS series %r: it repeats %s, which no meeting does",
                _uid(component)[:80],
                "/".join(sorted(frequencies)),
            )
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


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


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
