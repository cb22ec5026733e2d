"""Webhook event normalisation: every MeetStream payload generation becomes one ``BotEvent``.

MeetStream has sent three envelope shapes over time (``bot_status`` only, ``event`` only, ``event`` plus
``bot_event``); this module hides the differences so the rest of meetpilot sees one vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.status import BotStatus, EventKind, StopReason, TranscriptSignal
from meetpilot.domain.webhook_json import read_json_object
from meetpilot.errors import InvalidEvent

MESSAGE_LIMIT = 500  # characters of the provider's message kept on the event and in history
NAME_LIMIT = 100  # characters of an (unknown) event name kept; keeps a full history far below 400 KB

_STOPPED = "bot.stopped"  # the generic name MeetStream sends on every terminal event


@dataclass(frozen=True)
class _Spec:
    name: str
    kind: EventKind
    status: BotStatus | None = None
    stop_reason: StopReason | None = None
    transcript_signal: TranscriptSignal | None = None


def _squash(text: str) -> str:
    """A lookup key that ignores casing and separators: "InMeeting", "IN_MEETING", "in-meeting"."""
    return "".join(ch for ch in text.casefold() if ch not in "_- ")


_CATALOG_SPECS: tuple[_Spec, ...] = (
    _Spec("bot.scheduled", EventKind.LIFECYCLE, BotStatus.SCHEDULED),
    _Spec("bot.joining", EventKind.LIFECYCLE, BotStatus.JOINING),
    _Spec("bot.in_waiting_room", EventKind.LIFECYCLE, BotStatus.IN_WAITING_ROOM),
    _Spec("bot.inmeeting", EventKind.LIFECYCLE, BotStatus.IN_MEETING),
    # Zoom asks before recording; informational, the session's status does not change.
    _Spec("bot.recording_permission_allowed", EventKind.LIFECYCLE),
    _Spec("bot.recording_permission_denied", EventKind.LIFECYCLE),
    _Spec("bot.recording", EventKind.LIFECYCLE, BotStatus.RECORDING),
    # A streaming-provider hiccup while the bot stays in the call: never terminal.
    _Spec("bot.error", EventKind.ERROR),
    _Spec("bot.leaving", EventKind.LIFECYCLE, BotStatus.LEAVING),
    _Spec("bot.stopped", EventKind.TERMINAL, BotStatus.STOPPED, StopReason.STOPPED),
    _Spec("bot.kicked", EventKind.TERMINAL, BotStatus.STOPPED, StopReason.KICKED),
    _Spec("bot.notallowed", EventKind.TERMINAL, BotStatus.STOPPED, StopReason.NOT_ALLOWED),
    _Spec("bot.denied", EventKind.TERMINAL, BotStatus.STOPPED, StopReason.DENIED),
    _Spec("bot.failed", EventKind.TERMINAL, BotStatus.STOPPED, StopReason.FAILED),
    _Spec("bot.uploading", EventKind.POST_CALL),
    _Spec("manifest.completed", EventKind.POST_CALL),
    _Spec("manifest.skipped", EventKind.POST_CALL),
    _Spec("audio.processed", EventKind.POST_CALL),
    _Spec("audio.skipped", EventKind.POST_CALL),
    _Spec("video.processed", EventKind.POST_CALL),
    _Spec("transcription.processed", EventKind.POST_CALL, transcript_signal=TranscriptSignal.PROCESSED),
    _Spec("transcription.failed", EventKind.POST_CALL, transcript_signal=TranscriptSignal.FAILED),
    _Spec("transcription.skipped", EventKind.POST_CALL, transcript_signal=TranscriptSignal.SKIPPED),
    _Spec("bot.transcriptionready", EventKind.POST_CALL, transcript_signal=TranscriptSignal.PROCESSED),
    _Spec("bot.done", EventKind.DONE, BotStatus.DONE),
    _Spec("data_deletion", EventKind.DATA_DELETION),
    _Spec("participant_events.join", EventKind.PARTICIPANT),
    _Spec("participant_events.leave", EventKind.PARTICIPANT),
)

_CATALOG: dict[str, _Spec] = {_squash(spec.name): spec for spec in _CATALOG_SPECS}
_CATALOG[_squash("bot.waiting_room")] = _CATALOG[_squash("bot.in_waiting_room")]

# bot_status values (any casing) -> the event they stand for, for payloads without an event name.
_NAME_FOR_STATUS: dict[str, str] = {
    "scheduled": "bot.scheduled",
    "joining": "bot.joining",
    "inwaitingroom": "bot.in_waiting_room",
    "waitingroom": "bot.in_waiting_room",
    "inmeeting": "bot.inmeeting",
    "joined": "bot.inmeeting",
    "recording": "bot.recording",
    "leaving": "bot.leaving",
    "stopped": "bot.stopped",
    "kicked": "bot.kicked",
    "notallowed": "bot.notallowed",
    "denied": "bot.denied",
    "error": "bot.failed",
    "failed": "bot.failed",
    "done": "bot.done",
}

# On a terminal event without a specific bot_event, bot_status carries the reason.
_REASON_FOR_STATUS: dict[str, StopReason] = {
    "stopped": StopReason.STOPPED,
    "kicked": StopReason.KICKED,
    "notallowed": StopReason.NOT_ALLOWED,
    "denied": StopReason.DENIED,
    "error": StopReason.FAILED,
    "failed": StopReason.FAILED,
}

_PARTICIPANT_PREFIX = "participantevents."


@dataclass(frozen=True)
class BotEvent:
    """One webhook delivery, read the same way whichever envelope generation sent it."""

    name: str
    generic: str | None
    kind: EventKind
    status: BotStatus | None
    stop_reason: StopReason | None
    transcript_signal: TranscriptSignal | None
    bot_id: str | None
    timestamp: datetime | None
    status_code: int | None
    message: str | None
    custom_attributes: Mapping[str, Any] = field(hash=False)  # a dict: kept out of the hash
    dedupe_key: str

    def history_entry(self) -> dict[str, Any]:
        """What the session keeps about this event: small, JSON-able, no custom attributes.

        Fields without a value are left out: the entry is stored on every write of the session,
        whose size decides what each write costs.
        """
        entry = {
            "name": self.name,
            "status": None if self.status is None else self.status.value,
            "stop_reason": None if self.stop_reason is None else self.stop_reason.value,
            "transcript_signal": None if self.transcript_signal is None else self.transcript_signal.value,
            "timestamp": None if self.timestamp is None else to_iso(self.timestamp),
            "status_code": self.status_code,
            "message": self.message,
        }
        return {key: value for key, value in entry.items() if value is not None}


def normalise_event(payload: Mapping[str, Any]) -> BotEvent:
    """Read a webhook payload of any MeetStream generation.

    >>> normalise_event({"event": "bot.stopped", "bot_event": "bot.kicked", "bot_id": "b1"}).stop_reason
    <StopReason.KICKED: 'kicked'>

    Raises ``InvalidEvent`` only when the payload cannot be read at all; an unknown event name
    normalises to ``EventKind.UNKNOWN`` so it can be stored and counted.
    """
    if not isinstance(payload, Mapping):
        raise InvalidEvent(f"webhook payload must be a JSON object, got {type(payload).__name__}", reason="not_object")

    generic = _name_field(payload, "event")
    specific = _name_field(payload, "bot_event")
    bot_status = _text(payload.get("bot_status"))
    bot_id = _bot_id(payload)

    raw_name = specific or generic
    if raw_name is None:
        if bot_status is None:
            raise InvalidEvent("body has no event, bot_event or bot_status field to name it", reason="no_event")
        # The oldest callbacks carry only a status ("joining" with status_code 102, ...).
        squashed_status = _squash(bot_status)
        raw_name = _NAME_FOR_STATUS.get(squashed_status, f"bot.{squashed_status}")

    own = _lookup(raw_name)
    name = raw_name if own is None else own.name
    # A new specific name under a known generic one (bot_event "bot.timeout" under event
    # "bot.stopped") is still classified by the generic name.
    spec = own if own is not None or generic is None else _lookup(generic)

    is_terminal = (generic is not None and _squash(generic) == _squash(_STOPPED)) or (
        spec is not None and spec.kind is EventKind.TERMINAL
    )
    if is_terminal:
        kind = EventKind.TERMINAL
        status: BotStatus | None = BotStatus.STOPPED
        stop_reason: StopReason | None = _stop_reason(own, specific, bot_status)
        signal: TranscriptSignal | None = None
    elif spec is not None:
        kind, status, stop_reason, signal = spec.kind, spec.status, None, spec.transcript_signal
    elif _squash(name).startswith(_PARTICIPANT_PREFIX):
        kind, status, stop_reason, signal = EventKind.PARTICIPANT, None, None, None
    else:
        kind, status, stop_reason, signal = EventKind.UNKNOWN, None, None, None

    raw_timestamp = payload.get("timestamp")
    raw_message = payload.get("message")
    message = raw_message[:MESSAGE_LIMIT] if isinstance(raw_message, str) else None

    return BotEvent(
        name=name[:NAME_LIMIT],
        generic=generic[:NAME_LIMIT] if generic else generic,
        kind=kind,
        status=status,
        stop_reason=stop_reason,
        transcript_signal=signal,
        bot_id=bot_id,
        timestamp=_timestamp(raw_timestamp),
        status_code=_status_code(payload.get("status_code")),
        message=message,
        custom_attributes=_custom_attributes(payload.get("custom_attributes")),
        dedupe_key=_dedupe_key(payload, bot_id, kind),
    )


def read_event(body: bytes | str) -> BotEvent:
    """A raw webhook body as a ``BotEvent``: what the edge checks before it acknowledges a delivery
    and what the worker applies, so both refuse the same bodies.

    Raises ``InvalidEvent`` with a one-line reason (and a ``reason`` code) for a body that is not
    strict JSON, not an object, or has no readable name; an unknown event name is not an error.
    """
    return normalise_event(read_json_object(body))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {type(None): "null", list: "array", dict: "object", str: "string"}
    return names.get(type(value), type(value).__name__)


def _lookup(name: str) -> _Spec | None:
    return _CATALOG.get(_squash(name))


def _name_field(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"field '{key}' must be a string, got {_json_type(value)}", reason="bad_field")
    return value.strip() or None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _bot_id(payload: Mapping[str, Any]) -> str | None:
    # A JSON null counts as absent: the session is still found through its callback URL.
    value = payload.get("bot_id")
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidEvent("field 'bot_id' must be a non-empty string", reason="bad_field")
        return value
    # participant_events.* nest the bot under data.bot.id.
    data = payload.get("data")
    bot = data.get("bot") if isinstance(data, Mapping) else None
    nested = bot.get("id") if isinstance(bot, Mapping) else None
    return nested if isinstance(nested, str) and nested.strip() else None


def _stop_reason(own: _Spec | None, specific: str | None, bot_status: str | None) -> StopReason:
    # A specific terminal name ("bot.kicked", in bot_event or even in event) is the most precise
    # source; a plain "bot.stopped" in bot_event means just that. Older payloads put the reason only
    # in bot_status, whose casing varies ("FAILED", "Failed", "ERROR").
    if own is not None and own.stop_reason is not None and (own.name != _STOPPED or specific is not None):
        return own.stop_reason
    if bot_status is not None:
        return _REASON_FOR_STATUS.get(_squash(bot_status), StopReason.STOPPED)
    return StopReason.STOPPED


def _timestamp(value: Any) -> datetime | None:
    # A zone-less timestamp is ambiguous and parse_iso refuses it; history then shows none.
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _status_code(value: Any) -> int | None:
    # Only HTTP-like codes: an absurd number would not even fit in a DynamoDB number.
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        return None
    return value


def _custom_attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): item for key, item in value.items()}


def _raw(value: Any) -> str:
    """The delivered value as text, so the key depends on exactly what was sent."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _dedupe_key(payload: Mapping[str, Any], bot_id: str | None, kind: EventKind) -> str:
    parts = [
        _raw(bot_id),
        _raw(payload.get("event")),
        _raw(payload.get("bot_event")),
        _raw(payload.get("timestamp")),
    ]
    if not parts[3]:
        # Lifecycle events of the May 2026 generation and the oldest callbacks carry no timestamp;
        # the message and status tell apart events that would otherwise share a key.
        parts += [_raw(payload.get("message")), _raw(payload.get("bot_status"))]
    if kind is EventKind.PARTICIPANT:
        # Two people can join in the same second; the participant tells their events apart.
        parts.append(_raw(_participant_id(payload)))
    encoded = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    # 80 bits: collisions need ~2^40 events of one session, and the session keeps up to SEEN_CAP of
    # them on its item, where a full SHA-256 in hex would be 64 bytes each.
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:20]


def _participant_id(payload: Mapping[str, Any]) -> Any:
    data = payload.get("data")
    inner = data.get("data") if isinstance(data, Mapping) else None
    participant = inner.get("participant") if isinstance(inner, Mapping) else None
    return participant.get("id") if isinstance(participant, Mapping) else None
