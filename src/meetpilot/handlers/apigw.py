"""API Gateway HTTP API (payload v2) events in, answers out: the one place a handler's HTTP answer
is shaped, so every function behind the API answers the same way."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from meetpilot.app.ingest import WebhookRequest


def json_response(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON answer with ``status``."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def lower_headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def request_from_event(event: Mapping[str, Any]) -> WebhookRequest:
    """Turn a webhook's event into a WebhookRequest; binascii.Error or ValueError for bad base64."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(raw, validate=True)
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    params = event.get("pathParameters") or {}
    return WebhookRequest(
        headers=lower_headers(event),
        body=body,
        session_id=params.get("session_id"),
        token=params.get("token"),
    )
