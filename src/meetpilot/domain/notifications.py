"""The events meetpilot tells downstream consumers about, as plain data (see docs/events.md).

They are derived from the table's stream (``app.stream_events``): the old and new image of a write
say what changed, so an event is never announced for a change that was not stored, and every
stored change is announced at least once. Each id is a function of the change alone (the session's
version, the calendar's disconnect time, the segment's id), so a redelivered stream record gives
the same ``event_id`` and consumers can drop repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from meetpilot.domain.clock import to_iso
from meetpilot.domain.status import BotStatus, Outcome

SOURCE = "meetpilot"
SESSION_STATUS_CHANGED = "SessionStatusChanged"
TRANSCRIPT_READY = "TranscriptReady"
LIVE_TRANSCRIPT_SEGMENT = "LiveTranscriptSegment"
CALENDAR_DISCONNECTED = "CalendarDisconnected"
DETAIL_TYPES = (SESSION_STATUS_CHANGED, TRANSCRIPT_READY, LIVE_TRANSCRIPT_SEGMENT, CALENDAR_DISCONNECTED)
SCHEMA_VERSION = "1"


def _event_id(*parts: object) -> str:
    """Deterministic: the same change always gets the same id, whoever records it again."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def event_entry(detail_type: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """One event to publish: ``{"detail_type", "detail"}``; the detail has its id."""
    return {"detail_type": detail_type, "detail": dict(detail)}


def status_changed(
    *,
    session_id: str,
    meeting_key: str,
    bot_id: str | None,
    old_status: BotStatus,
    new_status: BotStatus,
    old_outcome: Outcome | None,
    new_outcome: Outcome | None,
    outcome_reason: str | None,
    version: int,
    at: datetime,
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": _event_id(SESSION_STATUS_CHANGED, session_id, version, new_status, new_outcome),
        "session_id": session_id,
        "bot_id": bot_id,
        "meeting_key": meeting_key,
        "old_status": old_status.value,
        "new_status": new_status.value,
        "old_outcome": old_outcome.value if old_outcome else None,
        "outcome": new_outcome.value if new_outcome else None,
        "outcome_reason": outcome_reason,
        "needs_review": bool(new_outcome and new_outcome.needs_review and new_outcome != old_outcome),
        "sequence": version,
        "at": to_iso(at),
    }
    return event_entry(SESSION_STATUS_CHANGED, detail)


def transcript_ready(
    *,
    session_id: str,
    meeting_key: str,
    bot_id: str | None,
    transcript: Mapping[str, Any],
    outcome: Outcome | None,
    at: datetime,
) -> dict[str, Any]:
    """From the figures a session keeps once a transcript is in S3 (``Session.transcript``)."""
    keys = {k: v for k, v in dict(transcript.get("keys") or {}).items() if isinstance(v, str)}
    source = str(transcript.get("source") or "post_call")
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": _event_id(TRANSCRIPT_READY, session_id, source, keys.get("json", "")),
        "session_id": session_id,
        "bot_id": bot_id,
        "meeting_key": meeting_key,
        "bucket": str(transcript.get("bucket") or ""),
        "keys": keys,
        "word_count": int(transcript.get("words") or 0),
        "turns": int(transcript.get("turns") or 0),
        "speaker_count": int(transcript.get("speaker_count") or 0),
        "duration_seconds": float(transcript.get("duration_seconds") or 0.0),
        "source": source,
        "partial": bool(transcript.get("partial", False)),
        "outcome": outcome.value if outcome else None,
        "at": to_iso(at),
    }
    return event_entry(TRANSCRIPT_READY, detail)


def live_segment(
    *,
    session_id: str,
    meeting_key: str,
    bot_id: str | None,
    segment_id: str,
    speaker: str,
    text: str,
    start: float | None,
    end: float | None,
    spoken_at: datetime,
    at: datetime,
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": _event_id(LIVE_TRANSCRIPT_SEGMENT, session_id, segment_id),
        "session_id": session_id,
        "bot_id": bot_id,
        "meeting_key": meeting_key,
        "segment_id": segment_id,
        "speaker": speaker,
        "text": text,
        "start_seconds": start,
        "end_seconds": end,
        "spoken_at": to_iso(spoken_at),
        "at": to_iso(at),
    }
    return event_entry(LIVE_TRANSCRIPT_SEGMENT, detail)


def calendar_disconnected(
    *, calendar_id: str, user_id: str, provider: str, reason: str, disconnected_at: datetime
) -> dict[str, Any]:
    """A calendar's grant stopped working; ``reason`` is the one line stored on the calendar (never a token)."""
    at = to_iso(disconnected_at)
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": _event_id(CALENDAR_DISCONNECTED, calendar_id, at),
        "calendar_id": calendar_id,
        "user_id": user_id,
        "provider": provider,
        "reason": reason[:500],
        "disconnected_at": at,
    }
    return event_entry(CALENDAR_DISCONNECTED, detail)
