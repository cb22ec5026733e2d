"""Live transcription deliveries (``live_transcription_required.webhook_url``): which ones count,
how a repeat is recognised, and how the kept segments become a transcript.

MeetStream posts interim and final results many times a minute, unsigned. Only final results are
kept; a repeat is the same (bot id, timestamp, text), which the segment id encodes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.transcript import (
    MAX_TIME_SECONDS,
    UNKNOWN_SPEAKER,
    Turn,
    normalise_segment,
    speaker_label,
    writable,
)

MAX_TEXT_CHARS = 8_000  # one final result; longer is cut (the item must stay small)
MAX_WORDS = 300


@dataclass(frozen=True)
class LiveSegment:
    """One final live-transcript result, as kept under its session."""

    segment_id: str
    bot_id: str | None
    spoken_at: datetime  # the delivery's timestamp (or when it arrived, if it had none)
    speaker: str
    text: str
    start: float | None = None  # seconds, from the words' times when the provider sent them
    end: float | None = None
    words: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def as_provider_segment(self, origin: datetime) -> dict[str, Any]:
        """The post-call segment shape, so the usual normalisation renders it."""
        offset = max(0.0, (self.spoken_at - origin).total_seconds())
        start = self.start if self.start is not None else offset
        end = self.end if self.end is not None and self.end >= start else start
        return {
            "speaker": self.speaker,
            "transcript": self.text,
            "start_time": start,
            "end_time": end,
            "words": [dict(w) for w in self.words],
        }


class NotFinal(Exception):
    """An interim result: acknowledged, not kept."""


def segment_id(bot_id: str | None, timestamp: str, text: str) -> str:
    """The dedupe key the provider's docs suggest: (bot id, timestamp, text)."""
    return hashlib.sha256(f"{bot_id or ''}\x1f{timestamp}\x1f{text}".encode()).hexdigest()[:32]


def parse_live_delivery(payload: Mapping[str, Any], received_at: datetime) -> LiveSegment:
    """Read one delivery. Raises NotFinal for interim results, ValueError for unusable ones."""
    if not (payload.get("is_final") is True or payload.get("end_of_turn") is True):
        raise NotFinal()
    text = ""
    for key in ("new_text", "utterance", "transcript"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            text = writable(" ".join(value[: MAX_TEXT_CHARS * 2].split())[:MAX_TEXT_CHARS])
            break
    if not text:
        raise ValueError("final live transcript without text (new_text, utterance or transcript)")
    bot_id = payload.get("bot_id") if isinstance(payload.get("bot_id"), str) else None
    raw_ts = payload.get("timestamp")
    spoken_at = _timestamp(raw_ts) or received_at
    # Bounded here, at intake: the label travels in the segment item, the event and the summary.
    speaker = next(
        (speaker_label(v) for k in ("speakerName", "speaker") if isinstance(v := payload.get(k), str) and v.strip()),
        UNKNOWN_SPEAKER,
    )
    words = tuple(_words(payload.get("words")))
    starts = [w["start"] for w in words if "start" in w]
    ends = [w["end"] for w in words if "end" in w]
    return LiveSegment(
        segment_id=segment_id(bot_id, str(raw_ts) if raw_ts is not None else to_iso(received_at), text),
        bot_id=bot_id,
        spoken_at=spoken_at,
        speaker=speaker,
        text=text,
        start=float(min(starts)) if starts else None,
        end=float(max(ends)) if ends else None,
        words=words,
    )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds or seconds
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # 10**400 / 1000 overflows before fromtimestamp
            return None
    if isinstance(value, str) and value.strip():
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def _words(value: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(value, list):
        return
    for item in value[:MAX_WORDS]:
        if not isinstance(item, Mapping):
            continue
        word = item.get("punctuated_word") or item.get("word")
        if not isinstance(word, str) or not word.strip():
            continue
        kept: dict[str, Any] = {"punctuated_word": writable(word.strip()[:100])}
        for key in ("start", "end", "confidence"):
            number = item.get(key)
            # A time no recording has (10**400, 1e300) is left out, never turned into an overflow.
            if isinstance(number, int | float) and not isinstance(number, bool) and abs(number) <= MAX_TIME_SECONDS:
                kept[key] = float(number)
        yield kept


def live_turns(segments: Iterable[LiveSegment]) -> Iterator[Turn]:
    """Turns in the order the segments come (the store yields them oldest first)."""
    origin: datetime | None = None
    for segment in segments:
        if origin is None:
            origin = segment.spoken_at
        yield normalise_segment(segment.as_provider_segment(origin))
