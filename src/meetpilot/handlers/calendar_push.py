"""HTTP API entry point for Google Calendar push notifications: POST /calendar/google."""

from __future__ import annotations

from typing import Any

from meetpilot.app.calendar_push import receive_google_push
from meetpilot.composition import container
from meetpilot.handlers.apigw import json_response, lower_headers
from meetpilot.handlers.observability import logger


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    c = container()
    result = receive_google_push(lower_headers(event), repo=c.repository, queue=c.calendar_sync_queue)
    # The channel token is a header: only the outcome and the calendar are logged.
    log = logger.info if result.status == 200 else logger.warning
    log("google push", extra={"status": result.status, "reason": result.reason, "calendar_id": result.calendar_id})
    return json_response(result.status, result.body)
