"""HTTP API entry point for Google Calendar push notifications: POST /calendar/google."""

from __future__ import annotations

import json
from typing import Any

from meetpilot.app.calendar_push import receive_google_push
from meetpilot.composition import container
from meetpilot.handlers.observability import logger


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    c = container()
    result = receive_google_push(headers, repo=c.repository, queue=c.calendar_sync_queue)
    # The channel token is a header: only the outcome and the calendar are logged.
    log = logger.info if result.status == 200 else logger.warning
    log("google push", extra={"status": result.status, "reason": result.reason, "calendar_id": result.calendar_id})
    return {
        "statusCode": result.status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(result.body, separators=(",", ":")),
    }
