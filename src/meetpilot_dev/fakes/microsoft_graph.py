"""A local fake of Microsoft's login endpoint and the Microsoft Graph calendar endpoints meetpilot uses,
for tests, the demo and ``meetpilot dev``. It serves both on 127.0.0.1 (an ephemeral port):
``login_base`` is the login host (``{login_base}/{tenant}/oauth2/v2.0/token``) and ``graph_base`` the
Graph v1.0 root. It behaves like the real services where meetpilot depends on them:

* token: the refresh-token grant returns a new refresh token on every call and the old one keeps
  working; a revoked grant answers 400 ``invalid_grant`` with its AADSTS code (700082, 50173,
  65001, ...); a wrong or expired client secret 401 ``invalid_client`` (7000215 / 7000222, as Entra
  answers it); injected 429/503 carry ``Retry-After``. ``client_credentials`` gives no refresh token.
* ``GET /me/calendarView/delta`` (and ``/me/calendars/{id}/calendarView/delta``): 400 without the
  window; ``Prefer: odata.maxpagesize``, ``outlook.timezone`` and ``IdType`` read from one header;
  opaque absolute ``nextLink``/``deltaLink`` URLs with the window frozen into them; occurrences of a
  series come back bare (no subject, body or attendees); ``@removed`` for deleted events and for
  events changed outside the window; a deleted occurrence leaves no trace (its siblings come back
  instead); switches for empty pages that still carry a nextLink, replayed items, and 410
  ``SyncStateNotFound`` for links older than ``expire_delta_links``; 429 ``ApplicationThrottled``
  above 4 concurrent requests per mailbox.
* ``GET /me/events/{id}`` and ``GET /me/events/{id}/instances``; 404 ``ErrorItemNotFound`` once gone.
* ``/subscriptions``: POST validates both URLs synchronously (``?validationToken=`` text/plain, a
  10 s limit, the decoded token must come back) before answering 201; more than 10,070 minutes
  ahead is 400 ``ExtensionError``; under 45 minutes is raised to 45; PATCH, DELETE,
  ``/reauthorize`` and GET; subscriptions expire on the fake's clock.
* change notifications to ``notificationUrl`` (batched ``value[]``; created+updated for a new
  event, updated on the master when an occurrence is deleted; retried when not answered 2xx within
  3 s; a switch for a wrong ``clientState``) and lifecycle notifications to
  ``lifecycleNotificationUrl`` (``reauthorizationRequired`` pauses delivery until a PATCH or
  reauthorize, ``subscriptionRemoved`` deletes the subscription, ``missed``).

Every Graph error has Graph's body: ``{"error": {"code", "message", "innerError"}}``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from meetpilot.domain.clock import Clock, SystemClock
from meetpilot_dev.fakes.loopback import LoopbackServer, Reply, ServedFake

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/Calendars.Read"
MAX_SUBSCRIPTION_MINUTES = 10070
MIN_SUBSCRIPTION_MINUTES = 45
MAILBOX_CONCURRENCY = 4
_DEFAULT_PAGE_SIZE = 10
_MAX_BODY_BYTES = 1024 * 1024
# What Entra says about each refusal (the fake's replies carry the code first, like the real one).
AADSTS_MESSAGES = {
    700082: "The refresh token has expired due to inactivity.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
    65001: "The user or administrator has not consented to use the application.",
    50076: "Due to a configuration change made by your administrator, you must use multi-factor authentication.",
    7000215: "Invalid client secret provided.",
    7000222: "The provided client secret keys for app are expired.",
}
_INTERACTION_CODES = {50076, 50079}


_Reply = Reply


@dataclass
class _Mailbox:
    email: str
    user_id: str
    # Singles, series masters and occurrences (an occurrence holds only its own fields; the
    # rest comes from its master, see _full).
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id -> change counter
    deleted: set[str] = field(default_factory=set)  # ids that delta reports as @removed
    generation: int = 0  # bumped by expire_delta_links: older links answer 410


@dataclass
class _Round:
    """One round of delta paging: what is still to be served, and what the deltaLink will cover."""

    mailbox: str
    calendar: str
    start: datetime
    end: datetime
    generation: int
    upto: int
    pending: list[dict[str, Any]]
    page_size: int
    empty_next: bool = False


@dataclass
class _DeltaState:
    mailbox: str
    calendar: str
    start: datetime
    end: datetime
    generation: int
    since: int


class FakeMicrosoftGraph(ServedFake):
    """In-memory mailboxes behind Graph-shaped endpoints. Thread-safe; start it, use it, stop it.

    >>> fake = FakeMicrosoftGraph()
    >>> fake.start()  # doctest: +SKIP
    >>> fake.add_client("app-id", "app-secret", tenant="contoso-tenant")
    >>> fake.add_user("ann@contoso.test")  # doctest: +ELLIPSIS
    '...'
    >>> refresh_token = fake.grant("app-id", "ann@contoso.test")
    >>> fake.stop()
    """

    def __init__(self, *, clock: Clock | None = None, token_lifetime_seconds: int = 3599) -> None:
        self.token_lifetime_seconds = token_lifetime_seconds
        self.default_page_size = _DEFAULT_PAGE_SIZE
        # Switches.
        self.empty_pages = False  # an empty page (with a nextLink) before every further page
        self.replay_items = False  # the first item of a round comes again at its end
        self.wrong_client_state = False  # notifications carry a clientState that is not ours
        self.auto_notify = False  # event changes are delivered to subscriptions at once
        self.validation_timeout = 10.0
        self.delivery_timeout = 3.0
        self.delivery_attempts = 3
        # Observations (never headers that hold tokens).
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.prefer_headers: list[str] = []
        self.token_requests = 0
        self.rotated_refresh_tokens: list[str] = []
        self.deliveries: list[dict[str, Any]] = []  # notifications and lifecycle events sent
        self.validations: list[dict[str, Any]] = []  # validation requests sent, with the answer
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._clients: dict[str, dict[str, Any]] = {}
        self._mailboxes: dict[str, _Mailbox] = {}
        self._refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (client id, mailbox)
        self._revoked: dict[tuple[str, str], int] = {}  # (client id, mailbox) -> AADSTS code
        self._access_tokens: dict[str, tuple[str, str | None, datetime]] = {}  # -> (client, mailbox, expiry)
        self._rounds: dict[str, _Round] = {}
        self._delta_states: dict[str, _DeltaState] = {}
        self._in_flight: dict[str, int] = {}
        self._counter = 0
        self._faults: list[_Reply] = []
        self._token_faults: list[_Reply] = []
        self._pending_changes: dict[str, list[tuple[str, str]]] = {}
        self._http = LoopbackServer(
            lambda *request: self.handle(*request),  # looked up per request: tests wrap it
            name="fake-graph",
            content_type="application/json; odata.metadata=minimal; charset=utf-8",
            too_large=lambda: _graph_error(413, "RequestEntityTooLarge", "Request too large."),
            failed=lambda: _graph_error(500, "generalException", "An unexpected error occurred."),
            max_body=_MAX_BODY_BYTES,
            log=logger,
        )
        self.base_url = ""

    # --- addresses (start, stop and `with` come from ServedFake) --------------------------------

    @property
    def login_base(self) -> str:
        return self.base_url + "/login"

    @property
    def graph_base(self) -> str:
        return self.base_url + "/v1.0"

    # --- test controls: identities --------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, *, tenant: str = "common") -> None:
        """Register the user's app (an Entra application id, its secret and its directory)."""
        with self._lock:
            self._clients[client_id] = {"secret": client_secret, "tenant": tenant, "expired": False}

    def add_user(self, email: str, *, user_id: str | None = None) -> str:
        """Create a mailbox; returns its user id (a GUID)."""
        key = email.strip().lower()
        with self._lock:
            if key not in self._mailboxes:
                self._mailboxes[key] = _Mailbox(email=email, user_id=user_id or str(uuid.uuid4()))
            return self._mailboxes[key].user_id

    def grant(self, client_id: str, email: str) -> str:
        """The user consented to the app: a refresh token for it (what the app hands meetpilot)."""
        key = email.strip().lower()
        with self._lock:
            if client_id not in self._clients or key not in self._mailboxes:
                raise KeyError("add the client and the user first")
            self._revoked.pop((client_id, key), None)
            return self._issue_refresh_token(client_id, key)

    def revoke_grant(self, email: str, *, code: int = 50173) -> None:
        """Every refresh token of the user now answers ``invalid_grant`` with ``code`` (50173 revoked,
        700082 expired after inactivity, 65001 consent withdrawn, 50076 MFA required)."""
        key = email.strip().lower()
        with self._lock:
            for client_id in self._clients:
                self._revoked[(client_id, key)] = code

    def expire_client_secret(self, client_id: str) -> None:
        """The app's secret expired: every token request answers 401 ``invalid_client`` (AADSTS7000222)."""
        with self._lock:
            self._clients[client_id]["expired"] = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (Graph answers 401)."""
        with self._lock:
            self._access_tokens.clear()

    def refresh_token_valid(self, token: str) -> bool:
        with self._lock:
            grant = self._refresh_tokens.get(token)
            return grant is not None and grant not in self._revoked

    # --- test controls: faults ------------------------------------------------------------------

    def fail_next(
        self, status: int, count: int = 1, *, retry_after: int | None = None, code: str | None = None
    ) -> None:
        """The next ``count`` Graph calls answer ``status`` (429 and 503 with ``Retry-After`` when given)."""
        default = {429: "TooManyRequests", 503: "serviceNotAvailable", 504: "UnknownError"}.get(
            status, "generalException"
        )
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._faults.extend(
                _graph_error(status, code or default, "Injected failure", headers=headers) for _ in range(count)
            )

    def fail_token_next(self, status: int, count: int = 1, *, retry_after: int | None = None) -> None:
        """The next ``count`` token requests answer ``status`` (``temporarily_unavailable``)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = {"error": "temporarily_unavailable", "error_description": "AADSTS50196: Injected failure.",
                "error_codes": [50196]}  # fmt: skip
        with self._lock:
            self._token_faults.extend(_Reply(status, dict(body), dict(headers)) for _ in range(count))

    def expire_delta_links(self, email: str) -> None:
        """Every delta and next link issued so far for the mailbox answers 410 ``SyncStateNotFound``."""
        with self._lock:
            self._mailbox(email).generation += 1

    # --- test controls: events ------------------------------------------------------------------

    def put_event(self, email: str, event: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an event as the user saving it; returns the stored copy.

        ``start``/``end`` may be aware datetimes or Graph's ``{"dateTime", "timeZone"}``. ``id``,
        ``type`` (singleInstance), ``changeKey``, ``@odata.etag``, ``iCalUId``, ``isCancelled``,
        ``isOrganizer``, ``responseStatus`` and ``organizer`` are filled in when missing. An id that
        names an occurrence makes it an exception with the new fields.
        """
        result = self._store(email, event)
        self._maybe_deliver(email)
        return result

    def _store(self, email: str, event: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(event)
        for name in ("start", "end"):
            if isinstance(stored.get(name), datetime):
                stored[name] = graph_time(stored[name])
        with self._lock:
            box = self._mailbox(email)
            previous = box.events.get(stored.get("id", ""))
            if previous is not None and previous.get("type") in ("occurrence", "exception"):
                merged = {**previous, **stored, "type": "exception"}
                self._touch(box, merged)
                self._queue_change(box, "updated", merged["id"])
                return self._full(box, merged)
            if "start" not in stored or "end" not in stored:
                raise ValueError("an event needs start and end")
            stored.setdefault("id", _new_id())
            stored.setdefault("type", "singleInstance")
            stored.setdefault("subject", "")
            stored.setdefault("isCancelled", False)
            stored.setdefault("isAllDay", False)
            stored.setdefault("isOrganizer", False)
            stored.setdefault("iCalUId", "040000008200E00074C5B7101A82E008" + secrets.token_hex(16).upper())
            stored.setdefault("organizer", {"emailAddress": {"name": box.email.split("@")[0], "address": box.email}})
            stored.setdefault(
                "responseStatus",
                {"response": "organizer" if stored["isOrganizer"] else "accepted", "time": "0001-01-01T00:00:00Z"},
            )
            stored.setdefault("attendees", [])
            stored.setdefault("body", {"contentType": "html", "content": ""})
            stored.setdefault("location", {"displayName": ""})
            self._touch(box, stored)
            box.deleted.discard(stored["id"])
            if previous is None:
                self._queue_change(box, "created", stored["id"])
            self._queue_change(box, "updated", stored["id"])
            if stored["type"] == "seriesMaster":
                for occurrence in self._occurrences(box, stored["id"]):
                    self._touch(box, occurrence)
            return copy.deepcopy(stored)

    def put_series(
        self, email: str, master: dict[str, Any], starts: Iterable[datetime], *, minutes: int = 30
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A recurring meeting: its master (times of the first occurrence) and one occurrence per start."""
        begins = sorted(s.astimezone(UTC) for s in starts)
        if not begins:
            raise ValueError("a series needs at least one start")
        body = {**master, "type": "seriesMaster", "start": begins[0], "end": begins[0] + timedelta(minutes=minutes)}
        body.setdefault("recurrence", {"pattern": {"type": "daily", "interval": 1}})
        stored = self._store(email, {**body, "id": master.get("id") or _new_id()})
        occurrences = []
        with self._lock:
            box = self._mailbox(email)
            for begin in begins:
                occurrence = {
                    "id": f"{stored['id']}_OCC{begin.strftime('%Y%m%dT%H%M')}",
                    "type": "occurrence",
                    "seriesMasterId": stored["id"],
                    "start": graph_time(begin),
                    "end": graph_time(begin + timedelta(minutes=minutes)),
                }
                self._touch(box, occurrence)
                occurrences.append(self._full(box, occurrence))
        self._maybe_deliver(email)
        return stored, occurrences

    def cancel_event(self, email: str, event_id: str) -> None:
        """The organizer cancelled: the attendee's copy stays, ``isCancelled`` and a "Canceled: " subject."""
        with self._lock:
            box = self._mailbox(email)
            target = box.events[event_id]
            target["isCancelled"] = True
            if not str(target.get("subject", "")).startswith("Canceled: "):
                target["subject"] = "Canceled: " + str(target.get("subject", ""))
            self._touch(box, target)
            self._queue_change(box, "updated", event_id)
            for occurrence in self._occurrences(box, event_id):
                self._touch(box, occurrence)
        self._maybe_deliver(email)

    def decline_event(self, email: str, event_id: str) -> None:
        """The mailbox's owner declined (a whole series when ``event_id`` is its master)."""
        with self._lock:
            box = self._mailbox(email)
            target = box.events[event_id]
            target["responseStatus"] = {"response": "declined", "time": _iso(self._clock.now())}
            self._touch(box, target)
            self._queue_change(box, "updated", event_id)
            for occurrence in self._occurrences(box, event_id):
                self._touch(box, occurrence)
        self._maybe_deliver(email)

    def delete_event(self, email: str, event_id: str) -> None:
        """Delete an event. A master takes its occurrences with it; a deleted occurrence leaves no trace
        in delta (its siblings are reported again, and the master is notified ``updated``)."""
        with self._lock:
            box = self._mailbox(email)
            target = box.events.pop(event_id)
            if target.get("type") in ("occurrence", "exception"):
                master_id = target["seriesMasterId"]
                box.changed.pop(event_id, None)
                for sibling in self._occurrences(box, master_id):
                    self._touch(box, sibling)
                self._queue_change(box, "updated", master_id)
            else:
                for occurrence in self._occurrences(box, event_id):
                    box.events.pop(occurrence["id"])
                    self._mark_deleted(box, occurrence["id"])
                self._mark_deleted(box, event_id)
                self._queue_change(box, "deleted", event_id)
        self._maybe_deliver(email)

    def get_event(self, email: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            box = self._mailbox(email)
            return self._full(box, box.events[event_id])

    # --- notifications --------------------------------------------------------------------------

    def deliver(self, email: str) -> list[int]:
        """POST the queued change notifications of the mailbox to its subscriptions, batched per URL.

        Returns the final HTTP status of each POST (0: unreachable or slower than 3 s). A paused
        subscription (``reauthorizationRequired``) gets nothing: those changes are lost to it.
        """
        now = self._clock.now()
        with self._lock:
            box = self._mailbox(email)
            changes = self._pending_changes.pop(box.email.lower(), [])
            if not changes:
                return []
            batches: dict[str, list[dict[str, Any]]] = {}
            for sub in self.subscriptions.values():
                if sub["mailbox"] != box.email.lower() or sub["paused"] or _parse_iso(sub["expirationDateTime"]) <= now:
                    continue
                for change_type, event_id in changes:
                    if change_type not in sub["changeType"].split(","):
                        continue
                    resource = f"Users/{box.user_id}/Events/{event_id}"
                    batches.setdefault(sub["notificationUrl"], []).append(
                        {
                            "id": secrets.token_urlsafe(10),
                            "subscriptionId": sub["id"],
                            "subscriptionExpirationDateTime": sub["expirationDateTime"],
                            "changeType": change_type,
                            "clientState": "not-the-client-state" if self.wrong_client_state else sub["clientState"],
                            "tenantId": sub["tenantId"],
                            "resource": resource,
                            "resourceData": {
                                "@odata.type": "#Microsoft.Graph.Event",
                                "@odata.id": resource,
                                "@odata.etag": 'W/"' + secrets.token_urlsafe(8) + '"',
                                "id": event_id,
                            },
                        }
                    )
        return [self._post_json(url, {"value": value}, kind="notification") for url, value in batches.items()]

    def lifecycle(self, subscription_id: str, event: str) -> int:
        """Send a lifecycle notification: ``reauthorizationRequired`` (pauses delivery until PATCH or
        reauthorize), ``subscriptionRemoved`` (the subscription is deleted first) or ``missed``."""
        if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self._lock:
            sub = self.subscriptions[subscription_id]
            if event == "reauthorizationRequired":
                sub["paused"] = True
            elif event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
            url = sub.get("lifecycleNotificationUrl") or sub["notificationUrl"]
            item = {
                "subscriptionId": sub["id"],
                "subscriptionExpirationDateTime": sub["expirationDateTime"],
                "tenantId": sub["tenantId"],
                "clientState": "not-the-client-state" if self.wrong_client_state else sub["clientState"],
                "lifecycleEvent": event,
            }
        return self._post_json(url, {"value": [item]}, kind=event)

    def _maybe_deliver(self, email: str) -> None:
        if self.auto_notify:
            self.deliver(email)

    def _post_json(self, url: str, body: dict[str, Any], *, kind: str) -> int:
        status = 0
        for _ in range(max(1, self.delivery_attempts)):
            try:
                status = httpx.post(url, json=body, timeout=self.delivery_timeout).status_code
            except httpx.HTTPError:
                status = 0
            if 200 <= status < 300:
                break
        self.deliveries.append({"kind": kind, "url": url, "body": body, "status": status})
        return status

    # --- request handling -----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, target))
        token_route = re.fullmatch(r"/login/([^/]+)/oauth2/v2\.0/token", path)
        if token_route and method == "POST":
            return self._token(token_route.group(1), body)
        if not path.startswith("/v1.0/"):
            return _graph_error(404, "NotFound", "Resource not found for the segment.")
        auth = self._authorised(headers)
        if auth is None:
            return _graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
                headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        client_id, mailbox = auth
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return fault
        segments = [unquote(segment) for segment in path[len("/v1.0/") :].split("/")]
        if segments[0] == "subscriptions":
            return self._subscriptions(method, segments[1:], client_id, mailbox, body)
        if mailbox is None or segments[0] != "me":
            return _graph_error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        with self._lock:
            if self._in_flight.get(mailbox, 0) >= MAILBOX_CONCURRENCY:
                return _graph_error(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    headers={"Retry-After": "1"},
                )
            self._in_flight[mailbox] = self._in_flight.get(mailbox, 0) + 1
        try:
            return self._me(method, segments[1:], query, headers, mailbox)
        finally:
            with self._lock:
                self._in_flight[mailbox] -= 1

    def _me(
        self, method: str, segments: list[str], query: dict[str, str], headers: dict[str, str], mailbox: str
    ) -> _Reply:
        prefer = headers.get("prefer", "")
        with self._lock:
            self.prefer_headers.append(prefer)
        zone = _prefer_zone(prefer)
        if isinstance(zone, _Reply):
            return zone
        if method != "GET":
            return _graph_error(405, "ErrorInvalidRequest", "The OData request is not supported.")
        calendar = "primary"
        if len(segments) >= 2 and segments[0] == "calendars":
            calendar = segments[1]
            segments = segments[2:]
        if segments == ["calendarView", "delta"]:
            return self._delta(mailbox, calendar, query, prefer, zone)
        if len(segments) == 2 and segments[0] == "events":
            return self._get_event(mailbox, segments[1], zone)
        if len(segments) == 3 and segments[0] == "events" and segments[2] == "instances":
            return self._instances(mailbox, segments[1], query, zone)
        return _graph_error(400, "BadRequest", "Resource not found for the segment.")

    # --- token --------------------------------------------------------------------------------

    def _token(self, tenant: str, body: bytes) -> _Reply:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        with self._lock:
            self.token_requests += 1
            if self._token_faults:
                return self._token_faults.pop(0)
            client = self._clients.get(form.get("client_id", ""))
            if client is None:
                return _aad_error(400, "unauthorized_client", 700016)
            if client["tenant"] not in (tenant, "common") and tenant not in ("common", "organizations"):
                return _aad_error(400, "invalid_request", 90002)
            if not secrets.compare_digest(client["secret"].encode(), form.get("client_secret", "").encode()):
                return _aad_error(401, "invalid_client", 7000215)
            if client["expired"]:
                return _aad_error(401, "invalid_client", 7000222)
            grant_type = form.get("grant_type")
            if grant_type == "client_credentials":
                access = self._issue_access_token(form["client_id"], None)
                return _Reply(200, {"token_type": "Bearer", "expires_in": self.token_lifetime_seconds,
                                    "ext_expires_in": self.token_lifetime_seconds, "access_token": access})  # fmt: skip
            if grant_type != "refresh_token":
                return _aad_error(400, "unsupported_grant_type", 70003)
            scopes = set(form.get("scope", "").split())
            if scopes - {"offline_access", GRAPH_SCOPE, "openid", "profile"}:
                return _aad_error(400, "invalid_scope", 70011)
            grant = self._refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant[0] != form["client_id"]:
                return _aad_error(400, "invalid_grant", 9002313)
            code = self._revoked.get(grant)
            if code is not None:
                error = "interaction_required" if code in _INTERACTION_CODES else "invalid_grant"
                return _aad_error(400, error, code)
            access = self._issue_access_token(grant[0], grant[1])
            answer: dict[str, Any] = {
                "token_type": "Bearer",
                "scope": GRAPH_SCOPE,
                "expires_in": self.token_lifetime_seconds,
                "ext_expires_in": self.token_lifetime_seconds,
                "access_token": access,
            }
            if "offline_access" in scopes:
                # A new one every time; the one just used stays valid (Entra does not revoke it).
                answer["refresh_token"] = self._issue_refresh_token(grant[0], grant[1])
                self.rotated_refresh_tokens.append(answer["refresh_token"])
            return _Reply(200, answer)

    def _issue_refresh_token(self, client_id: str, mailbox: str) -> str:
        token = "1.AAA" + secrets.token_urlsafe(48)
        self._refresh_tokens[token] = (client_id, mailbox)
        return token

    def _issue_access_token(self, client_id: str, mailbox: str | None) -> str:
        token = "eyJ0eXAiOiJKV1Qi.fake." + secrets.token_urlsafe(32)
        expiry = self._clock.now() + timedelta(seconds=self.token_lifetime_seconds)
        self._access_tokens[token] = (client_id, mailbox, expiry)
        return token

    def _authorised(self, headers: dict[str, str]) -> tuple[str, str | None] | None:
        value = headers.get("authorization", "")
        if not value.startswith("Bearer "):
            return None
        with self._lock:
            found = self._access_tokens.get(value[len("Bearer ") :].strip())
            if found is None or found[2] <= self._clock.now():
                return None
            return found[0], found[1]

    # --- delta ----------------------------------------------------------------------------------

    def _delta(self, mailbox: str, calendar: str, query: dict[str, str], prefer: str, zone: ZoneInfo | None) -> _Reply:
        with self._lock:
            box = self._mailboxes[mailbox]
            if "$skiptoken" in query:
                round_ = self._rounds.get(query["$skiptoken"])
                if round_ is None or round_.mailbox != mailbox:
                    return _graph_error(400, "BadRequest", "The skip token is not valid.")
                if round_.generation != box.generation:
                    return _sync_state_not_found(round_.generation, box.generation)
                del self._rounds[query["$skiptoken"]]
            elif "$deltatoken" in query:
                state = self._delta_states.get(query["$deltatoken"])
                if state is None or state.mailbox != mailbox:
                    return _graph_error(400, "BadRequest", "The delta token is not valid.")
                if state.generation != box.generation:
                    return _sync_state_not_found(state.generation, box.generation)
                items = self._changes(box, state)
                round_ = self._new_round(box, state.calendar, state.start, state.end, items, prefer)
            else:
                try:
                    start = _parse_iso(query["startDateTime"])
                    end = _parse_iso(query["endDateTime"])
                except (KeyError, ValueError):
                    return _graph_error(
                        400,
                        "ErrorInvalidParameter",
                        "This request requires a time window specified by the query string parameters "
                        "StartDateTime and EndDateTime.",
                    )
                items = [self._listed(box, e) for e in self._in_window(box, start, end)]
                round_ = self._new_round(box, calendar, start, end, items, prefer)
            if round_.empty_next and round_.pending:
                page: list[dict[str, Any]] = []
                round_.empty_next = False
            else:
                page, round_.pending = round_.pending[: round_.page_size], round_.pending[round_.page_size :]
                round_.empty_next = self.empty_pages
            answer: dict[str, Any] = {
                "@odata.context": f"{self.graph_base}/$metadata#Collection(event)",
                "value": [_in_zone(item, zone) for item in page],
            }
            if round_.pending:
                skip = secrets.token_urlsafe(24)
                self._rounds[skip] = round_
                answer["@odata.nextLink"] = f"{self.graph_base}/me/calendarView/delta?$skiptoken={skip}"
            else:
                delta = secrets.token_urlsafe(24)
                self._delta_states[delta] = _DeltaState(
                    mailbox, round_.calendar, round_.start, round_.end, round_.generation, round_.upto
                )
                answer["@odata.deltaLink"] = f"{self.graph_base}/me/calendarView/delta?$deltatoken={delta}"
            return _Reply(200, answer)

    def _new_round(
        self, box: _Mailbox, calendar: str, start: datetime, end: datetime, items: list[dict[str, Any]], prefer: str
    ) -> _Round:
        if self.replay_items and items:
            items = [*items, copy.deepcopy(items[0])]
        found = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        size = max(1, int(found.group(1))) if found else self.default_page_size
        return _Round(box.email.lower(), calendar, start, end, box.generation, self._counter, items, size)

    def _in_window(self, box: _Mailbox, start: datetime, end: datetime) -> list[dict[str, Any]]:
        listed = [e for e in box.events.values() if e.get("type") != "seriesMaster" and _overlaps(e, start, end)]
        return sorted(listed, key=lambda e: (_parse_graph_time(e["start"]), e["id"]))

    def _changes(self, box: _Mailbox, state: _DeltaState) -> list[dict[str, Any]]:
        items = []
        for event_id, counter in sorted(box.changed.items(), key=lambda kv: kv[1]):
            if counter <= state.since:
                continue
            event = box.events.get(event_id)
            if event is None:
                if event_id in box.deleted:
                    items.append(_removed(event_id))
                continue
            if event.get("type") == "seriesMaster":
                continue
            # An event changed outside the window is reported as removed too (Graph does this).
            items.append(self._listed(box, event) if _overlaps(event, state.start, state.end) else _removed(event_id))
        return items

    def _listed(self, box: _Mailbox, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") == "occurrence":
            # Delta hands occurrences out bare: identity and times, nothing else.
            return {
                "@odata.type": "#microsoft.graph.event",
                "@odata.etag": event["@odata.etag"],
                "id": event["id"],
                "seriesMasterId": event["seriesMasterId"],
                "type": "occurrence",
                "start": copy.deepcopy(event["start"]),
                "end": copy.deepcopy(event["end"]),
            }
        return self._full(box, event)

    def _get_event(self, mailbox: str, event_id: str, zone: ZoneInfo | None) -> _Reply:
        with self._lock:
            box = self._mailboxes[mailbox]
            event = box.events.get(event_id)
            if event is None:
                return _graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return _Reply(200, _in_zone(self._full(box, event), zone))

    def _instances(self, mailbox: str, master_id: str, query: dict[str, str], zone: ZoneInfo | None) -> _Reply:
        with self._lock:
            box = self._mailboxes[mailbox]
            if master_id not in box.events:
                return _graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            try:
                start, end = _parse_iso(query["startDateTime"]), _parse_iso(query["endDateTime"])
            except (KeyError, ValueError):
                return _graph_error(400, "ErrorInvalidParameter", "startDateTime and endDateTime are required.")
            found = [
                _in_zone(self._full(box, e), zone)
                for e in sorted(self._occurrences(box, master_id), key=lambda e: e["start"]["dateTime"])
                if _overlaps(e, start, end)
            ]
            return _Reply(200, {"value": found})

    # --- subscriptions --------------------------------------------------------------------------

    def _subscriptions(self, method: str, rest: list[str], client_id: str, mailbox: str | None, body: bytes) -> _Reply:
        now = self._clock.now()
        if not rest and method == "GET":
            with self._lock:
                mine = [
                    _public(s)
                    for s in self.subscriptions.values()
                    if s["applicationId"] == client_id and _parse_iso(s["expirationDateTime"]) > now
                ]
            return _Reply(200, {"value": mine})
        if not rest and method == "POST":
            return self._create_subscription(client_id, mailbox, _json_body(body))
        with self._lock:
            sub = self.subscriptions.get(rest[0])
            if sub is not None and _parse_iso(sub["expirationDateTime"]) <= now:
                del self.subscriptions[rest[0]]
                sub = None
            if sub is None or sub["applicationId"] != client_id:
                return _graph_error(404, "ResourceNotFound", "The object was not found.")
            if len(rest) == 2 and rest[1] == "reauthorize" and method == "POST":
                sub["paused"] = False
                return _Reply(200)
            if len(rest) != 1:
                return _graph_error(400, "BadRequest", "Resource not found for the segment.")
            if method == "DELETE":
                del self.subscriptions[rest[0]]
                return _Reply(204)
            if method == "PATCH":
                data = _json_body(body) or {}
                expiry = self._expiry(data.get("expirationDateTime"))
                if isinstance(expiry, _Reply):
                    return expiry
                sub["expirationDateTime"] = _iso(expiry)
                sub["paused"] = False
                return _Reply(200, _public(sub))
            if method == "GET":
                return _Reply(200, _public(sub))
        return _graph_error(405, "BadRequest", "Method not allowed.")

    def _create_subscription(self, client_id: str, mailbox: str | None, data: dict[str, Any] | None) -> _Reply:
        if data is None:
            return _graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        missing = [k for k in ("changeType", "notificationUrl", "resource", "expirationDateTime") if not data.get(k)]
        if missing:
            return _graph_error(400, "InvalidRequest", f"Missing property: {missing[0]}.")
        if mailbox is None or data["resource"].lower() not in ("me/events", "/me/events"):
            return _graph_error(400, "ExtensionError", "Operation: Create; Exception: [Status Code: BadRequest].")
        if len(str(data.get("clientState", ""))) > 128:
            return _graph_error(400, "InvalidRequest", "clientState is longer than 128 characters.")
        expiry = self._expiry(data["expirationDateTime"])
        if isinstance(expiry, _Reply):
            return expiry
        for url in dict.fromkeys(u for u in (data["notificationUrl"], data.get("lifecycleNotificationUrl")) if u):
            refused = self._validate_url(url)
            if refused is not None:
                return refused
        with self._lock:
            box = self._mailboxes[mailbox]
            sub = {
                "id": str(uuid.uuid4()),
                "resource": data["resource"],
                "applicationId": client_id,
                "changeType": data["changeType"],
                "clientState": data.get("clientState"),
                "notificationUrl": data["notificationUrl"],
                "lifecycleNotificationUrl": data.get("lifecycleNotificationUrl"),
                "expirationDateTime": _iso(expiry),
                "creatorId": box.user_id,
                "latestSupportedTlsVersion": "v1_2",
                "tenantId": self._clients[client_id]["tenant"],
                "mailbox": mailbox,
                "paused": False,
            }
            self.subscriptions[sub["id"]] = sub
            return _Reply(201, _public(sub))

    def _expiry(self, value: object) -> datetime | _Reply:
        now = self._clock.now()
        try:
            expiry = _parse_iso(str(value))
        except ValueError:
            return _graph_error(400, "InvalidRequest", "expirationDateTime is not a valid date.")
        if expiry <= now:
            return _graph_error(400, "InvalidRequest", "Subscription expiration must be in the future.")
        if expiry > now + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
            return _graph_error(
                400,
                "ExtensionError",
                f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future.",
            )
        return max(expiry, now + timedelta(minutes=MIN_SUBSCRIPTION_MINUTES))

    def _validate_url(self, url: str) -> _Reply | None:
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        target = url + ("&" if "?" in url else "?") + "validationToken=" + quote(token, safe="")
        record: dict[str, Any] = {"url": url, "token": token}
        try:
            response = httpx.post(
                target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.validation_timeout,
            )  # fmt: skip
        except httpx.TimeoutException:
            record["status"] = "timeout"
            self.validations.append(record)
            return _graph_error(400, "InvalidRequest", "Subscription validation request timed out.")
        except httpx.HTTPError:
            record["status"] = "unreachable"
            self.validations.append(record)
            return _graph_error(400, "InvalidRequest", "Subscription validation request failed.")
        record.update(status=response.status_code, answer=response.text,
                      content_type=response.headers.get("content-type", ""))  # fmt: skip
        self.validations.append(record)
        if response.status_code != 200 or response.text != token:
            return _graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request.",
            )
        return None

    # --- state ----------------------------------------------------------------------------------

    def _mailbox(self, email: str) -> _Mailbox:
        key = email.strip().lower()
        if key not in self._mailboxes:
            raise KeyError(f"no mailbox {email!r}; add_user first")
        return self._mailboxes[key]

    def _occurrences(self, box: _Mailbox, master_id: str) -> list[dict[str, Any]]:
        return [e for e in box.events.values() if e.get("seriesMasterId") == master_id]

    def _full(self, box: _Mailbox, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("seriesMasterId") and event["seriesMasterId"] in box.events:
            master = box.events[event["seriesMasterId"]]
            inherited = {k: v for k, v in master.items() if k not in ("id", "type", "recurrence", "start", "end")}
            return copy.deepcopy({**inherited, **event})
        return copy.deepcopy(event)

    def _touch(self, box: _Mailbox, event: dict[str, Any]) -> None:
        self._counter += 1
        key = secrets.token_urlsafe(12)
        event["changeKey"] = key
        event["@odata.etag"] = f'W/"{key}"'
        event["lastModifiedDateTime"] = _iso(self._clock.now())
        event.setdefault("createdDateTime", event["lastModifiedDateTime"])
        box.events[event["id"]] = event
        box.changed[event["id"]] = self._counter

    def _mark_deleted(self, box: _Mailbox, event_id: str) -> None:
        self._counter += 1
        box.changed[event_id] = self._counter
        box.deleted.add(event_id)

    def _queue_change(self, box: _Mailbox, change_type: str, event_id: str) -> None:
        self._pending_changes.setdefault(box.email.lower(), []).append((change_type, event_id))


# --- shapes -----------------------------------------------------------------------------------


def graph_time(moment: datetime) -> dict[str, str]:
    """Graph's ``dateTimeTimeZone`` in UTC: seven decimals, no offset."""
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def _parse_graph_time(value: dict[str, Any]) -> datetime:
    text = str(value["dateTime"])
    head, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else ""))
    zone = value.get("timeZone") or "UTC"
    return moment.replace(tzinfo=UTC if zone == "UTC" else ZoneInfo(zone)).astimezone(UTC)


def _overlaps(event: dict[str, Any], start: datetime, end: datetime) -> bool:
    return _parse_graph_time(event["start"]) < end and _parse_graph_time(event["end"]) > start


def _in_zone(item: dict[str, Any], zone: ZoneInfo | None) -> dict[str, Any]:
    if zone is None or "start" not in item:
        return item
    out = dict(item)
    for name in ("start", "end"):
        local = _parse_graph_time(item[name]).astimezone(zone)
        out[name] = {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": str(zone)}
    return out


def _prefer_zone(prefer: str) -> ZoneInfo | _Reply | None:
    found = re.search(r'outlook\.timezone="([^"]*)"', prefer)
    if not found or found.group(1) == "UTC":
        return None
    try:
        return ZoneInfo(found.group(1))
    except (ValueError, ZoneInfoNotFoundError):
        return _graph_error(400, "TimeZoneNotSupportedException", "A valid TimeZone value must be specified.")


def _removed(event_id: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}


def _public(sub: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sub.items() if k not in ("mailbox", "paused", "tenantId")}


def _graph_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> _Reply:
    inner = {"request-id": str(uuid.uuid4()), "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
    return _Reply(status, {"error": {"code": code, "message": message, "innerError": inner}}, dict(headers or {}))


def _sync_state_not_found(generation: int, highest: int) -> _Reply:
    return _graph_error(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={generation};[highest={highest}].",
    )


def _aad_error(status: int, error: str, code: int) -> _Reply:
    message = AADSTS_MESSAGES.get(code, "The request was refused.")
    trace = str(uuid.uuid4())
    return _Reply(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {message} Trace ID: {trace}",
            "error_codes": [code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def _json_body(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _new_id() -> str:
    return "AAMkAD" + secrets.token_urlsafe(30) + "="


def _parse_iso(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
