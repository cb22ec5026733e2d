"""Google Calendar: incremental sync with sync tokens, push channels, and event mapping.

OAuth tokens come from google-auth (refresh-token grant) with the app's OAuth client and each calendar's
own grant (see ``CalendarGrants``); a grant Google refuses raises ``AccessRevoked``, and a rotated refresh
token is handed to the grants at once. The Calendar REST calls are plain HTTPS
with httpx, so the Lambda bundle does not carry the generated API client. Secrets (client secret,
refresh token, access token, channel token) never appear in a repr, an error message or a chained
traceback; httpx's request lines for Google's hosts name no calendar (an e-mail address) and carry
no sync or page token.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from google.auth import exceptions as google_auth_exceptions
from google.auth import transport as google_auth_transport
from google.oauth2.credentials import Credentials

from meetpilot.adapters.request_lines import RequestLineRedactor
from meetpilot.app.ports import CalendarGrants, GoogleSync
from meetpilot.domain.calendar import (
    AccessRevoked,
    Calendar,
    CalendarEvent,
    CalendarKind,
    CalendarSourceError,
    PushChannel,
    SyncTokenExpired,
    channel_matches,
    push_resource_state,
)
from meetpilot.domain.clock import Clock, SystemClock
from meetpilot.domain.links import find_meeting_url

CALENDAR_READONLY_SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
_FULL_SYNC_LOOKBACK = timedelta(hours=1)
_PAGE_SIZE = 500
_MAX_PAGES = 1000  # a server that keeps sending page tokens must not keep a Lambda busy forever


@dataclass(frozen=True)
class GoogleCredentials:
    """An OAuth client and a user's refresh token (the user granted calendar read access once)."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"GoogleCredentials(client_id={self.client_id!r}, client_secret=***, refresh_token=***)"

    __str__ = __repr__


@dataclass(frozen=True)
class WatchChannel:
    """A push channel on a calendar's events; Google does not renew it, so renew before ``expiration``."""

    channel_id: str
    resource_id: str
    expiration: datetime
    token: str = field(repr=False)


@dataclass(frozen=True)
class SyncPage:
    """One page of ``events.list``: its items, and either the next page token or the sync token."""

    items: list[Mapping[str, Any]]
    next_page_token: str | None
    next_sync_token: str | None


@dataclass(frozen=True)
class SyncResult:
    """Every item of one sync, and the token to store for the next one.

    ``full_sync`` is True when the sync started without a token: the events are then the whole
    calendar from the start of the window, and anything the caller knew that is absent is gone.
    """

    events: list[CalendarEvent]
    next_sync_token: str
    full_sync: bool


_REQUEST_LINES = RequestLineRedactor("meetpilot.google_calendar", collections=frozenset({"calendars"}))


