"""Microsoft 365 calendars through Microsoft Graph: the refresh-token grant, ``calendarView/delta``
rounds, change-notification subscriptions, and the mapping of Graph events to calendar events.

Plain HTTPS with httpx rather than MSAL for Python: the grant is one form POST whose rotated refresh
token we must store ourselves anyway. ``import msal`` (1.39.0) costs 0.12-0.15 s in a fresh process
(``python -c "import time; t=time.perf_counter(); import msal; print(time.perf_counter()-t)"``, three
runs in a throwaway venv on the shared two-core machine) and brings requests, PyJWT and urllib3
into the layer; it also fetches the authority's OpenID configuration on every cold start and caches
an identical refused token request for 60 s, which would turn a reconnect into a minute of stale
refusals. Nothing here needs its token cache.

Tokens and secrets never appear in a repr, an error message or a chained traceback. httpx's request
lines for the Graph and login hosts keep method, route and status only: event, calendar and
subscription ids become ``-`` and the query (delta and skip tokens, the window) ``?...``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from meetpilot.adapters.request_lines import RequestLineRedactor
from meetpilot.app.ports import CalendarGrants, DeltaSync
from meetpilot.domain.calendar import (
    AccessRevoked,
    Calendar,
    CalendarEvent,
    CalendarKind,
    CalendarSourceError,
    PushChannel,
    SyncTokenExpired,
)
from meetpilot.domain.clock import Clock, SystemClock
from meetpilot.domain.links import find_meeting_url

DEFAULT_LOGIN_BASE = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPES = "offline_access https://graph.microsoft.com/Calendars.Read"
PAGE_SIZE = 100
# Graph enforces 10,070 minutes although the documents say 10,080; ask for a little less.
MAX_SUBSCRIPTION = timedelta(minutes=10000)
_MAX_PAGES = 1000
_TOKEN_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
# A Retry-After up to this long is waited out in-process (at most _WAIT_BUDGET per call in all);
# a longer one fails the call as retryable, with the wait in the message.
MAX_INLINE_WAIT = 5.0
_WAIT_BUDGET = 10.0
_REFUSED_GRANT = {"invalid_grant", "interaction_required", "consent_required", "login_required"}
_RESYNC_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
# What an AADSTS code means, in our words (Entra's description may name the user or the tenant).
_AADSTS_MEANING = {
    700082: "expired after inactivity",
    70008: "expired after inactivity",
    50173: "revoked",
    65001: "consent withdrawn",
    70043: "sign-in frequency policy",
    50076: "multi-factor sign-in required",
    50079: "multi-factor enrollment required",
    53003: "blocked by conditional access",
    50057: "user account disabled",
    700016: "application not found in the directory",
    90002: "tenant not found",
    7000215: "invalid client secret",
    7000222: "client secret expired",
}


_REQUEST_LINES = RequestLineRedactor(
    "meetpilot.microsoft_calendar", collections=frozenset({"events", "calendars", "subscriptions", "users"})
)


@dataclass
class _AccessToken:
    value: str
    expires_at: datetime
    grant: str  # a digest of the sealed refresh token it came from: a reconnect starts afresh

    def __repr__(self) -> str:
        return f"_AccessToken(expires_at={self.expires_at.isoformat()})"


class MicrosoftCalendarGateway:
    """The ``MicrosoftCalendars`` port over Graph, for every connected Microsoft calendar.

    One access token per calendar is cached per warm instance until a few minutes before it
    expires. ``sleep`` is how a short ``Retry-After`` is waited out (injectable for tests).
    """

    def __init__(
        self,
        grants: CalendarGrants,
        *,
        login_base: str = DEFAULT_LOGIN_BASE,
        graph_base: str = DEFAULT_GRAPH_BASE,
        clock: Clock | None = None,
        timeout: float = 15.0,
        http: httpx.Client | None = None,
        page_size: int = PAGE_SIZE,
        max_inline_wait: float = MAX_INLINE_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._grants = grants
        self._login_base = login_base.rstrip("/")
        self._graph_base = graph_base.rstrip("/")
        self._graph_host = httpx.URL(self._graph_base).netloc
        _REQUEST_LINES.watch(self._login_base, self._graph_base)
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._http = http or httpx.Client(timeout=timeout)
        self._page_size = page_size
        self._max_inline_wait = max_inline_wait
        self._sleep = sleep
        self._tokens: dict[str, _AccessToken] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MicrosoftCalendarGateway(graph_base={self._graph_base!r})"

    def close(self) -> None:
        self._http.close()

    # --- the port -----------------------------------------------------------------------------

    def sync(
        self, calendar: Calendar, delta_link: str | None, *, window_start: datetime, window_end: datetime
    ) -> DeltaSync:
        """Follow ``delta_link`` to its deltaLink, or start a round over the window when it is None.

        Items are deduplicated by id (a later copy wins: Graph replays items in any order), bare
        occurrences are filled in from their series master, and ``@removed`` items become
        cancellations by id (the caller knows which of them it ever linked).
        """
        if window_start.tzinfo is None or window_end.tzinfo is None:
            raise ValueError("the window must be timezone-aware")
        url = delta_link or self._first_delta_url(calendar, window_start, window_end)
        items: dict[str, Mapping[str, Any]] = {}
        for _ in range(_MAX_PAGES):
            self._check_own_host(url)
            response = self._request(calendar, "GET", url, prefer=True)
            if _needs_resync(response):
                raise SyncTokenExpired("Microsoft no longer knows the stored delta link; run a full sync")
            data = self._json(response, "read calendar changes")
            values = data.get("value")
            if not isinstance(values, list):
                raise CalendarSourceError("Graph's delta page has no value list", retryable=True)
            for value in values:
                if isinstance(value, Mapping) and isinstance(value.get("id"), str) and value["id"]:
                    items.pop(value["id"], None)  # a replay moves to where it was last seen
                    items[value["id"]] = value
            next_link = data.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                url = next_link  # verbatim: the window and every option are inside it
                continue
            final = data.get("@odata.deltaLink")
            if not isinstance(final, str) or not final:
                raise CalendarSourceError("Graph's last delta page carried no deltaLink", retryable=True)
            full = delta_link is None
            events = self._events(calendar, items.values(), full=full)
            series: dict[str, frozenset[str]] = {}
            if not full:
                # A deleted occurrence leaves no trace in delta, but its series comes back whole:
                # the series' instances now are what the caller's links of it must match.
                for master_id in sorted({e.recurring_event_id for e in events if e.recurring_event_id}):
                    series[master_id] = self._instances(calendar, master_id, window_start, window_end)
            return DeltaSync(
                events=tuple(events),
                delta_link=final,
                full=full,
                window_start=window_start,
                window_end=window_end,
                series_occurrences=series,
            )
        raise CalendarSourceError(f"Graph kept paging past {_MAX_PAGES} pages; giving up this round", retryable=True)

    def subscribe(
        self,
        calendar: Calendar,
        *,
        client_state: str,
        notification_url: str,
        lifecycle_url: str,
        expires_at: datetime,
    ) -> PushChannel:
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": "me/events",
            "expirationDateTime": _iso(self._capped(expires_at)),
            "clientState": client_state,
        }
        response = self._request(calendar, "POST", self._graph_base + "/subscriptions", json_body=body)
        data = self._json(response, "create a subscription")
        sub_id = data.get("id")
        if not isinstance(sub_id, str) or not sub_id:
            raise CalendarSourceError("Graph's subscription answer carried no id", retryable=True)
        return PushChannel(
            channel_id=sub_id,
            calendar_id=calendar.calendar_id,
            resource_id=str(data.get("resource") or "me/events"),
            expires_at=_parse_iso(data.get("expirationDateTime")) or self._capped(expires_at),
            token=client_state,
        )

    def renew(self, calendar: Calendar, channel: PushChannel, *, expires_at: datetime) -> PushChannel:
        url = f"{self._graph_base}/subscriptions/{_segment(channel.channel_id)}"
        body = {"expirationDateTime": _iso(self._capped(expires_at))}
        response = self._request(calendar, "PATCH", url, json_body=body)
        data = self._json(response, "renew a subscription")
        return PushChannel(
            channel_id=channel.channel_id,
            calendar_id=channel.calendar_id,
            resource_id=channel.resource_id,
            expires_at=_parse_iso(data.get("expirationDateTime")) or self._capped(expires_at),
            token=channel.token,
        )

    def unsubscribe(self, calendar: Calendar, channel: PushChannel) -> None:
        url = f"{self._graph_base}/subscriptions/{_segment(channel.channel_id)}"
        response = self._request(calendar, "DELETE", url)
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        self._json(response, "delete a subscription")  # raises with Graph's code

    # --- events -------------------------------------------------------------------------------

    def _first_delta_url(self, calendar: Calendar, start: datetime, end: datetime) -> str:
        source = calendar.source_calendar_id or "primary"
        base = "/me" if source == "primary" else f"/me/calendars/{_segment(source)}"
        window = f"startDateTime={quote(_iso(start))}&endDateTime={quote(_iso(end))}"
        return f"{self._graph_base}{base}/calendarView/delta?{window}"

    def _events(self, calendar: Calendar, items: Any, *, full: bool) -> list[CalendarEvent]:
        masters: dict[str, Mapping[str, Any] | None] = {}
        events: list[CalendarEvent] = []
        for item in items:
            if "@removed" in item:
                if not full:  # a full round names everything there is; a removal adds nothing
                    events.append(_cancelled(calendar.calendar_id, item["id"]))
                continue
            master_id = item.get("seriesMasterId")
            if isinstance(master_id, str) and master_id and "subject" not in item:
                if master_id not in masters:
                    masters[master_id] = self._master(calendar, master_id)
                master = masters[master_id]
                if master is None:  # the series is gone: so is this occurrence
                    events.append(_cancelled(calendar.calendar_id, item["id"], item))
                    continue
                item = _hydrated(item, master)
            events.append(parse_graph_event(item, calendar_id=calendar.calendar_id, owner_email=calendar.owner_email))
        return events

    def _master(self, calendar: Calendar, master_id: str) -> Mapping[str, Any] | None:
        response = self._request(calendar, "GET", f"{self._graph_base}/me/events/{_segment(master_id)}", prefer=True)
        if response.status_code == 404:
            return None
        return self._json(response, "read a recurring series")

    def _instances(self, calendar: Calendar, master_id: str, start: datetime, end: datetime) -> frozenset[str]:
        window = f"startDateTime={quote(_iso(start))}&endDateTime={quote(_iso(end))}"
        url = f"{self._graph_base}/me/events/{_segment(master_id)}/instances?{window}"
        found: set[str] = set()
        for _ in range(_MAX_PAGES):
            self._check_own_host(url)
            response = self._request(calendar, "GET", url, prefer=True)
            if response.status_code == 404:
                return frozenset()  # the series is gone, and every occurrence with it
            data = self._json(response, "list a series' occurrences")
            for value in data.get("value") or []:
                if isinstance(value, Mapping) and isinstance(value.get("id"), str):
                    found.add(value["id"])
            next_link = data.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return frozenset(found)
            url = next_link
        raise CalendarSourceError("Graph kept paging a series' occurrences; giving up this round", retryable=True)

    # --- HTTP and tokens ----------------------------------------------------------------------

    def _request(
        self,
        calendar: Calendar,
        method: str,
        url: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        prefer: bool = False,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if prefer:
            # One header: a second Prefer header would replace the first.
            headers["Prefer"] = f'outlook.timezone="UTC", odata.maxpagesize={self._page_size}, IdType="ImmutableId"'
        waited = 0.0
        refreshed = False
        while True:
            token = self._access_token(calendar)
            try:
                response = self._http.request(
                    method,
                    url,
                    json=json_body,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                )
            except httpx.HTTPError as exc:
                raise CalendarSourceError(
                    f"could not reach Microsoft Graph: {type(exc).__name__}", retryable=True
                ) from None
            if response.status_code == 401 and not refreshed:
                # Expired early or revoked: a fresh access token once, then Graph's answer stands.
                self._forget_token(calendar)
                refreshed = True
                continue
            wait = _retry_after(response)
            if wait is not None and wait <= self._max_inline_wait and waited + wait <= _WAIT_BUDGET:
                self._sleep(wait)
                waited += wait
                continue
            return response

    def _access_token(self, calendar: Calendar) -> str:
        grant = hashlib.sha256((calendar.sealed_refresh_token or "").encode()).hexdigest()
        with self._lock:
            cached = self._tokens.get(calendar.calendar_id)
        if cached is not None and cached.grant == grant and cached.expires_at - _TOKEN_MARGIN > self._clock.now():
            return cached.value
        token = self._refresh(calendar, grant)
        with self._lock:
            self._tokens[calendar.calendar_id] = token
        return token.value

    def _forget_token(self, calendar: Calendar) -> None:
        with self._lock:
            self._tokens.pop(calendar.calendar_id, None)

    def _refresh(self, calendar: Calendar, grant: str) -> _AccessToken:
        client = self._grants.client(CalendarKind.MICROSOFT)
        refresh_token = self._grants.refresh_token(calendar)
        tenant = _segment(client.tenant or "common")
        form = {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": GRAPH_SCOPES,
        }
        waited = 0.0
        while True:
            try:
                response = self._http.post(
                    f"{self._login_base}/{tenant}/oauth2/v2.0/token", data=form, timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                # Not chained: the request (and its form, with the secret) stays out of tracebacks.
                raise CalendarSourceError(
                    f"could not reach Microsoft's token endpoint: {type(exc).__name__}", retryable=True
                ) from None
            wait = _retry_after(response)
            if wait is not None and wait <= self._max_inline_wait and waited + wait <= _WAIT_BUDGET:
                self._sleep(wait)
                waited += wait
                continue
            break
        data = _json_or_empty(response)
        if response.status_code == 200 and isinstance(data.get("access_token"), str):
            rotated = data.get("refresh_token")
            if isinstance(rotated, str) and rotated and rotated != refresh_token:
                # Stored before anything else happens: the next refresh may need this one.
                self._grants.store_rotated(calendar, rotated)
            try:
                lifetime = int(data.get("expires_in", 3599))
            except (TypeError, ValueError):
                lifetime = 3599
            return _AccessToken(
                value=data["access_token"],
                expires_at=self._clock.now() + timedelta(seconds=max(lifetime, 60)),
                grant=grant,
            )
        raise _token_error(response.status_code, data, _retry_after(response))

    def _json(self, response: httpx.Response, action: str) -> Mapping[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            data: Mapping[str, Any] | None = _json_or_empty(response, strict=True)
            if data is None:
                raise CalendarSourceError(f"Graph's answer to {action} is not a JSON object", retryable=True)
            return data
        code = _graph_code(response)
        wait = _retry_after(response)
        if status == 429 or status >= 500:
            later = f"; retry in {wait:.0f} s" if wait is not None else "; retry later"
            raise CalendarSourceError(
                f"Microsoft Graph answered HTTP {status} ({code}) to {action}{later}", status=status, retryable=True
            )
        if status == 401:
            raise CalendarSourceError(
                f"Microsoft Graph rejected the access token to {action} ({code})", status=status, retryable=True
            )
        if status == 404:
            raise CalendarSourceError(f"Microsoft Graph has no such item ({code}) to {action}", status=404)
        raise CalendarSourceError(f"Microsoft Graph answered HTTP {status} ({code}) to {action}", status=status)

    def _check_own_host(self, url: str) -> None:
        # A link from a page carries our bearer token next: only ever to Graph itself.
        try:
            host = httpx.URL(url).netloc
        except httpx.InvalidURL:
            host = b""
        if host != self._graph_host:
            raise CalendarSourceError("Graph's paging link points at another host; refusing to follow it")

    def _capped(self, expires_at: datetime) -> datetime:
        return min(expires_at, self._clock.now() + MAX_SUBSCRIPTION)


# --- mapping ----------------------------------------------------------------------------------


def parse_graph_event(item: Mapping[str, Any], *, calendar_id: str, owner_email: str | None) -> CalendarEvent:
    """Map one (hydrated) Graph event to a calendar event; times are read as Graph states their zone."""
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise CalendarSourceError("a Graph event has no id")
    all_day = item.get("isAllDay") is True
    try:
        start = None if all_day else _graph_time(item.get("start"))
        end = None if all_day else _graph_time(item.get("end"))
    except (TypeError, ValueError):
        raise CalendarSourceError(f"Graph event {event_id[:60]!r} has an unreadable time") from None
    if start is not None and (end is None or end < start):
        end = start
    status = item.get("responseStatus")
    response = str(status.get("response") or "") if isinstance(status, Mapping) else ""
    organized = item.get("isOrganizer") if isinstance(item.get("isOrganizer"), bool) else None
    if response == "organizer":
        organized = True
    return CalendarEvent(
        calendar_id=calendar_id,
        event_id=event_id,
        title=str(item.get("subject") or "").strip(),
        start=start,
        end=end,
        all_day=all_day,
        cancelled=item.get("isCancelled") is True,
        declined_by_owner=response == "declined",
        meeting_url=_meeting_url(item),
        updated=_parse_iso(item.get("lastModifiedDateTime")),
        recurring_event_id=item.get("seriesMasterId") if isinstance(item.get("seriesMasterId"), str) else None,
        attendees=_people(item.get("organizer"), item.get("attendees")),
        organized_by_owner=organized,
        owner_response=_RESPONSES.get(response),
    )


_RESPONSES = {
    "organizer": "accepted",
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
    "none": "none",
    "notResponded": "none",
}


def _meeting_url(item: Mapping[str, Any]) -> str | None:
    online = item.get("onlineMeeting")
    join_url = online.get("joinUrl") if isinstance(online, Mapping) else None
    found = find_meeting_url(hangout_link=join_url) if isinstance(join_url, str) and join_url else None
    if found:
        return found
    places = [item.get("location"), *(item.get("locations") or [])]
    for place in places:
        if isinstance(place, Mapping):
            for key in ("displayName", "locationUri"):
                text = place.get(key)
                if isinstance(text, str) and text:
                    found = find_meeting_url(location=text)
                    if found:
                        return found
    body = item.get("body")
    content = body.get("content") if isinstance(body, Mapping) else None
    return find_meeting_url(description=content) if isinstance(content, str) and content else None


def _people(organizer: object, attendees: object) -> tuple[str, ...]:
    found: list[str] = []
    people = [organizer] + (attendees if isinstance(attendees, list) else [])
    for person in people:
        if not isinstance(person, Mapping) or person.get("type") == "resource":
            continue
        address = person.get("emailAddress")
        email = str(address.get("address") or "").strip().lower() if isinstance(address, Mapping) else ""
        if email and email not in found:
            found.append(email)
    return tuple(found)


def _hydrated(occurrence: Mapping[str, Any], master: Mapping[str, Any]) -> dict[str, Any]:
    # The master's start and end are its first occurrence's: the occurrence keeps its own.
    own = {"id", "start", "end", "type", "seriesMasterId", "@odata.etag", "changeKey", "originalStart"}
    merged = {k: v for k, v in master.items() if k not in own and k != "recurrence"}
    merged.update({k: v for k, v in occurrence.items() if k in own})
    return merged


def _cancelled(calendar_id: str, event_id: str, item: Mapping[str, Any] | None = None) -> CalendarEvent:
    start = end = None
    if item is not None:
        try:
            start, end = _graph_time(item.get("start")), _graph_time(item.get("end"))
        except (TypeError, ValueError):
            start = end = None
    if start is not None and (end is None or end < start):
        end = start
    return CalendarEvent(
        calendar_id=calendar_id,
        event_id=event_id,
        title="",
        start=start,
        end=end,
        all_day=False,
        cancelled=True,
        declined_by_owner=False,
        meeting_url=None,
        updated=None,
        recurring_event_id=item.get("seriesMasterId") if item is not None else None,
    )


def _graph_time(value: object) -> datetime | None:
    if not isinstance(value, Mapping) or not value.get("dateTime"):
        return None
    text = str(value["dateTime"]).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # seven decimals: fromisoformat takes six at most
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        zone_name = str(value.get("timeZone") or "UTC")
        try:
            zone: Any = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
        except (ValueError, ZoneInfoNotFoundError):
            zone = UTC  # we ask for UTC; a Windows zone name here would be Graph ignoring that
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# --- errors -----------------------------------------------------------------------------------


def _token_error(status: int, data: Mapping[str, Any], wait: float | None) -> CalendarSourceError:
    error = str(data.get("error") or "")[:40] if isinstance(data.get("error"), str) else ""
    codes = [c for c in data.get("error_codes") or [] if isinstance(c, int)]
    code = codes[0] if codes else None
    label = f"AADSTS{code}" if code is not None else (error or f"HTTP {status}")
    meaning = _AADSTS_MEANING.get(code or 0)
    described = f"{label}: {meaning}" if meaning else label
    if error in _REFUSED_GRANT:
        return AccessRevoked(f"Microsoft refused the refresh token ({described}); reconnect the calendar")
    if error in ("invalid_client", "unauthorized_client"):
        return CalendarSourceError(
            f"Microsoft refused the app's client credentials ({described}); the operator must fix the "
            "Microsoft OAuth client in the stack's configuration",
            status=status,
        )
    if status == 429 or status >= 500 or error == "temporarily_unavailable":
        later = f"; retry in {wait:.0f} s" if wait is not None else "; retry later"
        return CalendarSourceError(
            f"Microsoft's token endpoint is unavailable ({described}){later}", status=status, retryable=True
        )
    return CalendarSourceError(f"Microsoft's token endpoint refused the request ({described})", status=status)


def _needs_resync(response: httpx.Response) -> bool:
    if response.status_code == 410:
        return True
    if response.status_code in (400, 404, 409):
        return _graph_code(response).lower() in _RESYNC_CODES
    return False


def _graph_code(response: httpx.Response) -> str:
    data = _json_or_empty(response)
    error = data.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        return "".join(ch for ch in error["code"] if ch.isalnum())[:60] or "no code"
    return "no code"


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code != 429 and response.status_code < 500:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _json_or_empty(response: httpx.Response, *, strict: bool = False) -> Any:
    try:
        data = response.json()
    except ValueError:
        return None if strict else {}
    if not isinstance(data, Mapping):
        return None if strict else {}
    return data


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return _graph_time({"dateTime": value, "timeZone": "UTC"})
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(value: str) -> str:
    return quote(value, safe="")
