"""HTTP API entry point for MeetStream webhooks: POST /webhooks/meetstream[/{session_id}/{token}]."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from meetpilot.app.ingest import WebhookRequest, ingest_webhook
from meetpilot.composition import container
from meetpilot.handlers.observability import count, count_by, instrumented, logger


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def request_from_event(event: dict[str, Any]) -> WebhookRequest:
    """Turn an API Gateway v2 (HTTP API) event into a WebhookRequest."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(raw, validate=True)
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    params = event.get("pathParameters") or {}
    return WebhookRequest(
        headers=headers,
        body=body,
        session_id=params.get("session_id"),
        token=params.get("token"),
    )


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except (binascii.Error, ValueError):
        logger.warning("webhook rejected", extra={"reason": "bad_base64"})
        count_by("WebhooksRejected", "reason", "bad_base64")
        return _response(400, {"message": "body is not valid base64"})
    c = container()
    result = ingest_webhook(request, secrets=c.secrets, queue=c.bot_events_queue, clock=c.clock)
    if result.status == 200:
        count("WebhooksAccepted")
    else:
        count_by("WebhooksRejected", "reason", result.reason)
    log = logger.info if result.status == 200 else logger.warning
    log(
        "webhook accepted" if result.status == 200 else "webhook rejected",
        extra={"status": result.status, "reason": result.reason, "session_id": request.session_id},
    )
    return _response(result.status, result.body)