class GoogleCalendarClient:
    """The Calendar v3 calls meetpilot needs, for one user's credentials."""

    def __init__(
        self,
        credentials: GoogleCredentials,
        *,
        http: httpx.Client | None = None,
        api_base: str = "https://www.googleapis.com/calendar/v3",
        token_uri: str = "https://oauth2.googleapis.com/token",  # noqa: S107 - an endpoint, not a secret
        owner_email: str | None = None,
        clock: Clock | None = None,
        timeout: float = 15.0,
        on_rotated: Callable[[str], None] | None = None,
    ) -> None:
        self._http = http or httpx.Client(timeout=timeout)
        # Called with the new refresh token when Google's token endpoint returns one in place of ours.
        self._on_rotated = on_rotated
        self._api_base = api_base.rstrip("/")
        _REQUEST_LINES.watch(self._api_base, token_uri)
        self._owner_email = owner_email
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._oauth = Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=credentials.refresh_token,
            token_uri=token_uri,
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            # No scopes: asking for a narrower scope than the user granted makes Google refuse the
            # refresh; the grant itself decides what the token may do.
        )

    def __repr__(self) -> str:
        return f"GoogleCalendarClient(api_base={self._api_base!r})"

    def close(self) -> None:
        self._http.close()

    # --- sync ---------------------------------------------------------------------------------

    def sync(
        self,
        meetpilot_calendar_id: str,
        google_calendar_id: str,
        sync_token: str | None,
        *,
        time_min: datetime | None = None,
    ) -> SyncResult:
        """Full sync (no token) or incremental sync (with the token from the last one).

        A full sync lists single events that end after ``time_min`` (default: an hour ago). An
        incremental sync sends only the token (Google refuses tokens combined with filters) and
        returns everything changed since, cancelled items included. Pages are followed to the end;
        the new sync token comes from the last page only. Raises ``SyncTokenExpired`` on 410 Gone.
        """
        params: dict[str, str] = {"singleEvents": "true", "maxResults": str(_PAGE_SIZE)}
        if sync_token:
            params["syncToken"] = sync_token
        else:
            since = time_min if time_min is not None else self._clock.now() - _FULL_SYNC_LOOKBACK
            if since.tzinfo is None:
                raise ValueError("time_min must be timezone-aware")
            params["timeMin"] = _rfc3339(since)
        events: list[CalendarEvent] = []
        page_token: str | None = None
        for _ in range(_MAX_PAGES):
            page = self._list_page(google_calendar_id, {**params, **({"pageToken": page_token} if page_token else {})})
            for item in page.items:
                events.append(
                    parse_google_event(item, calendar_id=meetpilot_calendar_id, owner_email=self._owner_email)
                )
            if page.next_page_token:
                page_token = page.next_page_token
                continue
            if not page.next_sync_token:
                raise CalendarSourceError("Google's last page of events carried no nextSyncToken", retryable=True)
            return SyncResult(events=events, next_sync_token=page.next_sync_token, full_sync=not sync_token)
        raise CalendarSourceError(f"Google kept paging past {_MAX_PAGES} pages; giving up this sync", retryable=True)

    def _list_page(self, google_calendar_id: str, params: Mapping[str, str]) -> SyncPage:
        response = self._request("GET", f"/calendars/{_segment(google_calendar_id)}/events", params=params)
        if response.status_code == 410:
            raise SyncTokenExpired()
        if response.status_code == 400 and "syncToken" in params and _says_invalid_sync_token(response):
            # A token that was stored damaged: a full sync repairs it just as it does after a 410.
            raise SyncTokenExpired("Google refused the stored sync token as invalid; run a full sync")
        data = self._json(response, "list events")
        items = data.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise CalendarSourceError("Google's events list has malformed items", retryable=True)
        return SyncPage(
            items=items,
            next_page_token=_opt_str(data.get("nextPageToken")),
            next_sync_token=_opt_str(data.get("nextSyncToken")),
        )

    # --- push channels ------------------------------------------------------------------------

    def watch(
        self,
        google_calendar_id: str,
        *,
        channel_id: str,
        token: str,
        address: str,
        ttl_seconds: int = 7 * 86400,
    ) -> WatchChannel:
        """Open a push channel: Google POSTs to ``address`` when the calendar's events change.

        ``token`` comes back on every notification as ``X-Goog-Channel-Token``; check it with
        ``verify_channel``. Google may shorten the lifetime, so use the returned ``expiration``.
        """
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(int(ttl_seconds))},
        }
        response = self._request("POST", f"/calendars/{_segment(google_calendar_id)}/events/watch", json_body=body)
        data = self._json(response, "open a push channel")
        resource_id = _opt_str(data.get("resourceId"))
        if not resource_id:
            raise CalendarSourceError("Google's watch answer carried no resourceId", retryable=True)
        expiration = _millis(data.get("expiration")) or self._clock.now() + timedelta(seconds=ttl_seconds)
        return WatchChannel(channel_id=channel_id, resource_id=resource_id, expiration=expiration, token=token)

    def stop(self, channel: WatchChannel) -> None:
        """Stop a push channel. A channel Google no longer knows (expired, already stopped) is fine."""
        response = self._request(
            "POST", "/channels/stop", json_body={"id": channel.channel_id, "resourceId": channel.resource_id}
        )
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        self._json(response, "stop a push channel")  # raises with Google's reason

    # --- HTTP and tokens ----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        if not self._oauth.valid:
            self._refresh()
        for attempt in (1, 2):
            try:
                response = self._http.request(
                    method,
                    self._api_base + path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {self._oauth.token}", "Accept": "application/json"},
                    timeout=self._timeout,
                )
            except httpx.HTTPError as exc:
                raise CalendarSourceError(
                    f"could not reach Google Calendar: {type(exc).__name__}", retryable=True
                ) from None
            if response.status_code == 401 and attempt == 1:
                # The token was revoked or expired early: refresh once and try again.
                self._refresh()
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _refresh(self) -> None:
        before = self._oauth.refresh_token
        try:
            self._oauth.refresh(_HttpxAuthTransport(self._http, self._timeout))  # type: ignore[no-untyped-call]
        except google_auth_exceptions.RefreshError as exc:
            reason = _refresh_reason(exc)
            if reason in _GRANT_GONE:
                # The user's grant is gone (revoked, expired, consent withdrawn): only a new token helps.
                raise AccessRevoked(
                    f"Google refused the refresh token ({reason}: {_GRANT_GONE[reason]}); reconnect the calendar"
                ) from None
            raise CalendarSourceError(
                f"Google refused to refresh the access token ({reason}); check the app's OAuth client "
                "(client id and secret) in its SSM parameter",
                status=401 if reason == "invalid_client" else None,
            ) from None
        except google_auth_exceptions.TransportError as exc:
            first = exc.args[0] if exc.args else ""
            kind = first if isinstance(first, str) and first.isidentifier() else type(exc).__name__
            raise CalendarSourceError(f"could not reach Google's token endpoint: {kind}", retryable=True) from None
        after = self._oauth.refresh_token
        if after and after != before and self._on_rotated is not None:
            self._on_rotated(after)

    def _json(self, response: httpx.Response, action: str) -> Mapping[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise CalendarSourceError(
                    f"Google's answer to {action} is not JSON", status=status, retryable=True
                ) from None
            if not isinstance(data, Mapping):
                raise CalendarSourceError(
                    f"Google's answer to {action} is not a JSON object", status=status, retryable=True
                )
            return data
        reason = _google_reason(response)
        if status == 403 and _says_scope_missing(reason):
            raise AccessRevoked(
                f"Google says the grant no longer covers reading the calendar ({reason}); reconnect the calendar "
                "with the calendar.readonly scope",
                status=403,
            )
        if status == 401:
            message = f"Google rejected the access token to {action} ({reason}); reconnect the calendar"
        elif status == 404:
            message = f"Google has no such calendar or channel ({reason}); check the calendar id and that it is shared"
        elif status == 403 and "ratelimit" in reason.lower().replace(" ", ""):
            message = f"Google rate-limited the request to {action} ({reason}); retry later"
        else:
            message = f"Google answered HTTP {status} to {action} ({reason})"
        retryable = status == 429 or status >= 500 or "ratelimit" in reason.lower().replace(" ", "")
        raise CalendarSourceError(message, status=status, retryable=retryable)


class GoogleCalendarGateway:
    """Google Calendar for connected calendars: the app's OAuth client and each calendar's own grant.

    One client per calendar is kept per warm instance (it holds the access token); it is rebuilt
    when the OAuth client or the calendar's refresh token changes (a reconnect, a rotation).
    """

    def __init__(
        self,
        grants: CalendarGrants,
        *,
        api_base: str = "https://www.googleapis.com/calendar/v3",
        token_uri: str = "https://oauth2.googleapis.com/token",  # noqa: S107 - an endpoint, not a secret
        clock: Clock | None = None,
        timeout: float = 15.0,
    ) -> None:
        self._grants = grants
        self._api_base = api_base
        self._token_uri = token_uri
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._clients: dict[str, tuple[str, GoogleCalendarClient]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GoogleCalendarGateway(api_base={self._api_base!r})"

    def _client(self, calendar: Calendar) -> GoogleCalendarClient:
        oauth = self._grants.client(CalendarKind.GOOGLE)
        refresh_token = self._grants.refresh_token(calendar)
        # A digest, so the cache key holds no secret; it changes when any input of the client does.
        fingerprint = hashlib.sha256(
            "\0".join((oauth.client_id, oauth.client_secret, refresh_token, calendar.owner_email or "")).encode()
        ).hexdigest()
        with self._lock:
            cached = self._clients.get(calendar.calendar_id)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]

        def rotated(new_token: str) -> None:
            # Google may hand out a new refresh token in place of the old one: store it before
            # anything else, or the next cold start would try a token that no longer works.
            self._grants.store_rotated(calendar, new_token)
            digest = hashlib.sha256(
                "\0".join((oauth.client_id, oauth.client_secret, new_token, calendar.owner_email or "")).encode()
            ).hexdigest()
            with self._lock:
                if self._clients.get(calendar.calendar_id, (None, None))[1] is client:
                    self._clients[calendar.calendar_id] = (digest, client)

        client = GoogleCalendarClient(
            GoogleCredentials(oauth.client_id, oauth.client_secret, refresh_token),
            api_base=self._api_base,
            token_uri=self._token_uri,
            owner_email=calendar.owner_email,
            clock=self._clock,
            timeout=self._timeout,
            on_rotated=rotated,
        )
        with self._lock:
            previous = self._clients.get(calendar.calendar_id)
            self._clients[calendar.calendar_id] = (fingerprint, client)
        if previous is not None:
            previous[1].close()
        return client

    def sync(self, calendar: Calendar, sync_token: str | None, *, time_min: datetime) -> GoogleSync:
        result = self._client(calendar).sync(
            calendar.calendar_id, calendar.source_calendar_id or "", sync_token, time_min=time_min
        )
        return GoogleSync(events=tuple(result.events), next_sync_token=result.next_sync_token, full=result.full_sync)

    def watch(self, calendar: Calendar, *, channel_id: str, token: str, address: str, ttl_seconds: int) -> PushChannel:
        channel = self._client(calendar).watch(
            calendar.source_calendar_id or "",
            channel_id=channel_id,
            token=token,
            address=address,
            ttl_seconds=ttl_seconds,
        )
        return PushChannel(
            channel_id=channel.channel_id,
            calendar_id=calendar.calendar_id,
            resource_id=channel.resource_id,
            expires_at=channel.expiration,
            token=channel.token,
        )

    def stop(self, calendar: Calendar, channel: PushChannel) -> None:
        self._client(calendar).stop(
            WatchChannel(
                channel_id=channel.channel_id,
                resource_id=channel.resource_id,
                expiration=channel.expires_at,
                token=channel.token,
            )
        )


def parse_google_event(item: Mapping[str, Any], *, calendar_id: str, owner_email: str | None) -> CalendarEvent:
    """Map one ``events.list`` item (with ``singleEvents=true``) to a calendar event.

    A cancelled item may carry nothing but its id (and, for an instance, ``recurringEventId`` and
    ``originalStartTime``, which then stands in for the start).
    """
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise CalendarSourceError("a Google event has no id")
    cancelled = item.get("status") == "cancelled"
    try:
        start_field = item.get("start") or (item.get("originalStartTime") if cancelled else None)
        start, start_day = _when(start_field)
        end, _ = _when(item.get("end"))
    except (TypeError, ValueError) as exc:
        raise CalendarSourceError(f"Google event {event_id[:80]!r} has an unreadable time: {exc}") from None
    all_day = start_day is not None
    if all_day:
        start = end = None
    elif start is not None and (end is None or end < start):
        end = start
    return CalendarEvent(
        calendar_id=calendar_id,
        event_id=event_id,
        title=str(item.get("summary") or "").strip(),
        start=start,
        end=end,
        all_day=all_day,
        cancelled=cancelled,
        declined_by_owner=_declined_by_owner(item.get("attendees"), owner_email),
        meeting_url=find_meeting_url(
            conference_data=item.get("conferenceData") if isinstance(item.get("conferenceData"), Mapping) else None,
            hangout_link=_opt_str(item.get("hangoutLink")),
            location=_opt_str(item.get("location")),
            description=_opt_str(item.get("description")),
        ),
        updated=_parse_rfc3339(item.get("updated")),
        recurring_event_id=_opt_str(item.get("recurringEventId")),
        attendees=_attendee_emails(item.get("organizer"), item.get("attendees")),
        **_ownership(item.get("organizer"), item.get("attendees"), owner_email),
    )


def verify_channel(expected_channel_id: str, expected_token: str, headers: Mapping[str, str]) -> bool:
    """Whether a push notification belongs to our channel: channel id and token, compared in constant time.

    Header names are matched case-insensitively (API Gateway lower-cases them). Missing headers,
    an empty expectation or any mismatch is False.
    """
    return channel_matches(expected_channel_id, expected_token, headers)


def resource_state(headers: Mapping[str, str]) -> str | None:
    """``X-Goog-Resource-State`` of a notification: ``sync`` (channel opened; ignore), ``exists``, ``not_exists``."""
    return push_resource_state(headers)


# --- helpers ----------------------------------------------------------------------------------


class _HttpxResponse(google_auth_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class _HttpxAuthTransport(google_auth_transport.Request):
    """google-auth's transport interface on top of the client's httpx session."""

    def __init__(self, http: httpx.Client, timeout: float) -> None:
        self._http = http
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _HttpxResponse:
        try:
            response = self._http.request(
                method, url, content=body, headers=dict(headers or {}), timeout=timeout or self._timeout
            )
        except httpx.HTTPError as exc:
            # Keep the httpx exception (and its request body, which holds the client secret) out of
            # the chain; only its type is useful.
            raise google_auth_exceptions.TransportError(type(exc).__name__) from None  # type: ignore[no-untyped-call]
        return _HttpxResponse(response)


# Token endpoint errors that mean the user's grant is gone, and what each means in words.
_GRANT_GONE = {
    "invalid_grant": "the grant was revoked, expired or the password changed",
    "unauthorized_client": "the user's consent for this app was withdrawn",
    "access_denied": "the user's consent for this app was withdrawn",
}


def _refresh_reason(exc: google_auth_exceptions.RefreshError) -> str:
    for arg in exc.args[1:]:
        if isinstance(arg, Mapping) and isinstance(arg.get("error"), str):
            return str(arg["error"])[:60]
    return "token endpoint refused"


def _google_reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "no details"
    if isinstance(error, Mapping):
        reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, Mapping) and e.get("reason")]
        message = error.get("message")
        text = ", ".join(str(r) for r in reasons) or (str(message) if message else "no details")
        return " ".join(text.split())[:160]
    if isinstance(error, str):
        return error[:80]
    return "no details"


