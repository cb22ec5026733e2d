"""Live transcripts: take in MeetStream's live deliveries, keep the final segments, and assemble
them into a stored transcript when no post-call one will come.

A delivery is answered 200 only once its segment is durable (a conditional write under the
session, which is also the dedupe). Interim results are acknowledged and dropped. The
``LiveTranscriptSegment`` event is derived from that write by the stream publisher
(``app.stream_events``): the segment item carries the session's meeting key and bot for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from meetpilot.app.ingest import MAX_BODY_BYTES, WebhookRequest
from meetpilot.app.ports import LiveSegmentStore, Secrets, Sessions, TranscriptStore
from meetpilot.domain.clock import Clock, to_iso
from meetpilot.domain.live_transcript import LiveSegment, NotFinal, live_turns, parse_live_delivery
from meetpilot.domain.session import Session
from meetpilot.domain.transcript import TranscriptSummary, TranscriptWriter
from meetpilot.domain.webhook_auth import verify_capability_token
from meetpilot.domain.webhook_json import read_json_object
from meetpilot.errors import InvalidEvent

SEGMENT_RETENTION = timedelta(days=14)  # the assembled transcript in S3 outlives them


@dataclass(frozen=True)
class LiveResult:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # accepted | interim | duplicate | bad_token | ... (logs and metrics)
    session: Session | None = None
    segment: LiveSegment | None = None


def _reject(status: int, reason: str, message: str) -> LiveResult:
    return LiveResult(status, {"message": message}, reason)


def receive_live_transcript(
    request: WebhookRequest,
    *,
    secrets: Secrets,
    repo: Sessions,
    segments: LiveSegmentStore,
    clock: Clock,
) -> LiveResult:
    if len(request.body) > MAX_BODY_BYTES:
        return _reject(413, "too_large", f"body is larger than {MAX_BODY_BYTES // 1024} KiB")
    session_id = request.session_id or ""
    if not verify_capability_token(secrets.token_secrets(), session_id, request.token or "", live=True):
        return _reject(401, "bad_token", "invalid live transcript token")
    try:
        payload = read_json_object(request.body)  # NaN, Infinity and 10**400 are a 400 here, not a 500 later
    except InvalidEvent as exc:
        return _reject(400, exc.reason, str(exc))
    now = clock.now()
    try:
        segment = parse_live_delivery(payload, now)
    except NotFinal:
        return LiveResult(200, {"received": True, "kept": False}, "interim")
    except ValueError as exc:
        return _reject(400, "no_text", str(exc))

    session = repo.get_session(session_id)
    if session is None:
        return _reject(404, "unknown_session", "no such session (it may have been forgotten)")
    if segment.bot_id and session.bot_id and segment.bot_id != session.bot_id:
        return _reject(409, "wrong_bot", "the delivery names another bot than this URL's session")
    try:
        new = segments.put_segment(
            session_id,
            segment,
            expires_at=int((now + SEGMENT_RETENTION).timestamp()),
            meeting_key=session.meeting_key,
            bot_id=session.bot_id,
            received_at=now,
        )
    except Exception:  # not durable: say so (MeetStream does not retry, but nothing is pretended)
        return _reject(503, "store_unavailable", "could not store the segment; try again")
    if not new:
        return LiveResult(200, {"received": True, "kept": False}, "duplicate", session, segment)

    return LiveResult(200, {"received": True, "kept": True}, "accepted", session, segment)


@dataclass(frozen=True)
class LiveTranscript:
    summary: TranscriptSummary
    figures: dict[str, Any]  # what goes into Session.transcript


def store_live_transcript(
    session: Session,
    segments: Iterable[LiveSegment],
    *,
    prefix: str,
    store: TranscriptStore,
    metadata: dict[str, Any],
    clock: Clock,
    spool_dir: str | None = None,
    partial: bool = False,
) -> LiveTranscript | None:
    """Render the kept segments as json, txt and vtt under ``prefix``; None when there are none.

    ``partial``: a post-call transcription failed and this is what the live stream caught.
    """
    keys = {fmt: f"{prefix}transcript.{fmt}" for fmt in ("json", "txt", "vtt")}
    with tempfile.TemporaryDirectory(prefix="meetpilot-live-", dir=spool_dir) as tmp:
        paths = {fmt: os.path.join(tmp, f"transcript.{fmt}") for fmt in keys}
        with (
            open(paths["json"], "wb") as jout,
            open(paths["txt"], "wb") as tout,
            open(paths["vtt"], "wb") as vout,
        ):
            writer = TranscriptWriter(jout, tout, vout, {**metadata, "source": "live", "partial": partial})
            for turn in live_turns(segments):
                writer.add(turn)
            summary = writer.close()
        if summary.turns == 0:
            return None
        types = {"json": "application/json", "txt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
        for fmt, path in paths.items():
            store.put_file(keys[fmt], path, content_type=types[fmt])
    figures: dict[str, Any] = {
        "bucket": store.bucket,
        "keys": keys,
        "turns": summary.turns,
        "words": summary.words,
        "speakers": summary.speakers[:50],
        "speaker_count": len(summary.speakers),
        "duration_seconds": round(summary.duration_seconds, 3),
        "stored_at": to_iso(clock.now()),
        "source": "live",
    }
    if partial:
        figures["partial"] = True
    return LiveTranscript(summary, figures)
