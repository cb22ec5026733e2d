"""HTTP API entry point for Microsoft Graph notifications: POST /calendar/microsoft/notify and
POST /calendar/microsoft/lifecycle.

Kept small: Graph's validation handshake must be answered within 10 seconds of a cold start, so
the handshake is answered before the container (boto3, the table) is even built.
"""

from __future__ import annotations

from typing import Any

from meetpilot.app.graph_push import GraphAnswer, receive_graph_notification, validation_answer
from meetpilot.handlers.observability import logger


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    answer = validation_answer(query)
    if answer is None:
        from meetpilot.composition import container

        c = container()
        answer = receive_graph_notification(query, _body(event), repo=c.repository, queue=c.calendar_sync_queue)
    # Never the clientState or the validation token: only the outcome and the calendars.
    log = logger.info if answer.status < 400 else logger.warning
    log(
        "graph notification",
        extra={
            "status": answer.status,
            "reason": answer.reason,
            "calendar_ids": list(answer.calendar_ids),
            "rejected": answer.rejected,
            "lifecycle": answer.lifecycle,
            "path": event.get("rawPath"),
        },
    )
    return _response(answer)


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64
        import binascii

        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _response(answer: GraphAnswer) -> dict[str, Any]:
    if answer.text is not None:
        return {
            "statusCode": answer.status,
            "headers": {"content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff"},
            "body": answer.text,
        }
    import json

    return {
        "statusCode": answer.status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(answer.body, separators=(",", ":")),
    }