_SCOPE_MISSING = ("insufficientpermissions", "scope_insufficient", "insufficient authentication")


def _says_scope_missing(reason: str) -> bool:
    text = reason.lower()
    return any(
        word in text for word in ("insufficientpermissions", "scope_insufficient", "insufficient authentication")
    )


def _says_invalid_sync_token(response: httpx.Response) -> bool:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    message = str(error.get("message", "")).lower() if isinstance(error, Mapping) else ""
    return "invalid" in message and "sync token" in message


def _declined_by_owner(attendees: object, owner_email: str | None) -> bool:
    if not isinstance(attendees, list):
        return False
    owner = owner_email.strip().lower() if owner_email else None
    for attendee in attendees:
        if not isinstance(attendee, Mapping):
            continue
        email = str(attendee.get("email") or "").strip().lower()
        if attendee.get("self") is True or (owner and email == owner):
            return attendee.get("responseStatus") == "declined"
    return False


# Google's responseStatus in the words of CalendarEvent.owner_response.
_RESPONSES = {"accepted": "accepted", "tentative": "tentative", "declined": "declined", "needsAction": "none"}


def _ownership(organizer: object, attendees: object, owner_email: str | None) -> dict[str, Any]:
    """Who organises the event and how the owner answered: Google marks the owner's entries ``self``.

    An event without attendees is the owner's own (Google then lists no one, not even the
    organizer as an attendee); with no organizer at all, nothing is known.
    """
    owner = owner_email.strip().lower() if owner_email else None
    fields: dict[str, Any] = {}
    if isinstance(organizer, Mapping):
        email = str(organizer.get("email") or "").strip().lower()
        mine = organizer.get("self") is True or bool(owner and email == owner)
        fields["organized_by_owner"] = mine
        fields["organizer"] = email or None
        if mine:
            fields["owner_response"] = "organizer"
    if isinstance(attendees, list) and "owner_response" not in fields:
        for attendee in attendees:
            if not isinstance(attendee, Mapping):
                continue
            email = str(attendee.get("email") or "").strip().lower()
            if attendee.get("self") is True or (owner and email == owner):
                if attendee.get("organizer") is True:
                    fields["organized_by_owner"] = True
                    fields["owner_response"] = "organizer"
                else:
                    fields["owner_response"] = _RESPONSES.get(str(attendee.get("responseStatus")), "none")
                break
    return fields


def _attendee_emails(organizer: object, attendees: object) -> tuple[str, ...]:
    """The organizer's and the attendees' addresses, lower-cased, rooms and resources left out."""
    found: list[str] = []
    people = [organizer] + (attendees if isinstance(attendees, list) else [])
    for person in people:
        if not isinstance(person, Mapping) or person.get("resource") is True:
            continue
        email = str(person.get("email") or "").strip().lower()
        if email and email not in found:
            found.append(email)
    return tuple(found)


def _when(value: object) -> tuple[datetime | None, date | None]:
    """(instant, None) for a ``dateTime``, (None, day) for an all-day ``date``, (None, None) when absent."""
    if not isinstance(value, Mapping):
        return None, None
    if value.get("dateTime"):
        moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_zone(value.get("timeZone")))
        return moment.astimezone(UTC), None
    if value.get("date"):
        return None, date.fromisoformat(str(value["date"]))
    return None, None


def _zone(name: object) -> tzinfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ValueError, ZoneInfoNotFoundError):
            pass
    return UTC


def _parse_rfc3339(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _millis(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _segment(value: str) -> str:
    return quote(value, safe="")
