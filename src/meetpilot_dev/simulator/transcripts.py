"""Deterministic transcripts: the same bot id always gives the same segments, generated lazily and
encoded piece by piece, so even a transcript of tens of megabytes never sits whole in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from random import Random
from typing import Any

from meetpilot_dev.simulator.config import TranscriptEnvelope

_SPEAKERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra")
_VOCABULARY = (
    "we", "should", "ship", "the", "release", "on", "friday", "after", "review", "budget", "numbers",
    "look", "good", "customer", "asked", "about", "latency", "dashboard", "let's", "schedule", "a",
    "follow-up", "next", "week", "I", "think", "that", "works", "for", "me", "migration", "plan",
    "is", "ready", "tests", "pass", "deploy", "staging", "first", "agreed", "action", "items",
    "owner", "deadline", "meeting", "notes", "calendar", "invite", "transcript", "quarter",
)  # fmt: skip


def transcript_segments(bot_id: str, count: int, started_at: datetime) -> Iterator[dict[str, Any]]:
    """Yield ``count`` processed-transcript segments for ``bot_id``, in MeetStream's segment shape."""
    rng = Random(f"meetstream-simulator-transcript:{bot_id}")
    speakers = rng.sample(_SPEAKERS, k=rng.randint(2, 4))
    clock = 0.0
    for _ in range(count):
        speaker = rng.randrange(len(speakers))
        words: list[dict[str, Any]] = []
        cursor = clock
        length = rng.randint(6, 18)
        for position in range(length):
            word = rng.choice(_VOCABULARY)
            shown = word.capitalize() if position == 0 else word
            if position == length - 1:
                shown += rng.choice((".", ".", "?", "!"))
            duration = rng.uniform(0.15, 0.6)
            words.append(
                {
                    "word": word.lower(),
                    "punctuated_word": shown,
                    "start": round(cursor, 3),
                    "end": round(cursor + duration, 3),
                    "confidence": round(rng.uniform(0.8, 1.0), 4),
                    "speaker": speaker,
                    "speaker_confidence": round(rng.uniform(0.6, 1.0), 4),
                }
            )
            cursor += duration + rng.uniform(0.0, 0.1)
        start, end = words[0]["start"], words[-1]["end"]
        yield {
            "speaker": speakers[speaker],
            "transcript": " ".join(w["punctuated_word"] for w in words),
            "start_time": start,
            "end_time": end,
            "absolute_start_time": (started_at + timedelta(seconds=start)).isoformat(),
            "absolute_end_time": (started_at + timedelta(seconds=end)).isoformat(),
            "words": words,
        }
        clock = cursor + rng.uniform(0.3, 2.0)


def encode_transcript(
    segments: Iterator[dict[str, Any]], envelope: TranscriptEnvelope, *, chunk_size: int = 64 * 1024
) -> Iterator[bytes]:
    """Encode segments as a JSON document in pieces of about ``chunk_size`` bytes."""
    opening = {"array": "[", "transcript": '{"transcript": [', "message": '{"message": ['}[envelope]
    closing = "]" if envelope == "array" else "]}"
    buffer: list[str] = [opening]
    size = len(opening)
    separator = ""
    for segment in segments:
        text = separator + json.dumps(segment, separators=(",", ":"))
        separator = ","
        buffer.append(text)
        size += len(text)
        if size >= chunk_size:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    buffer.append(closing)
    yield "".join(buffer).encode()
