"""A local fake of the Google Calendar v3 REST API and Google's OAuth token endpoint, for tests and
``meetpilot dev``. It runs on 127.0.0.1 (an ephemeral port) and behaves like Google where meetpilot
depends on it:

* ``POST /token``: the refresh-token grant; an unknown client or wrong secret is 401 ``invalid_client``,
  an unknown or revoked refresh token 400 ``invalid_grant``. With ``rotate_refresh_tokens`` each
  refresh answers a new refresh token and retires the one presented.
* ``GET /calendar/v3/calendars/{id}/events``: ``Authorization: Bearer`` required (401 otherwise);
  ``timeMin``/``timeMax`` (by end/start), ``maxResults``, ``pageToken``, ``syncToken`` (410 once the
  calendar's tokens are expired, 400 when combined with a filter), ``showDeleted``. Results are paged
  (``page_size``); ``nextSyncToken`` is only on the last page and covers changes up to the first
  page's request. Incremental results hold every item changed since the token, cancelled ones
  included, in the reduced shape Google uses for deletions.
* ``POST /calendar/v3/calendars/{id}/events/watch`` and ``POST /calendar/v3/channels/stop``.

Events are stored the way Google returns them with ``singleEvents=true``: recurring meetings are
stored as their instances (``recurringEventId``, ``originalStartTime``; see ``put_series``), and the
list always answers as if ``singleEvents=true`` had been sent.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from meetpilot.domain.clock import Clock, SystemClock
from meetpilot_dev.fakes.loopback import LoopbackServer, Reply, ServedFake

logger = logging.getLogger(__name__)

_FILTERS_INCOMPATIBLE_WITH_SYNC_TOKEN = (
    "timeMin",
    "timeMax",
    "updatedMin",
    "q",
    "orderBy",
    "iCalUID",
    "privateExtendedProperty",
)
_DEFAULT_MAX_RESULTS = 250
_MAX_BODY_BYTES = 1024 * 1024


@dataclass
class _StoredEvent:
    event: dict[str, Any]
    changed_at: int  # the fake's change counter when this event last changed


@dataclass
class _Calendar:
    events: dict[str, _StoredEvent] = field(default_factory=dict)
    generation: int = 0  # bumped by expire_sync_tokens: older tokens answer 410


_Reply = Reply


class FakeGoogleCalendar(ServedFake):
    """In-memory calendars behind a Google-shaped HTTP API. Thread-safe; start it, use it, stop it.

    >>> fake = FakeGoogleCalendar()
    >>> base = fake.start()  # api_base = base + "/calendar/v3", token_uri = base + "/token"
    >>> fake.add_client("client", "secret", "refresh")
    >>> fake.stop()
    """

    def __init__(self, *, clock: Clock | None = None, token_lifetime_seconds: int = 3600) -> None:
        self.page_size = _DEFAULT_MAX_RESULTS
        self.token_lifetime_seconds = token_lifetime_seconds
        self.channels: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query), never headers
        self.token_requests = 0
        self.unauthorised_requests = 0  # API calls answered 401
        self.notifications: list[dict[str, Any]] = []  # push notifications sent by notify()
        self.auto_notify = False  # when True, put_event/cancel_event notify the calendar's channels
        # When True, every refresh answers a new refresh token and the old one stops working at once
        # (what Google does for some clients); see ``refresh_tokens``.
        self.rotate_refresh_tokens = False
        self.rotated_refresh_tokens: list[str] = []  # every refresh token handed out by a rotation
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._clients: dict[str, tuple[str, set[str]]] = {}
        self._refused: dict[str, str] = {}  # refresh token -> the error the token endpoint answers
        # Whose grant a token is: refresh and access token -> the user's own calendar ("primary").
        self._primary_of: dict[str, str] = {}
        self._access_tokens: dict[str, datetime] = {}
        self._calendars: dict[str, _Calendar] = {}
        self._pages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self._counter = 0
        self._faults: list[int] = []
        self._http = LoopbackServer(
            lambda *request: self.handle(*request),  # looked up per request: tests wrap it
            name="fake-google-calendar",
            content_type="application/json; charset=UTF-8",
            too_large=lambda: _error(413, "Request too large", "requestTooLarge"),
            failed=lambda: _error(500, "Backend Error", "backendError"),
            max_body=_MAX_BODY_BYTES,
            log=logger,
        )
        self.base_url = ""

    # --- addresses (start, stop and `with` come from ServedFake) --------------------------------

    @property
    def api_base(self) -> str:
        return self.base_url + "/calendar/v3"

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    # --- test controls ------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, refresh_token: str | None = None) -> None:
        """Register an OAuth client and, optionally, a refresh token a user granted it."""
        with self._lock:
            _, tokens = self._clients.get(client_id, (client_secret, set()))
            if refresh_token is not None:
                tokens.add(refresh_token)
            self._clients[client_id] = (client_secret, tokens)

    def consent(self, client_id: str, *, primary: str | None = None) -> str:
        """A user consents to the client (offline access): the refresh token the app gets back.

        ``primary`` is the user's own calendar, which the API then also answers as ``primary``.
        """
        token = "1//0fake-grant-" + secrets.token_urlsafe(24)
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"no OAuth client {client_id!r}; add_client first")
            self._clients[client_id][1].add(token)
            if primary is not None:
                self._calendar(primary, create=True)
                self._primary_of[token] = primary
        return token

    def add_calendar(self, calendar_id: str) -> None:
        """Create an empty calendar (``put_event`` creates one on its first event)."""
        with self._lock:
            self._calendar(calendar_id, create=True)

    def revoke_refresh_token(self, refresh_token: str, *, error: str = "invalid_grant") -> None:
        """The user removed the app's access: the token endpoint answers ``invalid_grant`` (or
        ``error``, e.g. ``unauthorized_client`` for consent withdrawn)."""
        with self._lock:
            for _, tokens in self._clients.values():
                tokens.discard(refresh_token)
            self._refused[refresh_token] = error

    def revoke_grants(self, client_id: str) -> None:
        """Every refresh token of the client stops working (the app's access was removed everywhere)."""
        with self._lock:
            for token in list(self._clients.get(client_id, ("", set()))[1]):
                self.revoke_refresh_token(token)

    def refresh_tokens(self, client_id: str) -> set[str]:
        """The refresh tokens that work for the client now."""
        with self._lock:
            return set(self._clients.get(client_id, ("", set()))[1])

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (the API answers 401)."""
        with self._lock:
            self._access_tokens.clear()

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """The next incremental sync of this calendar answers 410 Gone."""
        with self._lock:
            self._calendar(calendar_id, create=True).generation += 1

    def fail_next(self, status: int, count: int = 1) -> None:
        """The next ``count`` Calendar API calls answer ``status`` (503, 429, 403 rateLimitExceeded...)."""
        with self._lock:
            self._faults.extend([status] * count)

    def put_event(self, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an event, like a user saving it in their calendar; returns the stored copy.

        ``id``, ``status``, ``updated``, ``etag``, ``iCalUID`` and ``sequence`` are filled in; an
        instance (``recurringEventId``) gets ``originalStartTime`` from its start when missing.
        """
        stored = copy.deepcopy(event)
        if "start" not in stored or "end" not in stored:
            raise ValueError("an event needs start and end ({'dateTime': ...} or {'date': ...})")
        with self._lock:
            calendar = self._calendar(calendar_id, create=True)
            if not stored.get("id"):
                if stored.get("recurringEventId"):
                    stored["id"] = f"{stored['recurringEventId']}_{_instance_suffix(stored['start'])}"
                else:
                    stored["id"] = base64.b32hexencode(secrets.token_bytes(10)).decode().lower().rstrip("=")
            previous = calendar.events.get(stored["id"])
            if stored.get("recurringEventId") and "originalStartTime" not in stored:
                original = previous.event.get("originalStartTime") if previous else None
                stored["originalStartTime"] = copy.deepcopy(original or stored["start"])
            stored.setdefault("status", "confirmed")
            stored["kind"] = "calendar#event"
            stored.setdefault("iCalUID", f"{stored.get('recurringEventId') or stored['id']}@google.com")
            stored["sequence"] = (previous.event.get("sequence", 0) + 1) if previous else stored.get("sequence", 0)
            stored.setdefault("created", previous.event.get("created") if previous else _rfc3339(self._clock.now()))
            self._touch(calendar, stored)
            result = copy.deepcopy(stored)
        if self.auto_notify:
            self.notify(calendar_id)
        return result

    def put_series(
        self, calendar_id: str, series_id: str, event: dict[str, Any], starts: Iterable[datetime]
    ) -> list[dict[str, Any]]:
        """Store a recurring meeting as Google lists it with ``singleEvents=true``: one instance per start.

        ``event`` supplies everything but the times; each instance lasts as long as ``event``'s own
        start/end (default 30 minutes) and gets Google's instance id ``<series_id>_<UTC start>``.
        """
        duration = timedelta(minutes=30)
        if "start" in event and "end" in event:
            duration = _parse_time(event["end"]) - _parse_time(event["start"])
        created = []
        for start in starts:
            instance = {k: v for k, v in event.items() if k not in ("id", "start", "end")}
            begin = start.astimezone(UTC)
            instance.update(
                recurringEventId=series_id,
                start={"dateTime": _rfc3339(begin), "timeZone": "UTC"},
                end={"dateTime": _rfc3339(begin + duration), "timeZone": "UTC"},
            )
            created.append(self.put_event(calendar_id, instance))
        return created

    def get_event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._calendar(calendar_id).events[event_id].event)

    def cancel_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event. A series id cancels every instance of that series."""
        with self._lock:
            calendar = self._calendar(calendar_id)
            targets = [
                stored.event
                for stored in calendar.events.values()
                if stored.event["id"] == event_id or stored.event.get("recurringEventId") == event_id
            ]
            if not targets:
                raise KeyError(f"no event {event_id!r} in calendar {calendar_id!r}")
            for target in targets:
                target["status"] = "cancelled"
                target["sequence"] = target.get("sequence", 0) + 1
                self._touch(calendar, target)
        if self.auto_notify:
            self.notify(calendar_id)

    def notify(self, calendar_id: str, state: str = "exists") -> list[int]:
        """POST a push notification to every open channel on the calendar; returns the HTTP statuses.

        Like Google, the body is empty and everything is in ``X-Goog-*`` headers. A receiver that
        cannot be reached counts as status 0.
        """
        now = self._clock.now()
        with self._lock:
            targets = [
                c
                for c in self.channels
                if c["calendar_id"] == calendar_id and not c["stopped"] and c["expiration"] > now.timestamp() * 1000
            ]
            deliveries = []
            for channel in targets:
                channel["message_number"] += 1
                deliveries.append(
                    (
                        channel["address"],
                        {
                            "X-Goog-Channel-ID": channel["id"],
                            "X-Goog-Channel-Token": channel["token"],
                            "X-Goog-Channel-Expiration": _http_date(channel["expiration"]),
                            "X-Goog-Resource-ID": channel["resourceId"],
                            "X-Goog-Resource-URI": channel["resourceUri"],
                            "X-Goog-Resource-State": state,
                            "X-Goog-Message-Number": str(channel["message_number"]),
                        },
                    )
                )
        statuses = []
        for address, headers in deliveries:
            try:
                status = httpx.post(address, headers=headers, content=b"", timeout=10.0).status_code
            except httpx.HTTPError:
                status = 0
            self.notifications.append({"address": address, "headers": headers, "status": status})
            statuses.append(status)
        return statuses

    # --- request handling ---------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, target))
        if path == "/token" and method == "POST":
            return self._token(body)
        if not path.startswith("/calendar/v3/"):
            return _error(404, "Not Found", "notFound")
        if not self._authorised(headers):
            with self._lock:
                self.unauthorised_requests += 1
            return _Reply(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError"}],
                        "status": "UNAUTHENTICATED",
                    }
                },
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            reason = {403: "rateLimitExceeded", 429: "rateLimitExceeded"}.get(fault, "backendError")
            return _error(fault, "Injected failure", reason)
        segments = [unquote(s) for s in path[len("/calendar/v3/") :].split("/")]
        if len(segments) > 1 and segments[0] == "calendars" and segments[1] == "primary":
            with self._lock:
                bearer = headers.get("authorization", "")[len("Bearer ") :].strip()
                segments[1] = self._primary_of.get(bearer, "primary")
        if method == "GET" and len(segments) == 3 and segments[0] == "calendars" and segments[2] == "events":
            return self._list(segments[1], query)
        if (
            method == "POST"
            and len(segments) == 4
            and segments[0] == "calendars"
            and segments[2:] == ["events", "watch"]
        ):
            return self._watch(segments[1], _json_body(body))
        if method == "POST" and segments == ["channels", "stop"]:
            return self._stop(_json_body(body))
        return _error(404, "Not Found", "notFound")

    def _token(self, body: bytes) -> _Reply:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        with self._lock:
            self.token_requests += 1
            if form.get("grant_type") != "refresh_token":
                return _Reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
            client = self._clients.get(form.get("client_id", ""))
            if client is None:
                return _Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
            secret, refresh_tokens = client
            if not secrets.compare_digest(secret.encode(), form.get("client_secret", "").encode()):
                return _Reply(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            presented = form.get("refresh_token", "")
            if presented not in refresh_tokens:
                error = self._refused.get(presented, "invalid_grant")
                return _Reply(
                    400 if error == "invalid_grant" else 401, {"error": error, "error_description": "Bad Request"}
                )
            token = "ya29.fake-" + secrets.token_urlsafe(24)
            self._access_tokens[token] = self._clock.now() + timedelta(seconds=self.token_lifetime_seconds)
            owner = self._primary_of.get(presented)
            if owner is not None:
                self._primary_of[token] = owner
            answer = {
                "access_token": token,
                "expires_in": self.token_lifetime_seconds,
                "scope": "https://www.googleapis.com/auth/calendar.readonly",
                "token_type": "Bearer",
            }
            if self.rotate_refresh_tokens:
                rotated = "1//0fake-rotated-" + secrets.token_urlsafe(24)
                refresh_tokens.discard(presented)
                refresh_tokens.add(rotated)
                if owner is not None:
                    self._primary_of[rotated] = owner
                answer["refresh_token"] = rotated
                self.rotated_refresh_tokens.append(rotated)
        return _Reply(200, answer)

    def _authorised(self, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if not value.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self._access_tokens.get(value[len("Bearer ") :].strip())
            return expiry is not None and expiry > self._clock.now()

    def _list(self, calendar_id: str, query: dict[str, str]) -> _Reply:
        with self._lock:
            calendar = self._calendars.get(calendar_id)
            if calendar is None:
                return _error(404, "Not Found", "notFound")
            page_token = query.get("pageToken")
            if page_token:
                pending = self._pages.pop(page_token, None)
                if pending is None:
                    return _error(400, "Invalid page token value.", "invalid")
                items, sync_token = pending
            else:
                built = self._first_listing(calendar_id, calendar, query)
                if isinstance(built, _Reply):
                    return built
                items, sync_token = built
            try:
                size = min(int(query.get("maxResults", _DEFAULT_MAX_RESULTS)), self.page_size)
            except ValueError:
                return _error(400, "Invalid value for maxResults", "invalid")
            size = max(size, 1)
            page, rest = items[:size], items[size:]
            answer: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"{self._counter}"',
                "summary": calendar_id,
                "updated": _rfc3339(self._clock.now()),
                "timeZone": "UTC",
                "accessRole": "owner",
                "defaultReminders": [],
                "items": page,
            }
            if rest:
                next_token = secrets.token_urlsafe(16)
                self._pages[next_token] = (rest, sync_token)
                answer["nextPageToken"] = next_token
            else:
                answer["nextSyncToken"] = sync_token
            return _Reply(200, answer)

    def _first_listing(
        self, calendar_id: str, calendar: _Calendar, query: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str] | _Reply:
        sync_token = query.get("syncToken")
        if sync_token:
            if any(name in query for name in _FILTERS_INCOMPATIBLE_WITH_SYNC_TOKEN):
                return _error(400, "Sync token cannot be combined with the filters used.", "invalid")
            decoded = _decode_sync_token(sync_token)
            if decoded is None or decoded["c"] != calendar_id:
                return _error(400, "Invalid sync token value.", "invalid")
            if decoded["g"] != calendar.generation:
                return _error(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
            changed = sorted(
                (s for s in calendar.events.values() if s.changed_at > decoded["s"]), key=lambda s: s.changed_at
            )
            items = [_as_listed(s.event) for s in changed]
        else:
            try:
                time_min = _parse_rfc3339(query["timeMin"]) if "timeMin" in query else None
                time_max = _parse_rfc3339(query["timeMax"]) if "timeMax" in query else None
            except ValueError:
                return _error(400, "Bad Request", "badRequest")
            show_deleted = query.get("showDeleted") == "true"
            selected = []
            for stored in calendar.events.values():
                event = stored.event
                if event["status"] == "cancelled" and not show_deleted:
                    continue
                start, end = _parse_time(event["start"]), _parse_time(event["end"])
                if time_min is not None and end <= time_min:
                    continue
                if time_max is not None and start >= time_max:
                    continue
                selected.append(event)
            selected.sort(key=lambda e: (_parse_time(e["start"]), e["id"]))
            items = [_as_listed(e) for e in selected]
        token = _encode_sync_token({"c": calendar_id, "g": calendar.generation, "s": self._counter})
        return items, token

    def _watch(self, calendar_id: str, body: dict[str, Any] | None) -> _Reply:
        if body is None:
            return _error(400, "Parse Error", "parseError")
        channel_id, address = body.get("id"), body.get("address")
        if not channel_id or not address or body.get("type") not in ("web_hook", "webhook"):
            return _error(400, "id, address and type web_hook are required", "required")
        try:
            ttl = int((body.get("params") or {}).get("ttl", 604800))
        except (TypeError, ValueError):
            return _error(400, "Invalid ttl", "invalid")
        with self._lock:
            if calendar_id not in self._calendars:
                return _error(404, "Not Found", "notFound")
            if any(c["id"] == channel_id for c in self.channels):
                return _error(400, f"Channel id {channel_id} not unique", "channelIdNotUnique")
            expiration = int((self._clock.now() + timedelta(seconds=ttl)).timestamp() * 1000)
            channel = {
                "id": channel_id,
                "resourceId": secrets.token_urlsafe(18),
                "resourceUri": f"{self.api_base}/calendars/{calendar_id}/events?alt=json",
                "token": body.get("token", ""),
                "address": address,
                "expiration": expiration,
                "calendar_id": calendar_id,
                "stopped": False,
                "message_number": 0,
            }
            self.channels.append(channel)
        if self.auto_notify:
            self.notify(calendar_id, state="sync")
        answer = {
            "kind": "api#channel",
            "id": channel["id"],
            "resourceId": channel["resourceId"],
            "resourceUri": channel["resourceUri"],
            "token": channel["token"],
            "expiration": str(channel["expiration"]),
        }
        return _Reply(200, answer)

    def _stop(self, body: dict[str, Any] | None) -> _Reply:
        if body is None:
            return _error(400, "Parse Error", "parseError")
        with self._lock:
            for channel in self.channels:
                if channel["id"] == body.get("id") and channel["resourceId"] == body.get("resourceId"):
                    if channel["stopped"]:
                        break
                    channel["stopped"] = True
                    return _Reply(204)
        return _error(404, f"Channel '{body.get('id')}' not found for project", "notFound")

    # --- state --------------------------------------------------------------------------------

    def _calendar(self, calendar_id: str, *, create: bool = False) -> _Calendar:
        calendar = self._calendars.get(calendar_id)
        if calendar is None:
            if not create:
                raise KeyError(f"no calendar {calendar_id!r}")
            calendar = self._calendars[calendar_id] = _Calendar()
        return calendar

    def _touch(self, calendar: _Calendar, event: dict[str, Any]) -> None:
        self._counter += 1
        event["updated"] = _rfc3339(self._clock.now())
        event["etag"] = f'"{self._counter}"'
        calendar.events[event["id"]] = _StoredEvent(event=event, changed_at=self._counter)


# --- shapes -----------------------------------------------------------------------------------


def _error(status: int, message: str, reason: str) -> _Reply:
    return _Reply(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        },
    )


def _as_listed(event: dict[str, Any]) -> dict[str, Any]:
    if event["status"] != "cancelled":
        return copy.deepcopy(event)
    # Google lists a deleted event with little more than its identity.
    reduced: dict[str, Any] = {
        k: copy.deepcopy(event[k]) for k in ("kind", "etag", "id", "status", "updated") if k in event
    }
    for key in ("recurringEventId", "originalStartTime"):
        if key in event:
            reduced[key] = copy.deepcopy(event[key])
    return reduced


def _json_body(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _encode_sync_token(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def _decode_sync_token(token: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        return None
    if not isinstance(value, dict) or not {"c", "g", "s"} <= value.keys():
        return None
    return value


def _parse_rfc3339(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_time(value: dict[str, Any]) -> datetime:
    if value.get("dateTime"):
        return _parse_rfc3339(value["dateTime"]).astimezone(UTC)
    day = date.fromisoformat(value["date"])
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _instance_suffix(start: dict[str, Any]) -> str:
    if start.get("dateTime"):
        return _parse_time(start).strftime("%Y%m%dT%H%M%SZ")
    return str(start["date"]).replace("-", "")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _http_date(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
