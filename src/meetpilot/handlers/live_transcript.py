"""HTTP API entry point for MeetStream live transcription: POST
/webhooks/meetstream/live/{session_id}/{token}. Many deliveries a minute, so it answers directly
from one DynamoDB write (the segment, deduplicated) instead of going through a queue.

Longer than 40 lines: each way a live delivery ends (rejected, stored, duplicate, interim) has its
own metric, and interim results are too many to log. Its event comes from the table's stream.
"""

from __future__ import annotations

import binascii
from typing import Any

from meetpilot.app.live_transcripts import receive_live_transcript
from meetpilot.composition import container
from meetpilot.handlers.apigw import json_response, request_from_event
from meetpilot.handlers.observability import correlated, count, count_by, instrumented, logger

_COUNTED = {"accepted": "LiveSegmentsStored", "duplicate": "LiveDuplicatesIgnored", "interim": "LiveInterimIgnored"}


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except (binascii.Error, ValueError):
        count_by("WebhooksRejected", "reason", "bad_base64")
        return json_response(400, {"message": "body is not valid base64"})
    c = container()
    with correlated(session_id=request.session_id):
        result = receive_live_transcript(
            request,
            secrets=c.secrets,
            repo=c.repository,
            segments=c.live_segments,
            clock=c.clock,
        )
        if result.status != 200:
            count_by("WebhooksRejected", "reason", f"live_{result.reason}")
            logger.warning("live transcript rejected", extra={"status": result.status, "reason": result.reason})
            return json_response(result.status, result.body)
        count(_COUNTED.get(result.reason, "LiveSegmentsStored"))
        if result.reason != "interim":  # interim results are too many to log one by one
            session = result.session
            logger.debug(
                "live transcript",
                extra={
                    "reason": result.reason,
                    "bot_id": session.bot_id if session else None,
                    "meeting_key": session.meeting_key if session else None,
                },
            )
        return json_response(result.status, result.body)
