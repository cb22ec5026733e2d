"""HTTP API entry point for MeetStream webhooks: POST /webhooks/meetstream[/{session_id}/{token}]."""

from __future__ import annotations

import binascii
from typing import Any

from meetpilot.app.ingest import ingest_webhook
from meetpilot.composition import container
from meetpilot.handlers.apigw import json_response, request_from_event
from meetpilot.handlers.observability import count, count_by, instrumented, logger


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except (binascii.Error, ValueError):
        logger.warning("webhook rejected", extra={"reason": "bad_base64"})
        count_by("WebhooksRejected", "reason", "bad_base64")
        return json_response(400, {"message": "body is not valid base64"})
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
    return json_response(result.status, result.body)
