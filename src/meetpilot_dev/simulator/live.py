"""Live transcription deliveries, for bots created with ``live_transcription_required``.

While a bot records, each segment of its (deterministic) transcript is posted to the live webhook
URL: an interim result first (``is_final: false``, part of the words), then the final one
(``is_final: true``, ``end_of_turn: true``). Fields follow MeetStream's live payload: ``bot_id``,
``speakerName``, ``timestamp``, ``transcript``, ``new_text``, ``words``, ``is_final``,
``end_of_turn``, ``transcription_mode``, ``custom_attributes``. Unsigned, like the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from meetpilot_dev.simulator.transcripts import transcript_segments


@dataclass(frozen=True)
class LiveDelivery:
    after: float  # simulated seconds after recording started
    payload: dict[str, Any]


def live_webhook_url(request_payload: dict[str, Any]) -> str | None:
    live = request_payload.get("live_transcription_required")
    url = live.get("webhook_url") if isinstance(live, dict) else None
    return url if isinstance(url, str) and url else None


def live_plan(
    bot_id: str,
    *,
    segments: int,
    started_at: datetime,
    meeting_seconds: float,
    custom_attributes: Any,
    interim: bool = True,
) -> list[LiveDelivery]:
    """The deliveries of one bot's meeting, spread over its first ``meeting_seconds``."""
    plan: list[LiveDelivery] = []
    if segments <= 0:
        return plan
    gap = meeting_seconds / (segments + 1)
    for index, segment in enumerate(transcript_segments(bot_id, segments, started_at)):
        spoken = started_at + timedelta(seconds=segment["start_time"])
        base = {
            "bot_id": bot_id,
            "speakerName": segment["speaker"],
            "timestamp": spoken.isoformat(),
            "transcription_mode": "sentence",
            "custom_attributes": custom_attributes,
        }
        words = [
            {
                "word": w["word"],
                "punctuated_word": w["punctuated_word"],
                "start": w["start"],
                "end": w["end"],
                "confidence": w["confidence"],
                "speaker": w["speaker"],
            }
            for w in segment["words"]
        ]
        when = gap * (index + 1)
        if interim:
            half = words[: max(1, len(words) // 2)]
            partial = " ".join(w["punctuated_word"] for w in half)
            result: dict[str, Any] = {"transcript": partial, "new_text": partial, "words": half}
            result.update(is_final=False, end_of_turn=False)
            plan.append(LiveDelivery(when - gap / 4, {**base, **result}))
        text = segment["transcript"]
        final = {"transcript": text, "new_text": text, "words": words, "is_final": True, "end_of_turn": True}
        plan.append(LiveDelivery(when, {**base, **final}))
    return plan
