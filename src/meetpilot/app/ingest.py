"""Take in one webhook delivery: authenticate, check size and shape, make it durable, answer.

Nothing is acknowledged before it is durable: 200 only after the raw delivery is in SQS, 503 if
SQS refused it (MeetStream does not retry, so a 200 for a lost delivery would lose it silently).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meetpilot.app.ports import MessageQueue, Secrets
from meetpilot.domain.clock import Clock, to_iso
from meetpilot.domain.webhook_auth import timestamp_problem, verify_capability_token, verify_signature

MAX_BODY_BYTES = 256 * 1024
# Headers worth keeping with the delivery (for audit and for re-verification); never Authorization.
KEPT_HEADERS = ("content-type", "user-agent", "x-meetstream-timestamp", "x-request-id")


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    session_id: str | None = None  # present on the per-bot callback route
    token: str | None = None


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # a short machine-friendly reason for metrics and logs


def _reject(status: int, reason: str, message: str) -> WebhookResponse:
    return WebhookResponse(status, {"message": message}, reason)


def ingest_webhook(request: WebhookRequest, *, secrets: Secrets, queue: MessageQueue, clock: Clock) -> WebhookResponse:
    if len(request.body) > MAX_BODY_BYTES:
        return _reject(413, "too_large", f"body is larger than {MAX_BODY_BYTES // 1024} KiB")

    now = clock.now()
    if request.session_id is not None:
        if not verify_capability_token(secrets.webhook_secrets(), request.session_id, request.token or ""):
            return _reject(401, "bad_token", "invalid callback token")
        auth = "token"
    else:
        if not verify_signature(secrets.webhook_secrets(), request.body, request.headers.get("x-meetstream-signature")):
            return _reject(401, "bad_signature", "invalid or missing X-MeetStream-Signature")
        problem = timestamp_problem(request.headers.get("x-meetstream-timestamp"), now)
        if problem:
            return _reject(401, "bad_timestamp", problem)
        auth = "signature"

    try:
        text = request.body.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return _reject(400, "not_json", "body is not valid UTF-8 JSON")
    if not isinstance(payload, dict):
        return _reject(400, "not_object", "body must be a JSON object")
    if not any(isinstance(payload.get(k), str) for k in ("event", "bot_event", "bot_status")):
        return _reject(400, "no_event", "body has no event, bot_event or bot_status field")

    message = {
        "received_at": to_iso(now),
        "auth": auth,
        "session_id": request.session_id,
        "headers": {k: request.headers[k][:200] for k in KEPT_HEADERS if k in request.headers},
        "body": text,
    }
    try:
        queue.send(message)
    except Exception:  # any failure to make it durable must surface as 503, never 200
        return _reject(503, "queue_unavailable", "could not store the delivery; try again")
    return WebhookResponse(200, {"received": True}, "accepted")
