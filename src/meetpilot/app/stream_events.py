"""Downstream events from the table's stream: each write's old and new image say what changed.

A session write that moves the status or the outcome gives ``SessionStatusChanged``; one that
stores a transcript (its ``json`` key appears or changes) gives ``TranscriptReady``; a newly stored
live segment gives ``LiveTranscriptSegment``; a calendar that gets a disconnect reason gives
``CalendarDisconnected``. Nothing else, deletes included (forgetting, TTL), announces anything.

Ids come from the change itself (the session's new version, the calendar's disconnect time, the
segment's id), so a redelivered record gives the same ``event_id`` and ``sequence``::

    changes = [StreamChange("1", "MODIFY", old_image, new_image)]
    outcome = publish_changes(changes, publisher)
    failures = outcome.failed_sequence_numbers  # -> the batch's ``batchItemFailures``
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meetpilot.app.ports import EventPublisher
from meetpilot.domain.clock import parse_iso
from meetpilot.domain.notifications import calendar_disconnected, live_segment, status_changed, transcript_ready
from meetpilot.domain.status import BotStatus, Outcome

PUBLISH_ATTEMPTS = 3  # one PutEvents and two retries of what it rejected, then the record is failed


@dataclass(frozen=True)
class StreamChange:
    """One stream record: its sequence number, INSERT/MODIFY/REMOVE and both images (plain attributes)."""

    sequence_number: str
    event_name: str
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None


def events_for(change: StreamChange) -> list[dict[str, Any]]:
    """The events one write announces, in the order they happened; a pure function of the images."""
    new = change.new
    if new is None:  # a delete: forgetting or TTL, never announced
        return []
    old = change.old or {}
    sort_key = str(new.get("sk") or "")
    kind = new.get("type")
    if kind == "session" or sort_key == "SESSION":
        return _session_events(old, new)
    if kind == "calendar" or sort_key.startswith("CAL#"):
        return _calendar_events(old, new)
    if (kind == "live_segment" or sort_key.startswith("LIVE#")) and change.old is None:
        return _live_segment_events(new)
    return []


def _transcript_json_key(image: Mapping[str, Any]) -> str | None:
    transcript = image.get("transcript")
    keys = transcript.get("keys") if isinstance(transcript, Mapping) else None
    key = keys.get("json") if isinstance(keys, Mapping) else None
    return key if isinstance(key, str) else None


def _outcome(value: Any) -> Outcome | None:
    return Outcome(value) if value else None


def _session_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    # A new session (no old image) starts pending without an outcome: it announces only where it
    # was created elsewhere than there.
    old_status = BotStatus(old.get("status") or BotStatus.PENDING.value)
    new_status = BotStatus(new.get("status") or BotStatus.PENDING.value)
    old_outcome, new_outcome = _outcome(old.get("outcome")), _outcome(new.get("outcome"))
    at = parse_iso(str(new["updated_at"]))
    session_id, meeting_key = str(new["session_id"]), str(new["meeting_key"])
    bot_id = new.get("bot_id") if isinstance(new.get("bot_id"), str) else None
    events: list[dict[str, Any]] = []
    if new_status is not old_status or new_outcome is not old_outcome:
        events.append(
            status_changed(
                session_id=session_id,
                meeting_key=meeting_key,
                bot_id=bot_id,
                old_status=old_status,
                new_status=new_status,
                old_outcome=old_outcome,
                new_outcome=new_outcome,
                outcome_reason=new.get("outcome_reason") if isinstance(new.get("outcome_reason"), str) else None,
                # The version this write gave the session: a redelivered record has the same one.
                version=max(1, int(new.get("version") or 0)),
                at=at,
            )
        )
    json_key = _transcript_json_key(new)
    if json_key is not None and json_key != _transcript_json_key(old):
        # A transcript (or, after a failed post-call transcription, the partial live one) landed.
        events.append(
            transcript_ready(
                session_id=session_id,
                meeting_key=meeting_key,
                bot_id=bot_id,
                transcript=dict(new["transcript"]),
                outcome=new_outcome,
                at=at,
            )
        )
    return events


def _calendar_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    reason, at = new.get("disconnected_reason"), new.get("disconnected_at")
    if not isinstance(reason, str) or not reason or not isinstance(at, str):
        return []
    if old.get("disconnected_reason") and old.get("disconnected_at") == at:
        return []  # still the same disconnect (another attribute changed)
    return [
        calendar_disconnected(
            calendar_id=str(new["calendar_id"]),
            user_id=str(new["user_id"]),
            provider=str(new["kind"]),
            reason=reason,
            disconnected_at=parse_iso(at),
        )
    ]


def _live_segment_events(new: Mapping[str, Any]) -> list[dict[str, Any]]:
    meeting_key = new.get("meeting_key")
    if not isinstance(meeting_key, str) or not meeting_key:
        return []  # stored without what its event needs (written before segments carried it)
    extra = json.loads(str(new.get("words") or "{}"))
    spoken_at = parse_iso(str(new["spoken_at"]))
    bot_id = new.get("segment_bot") or new.get("session_bot")
    return [
        live_segment(
            session_id=str(new.get("session_id") or str(new["pk"]).removeprefix("SESSION#")),
            meeting_key=meeting_key,
            bot_id=str(bot_id) if bot_id else None,
            segment_id=str(new["sk"]).rsplit("#", 1)[-1],
            speaker=str(new["speaker"]),
            text=str(new["text"]),
            start=extra.get("start"),
            end=extra.get("end"),
            spoken_at=spoken_at,
            at=parse_iso(str(new["received_at"])) if new.get("received_at") else spoken_at,
        )
    ]


@dataclass(frozen=True)
class PublishOutcome:
    """What one batch of stream records gave EventBridge."""

    published: list[dict[str, Any]] = field(default_factory=list)  # entries EventBridge accepted
    rejected: int = 0  # entries still not accepted after every attempt
    # The first record whose events did not all go out: Lambda checkpoints before it and hands it
    # (and everything after it) to the function again.
    failed_sequence_numbers: list[str] = field(default_factory=list)
    error: str | None = None  # why publishing failed, without any payload


def publish_changes(
    changes: Sequence[StreamChange],
    publisher: EventPublisher,
    *,
    attempts: int = PUBLISH_ATTEMPTS,
    pause: Callable[[int], None] = lambda attempt: None,
) -> PublishOutcome:
    """Publish the events of a batch of records in ``PutEvents`` calls of up to ten entries; retry
    the entries EventBridge rejects (``pause(attempt)`` between tries); report the first record
    that still has an unpublished event. Events of later records may go out before it: consumers
    order by ``sequence`` and drop repeats by ``event_id`` (docs/events.md)."""
    pending: list[tuple[int, dict[str, Any]]] = [
        (index, entry) for index, change in enumerate(changes) for entry in events_for(change)
    ]
    published: list[dict[str, Any]] = []
    error: str | None = None
    for attempt in range(max(1, attempts)):
        if not pending:
            break
        if attempt:
            pause(attempt)
        try:
            accepted = publisher.publish([entry for _, entry in pending])
        except Exception as exc:  # unreachable or throttled past botocore's own retries: try again
            accepted, error = set(), type(exc).__name__
        published.extend(entry for _, entry in pending if entry["detail"]["event_id"] in accepted)
        pending = [(index, entry) for index, entry in pending if entry["detail"]["event_id"] not in accepted]
    if not pending:
        return PublishOutcome(published)
    first = min(index for index, _ in pending)
    return PublishOutcome(
        published,
        rejected=len(pending),
        failed_sequence_numbers=[changes[first].sequence_number],
        error=error or "rejected by EventBridge",
    )
