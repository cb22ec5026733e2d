"""Take in one webhook delivery: authenticate, check size and shape, make it durable, answer.

A signed workspace body replayed with a fresh timestamp passes here (MeetStream's signature does not
cover the timestamp); the worker's event dedupe makes the replay a no-op, so no delivery pays for a
storage write at the edge.

Nothing is acknowledged before it is durable: 200 only after the raw delivery is in SQS, 503 if
SQS refused it (MeetStream does not retry, so a 200 for a lost delivery would lose it silently).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meetpilot.app.messages import BotEventDelivery
from meetpilot.app.ports import MessageQueue, Secrets
from meetpilot.domain.clock import Clock
from meetpilot.domain.events import read_event
from meetpilot.domain.webhook_auth import timestamp_problem, verify_capability_token, verify_signature
from meetpilot.errors import InvalidEvent

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
        # Callback URLs carry tokens minted with meetpilot's own secret, never MeetStream's.
        if not verify_capability_token(secrets.token_secrets(), request.session_id, request.token or ""):
            return _reject(401, "bad_token", "invalid callback token")
        auth = "token"
    else:
        # The workspace secret is the one MeetStream shows; it never opens a callback URL.
        if not verify_signature(secrets.signing_secrets(), request.body, request.headers.get("x-meetstream-signature")):
            return _reject(401, "bad_signature", "invalid or missing X-MeetStream-Signature")
        problem = timestamp_problem(request.headers.get("x-meetstream-timestamp"), now)
        if problem:
            return _reject(401, "bad_timestamp", problem)
        auth = "signature"

    # The worker's own reading of the body, run here too: a body it would drop is refused now, with
    # its reason, instead of being acknowledged and lost. It needs no storage read.
    try:
        read_event(request.body)
    except InvalidEvent as exc:
        return _reject(400, exc.reason, str(exc))

    message = BotEventDelivery(
        received_at=now,
        auth=auth,
        session_id=request.session_id,
        headers={k: request.headers[k][:200] for k in KEPT_HEADERS if k in request.headers},
        body=request.body.decode("utf-8"),
    )
    try:
        queue.send(message.to_body())
    except Exception:  # any failure to make it durable must surface as 503, never 200
        return _reject(503, "queue_unavailable", "could not store the delivery; try again")
    return WebhookResponse(200, {"received": True}, "accepted")
