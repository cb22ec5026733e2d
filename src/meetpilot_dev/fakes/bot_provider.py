"""An in-memory meeting-bot provider behind ``app.ports.BotProvider``, for use-case tests.

It keeps the provider's promises the use cases rely on: an ``Idempotency-Key`` seen before answers
with the bot it made (``replayed``), a transcript is not ready (TranscriptNotReady) until a test
says it is, and a test can queue failures for the next calls. The MeetStream simulator
(``meetpilot_dev.simulator``) is the faithful HTTP one; this one needs no server.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from meetpilot.app.ports import BotRequest, CreatedBot
from meetpilot.domain.clock import to_iso
from meetpilot.errors import ProviderNotFound, TranscriptNotReady


@dataclass
class FakeBot:
    bot_id: str
    request: BotRequest
    transcript_id: str
    status: str = "Scheduled"
    timeline: dict[str, dict[str, Any]] = field(default_factory=dict)  # detail's StatusTimeline
    join_at: datetime | None = None
    removed: bool = False


class MemoryBotProvider:
    def __init__(self) -> None:
        self.bots: dict[str, FakeBot] = {}
        self.transcripts: dict[str, bytes] = {}  # transcript id -> processed body, once ready
        self.calls: list[tuple[str, str]] = []  # (operation, bot or transcript id)
        # Exceptions raised by the next calls of an operation, in order ("create_bot": [...]).
        self.failures: dict[str, list[Exception]] = {}
        self._by_key: dict[str, str] = {}
        self._ids = itertools.count(1)

    def _fail_if_asked(self, operation: str) -> None:
        queued = self.failures.get(operation)
        if queued:
            raise queued.pop(0)

    def _bot(self, bot_id: str) -> FakeBot:
        if bot_id not in self.bots:
            raise ProviderNotFound(f"no bot {bot_id}")
        return self.bots[bot_id]

    def create_bot(self, request: BotRequest, *, idempotency_key: str) -> CreatedBot:
        self.calls.append(("create_bot", idempotency_key))
        self._fail_if_asked("create_bot")
        known = self._by_key.get(idempotency_key)
        if known is not None:
            bot = self.bots[known]
            return CreatedBot(bot.bot_id, bot.transcript_id, bot.status, replayed=True)
        n = next(self._ids)
        bot = FakeBot(f"bot-{n}", request, f"tr-{n}", join_at=request.join_at)
        self.bots[bot.bot_id] = bot
        self._by_key[idempotency_key] = bot.bot_id
        return CreatedBot(bot.bot_id, bot.transcript_id, bot.status)

    def bot_status(self, bot_id: str) -> str | None:
        self._fail_if_asked("bot_status")
        return self._bot(bot_id).status

    def bot_detail(self, bot_id: str) -> Mapping[str, Any]:
        self.calls.append(("bot_detail", bot_id))
        self._fail_if_asked("bot_detail")
        bot = self._bot(bot_id)
        return {"bot_id": bot_id, "status": bot.status, "StatusTimeline": dict(bot.timeline)}

    def find_transcript_id(self, bot_id: str) -> str | None:
        self._fail_if_asked("find_transcript_id")
        return self._bot(bot_id).transcript_id

    def remove_bot(self, bot_id: str) -> None:
        self.calls.append(("remove_bot", bot_id))
        self._bot(bot_id).removed = True

    def reschedule_bot(self, bot_id: str, join_at: datetime) -> None:
        self.calls.append(("reschedule_bot", bot_id))
        self._bot(bot_id).join_at = join_at

    def cancel_scheduled_bot(self, bot_id: str) -> None:
        self.calls.append(("cancel_scheduled_bot", bot_id))
        self._bot(bot_id).removed = True

    def delete_bot_data(self, bot_id: str) -> int:
        self.calls.append(("delete_bot_data", bot_id))
        bot = self._bot(bot_id)
        return 1 if self.transcripts.pop(bot.transcript_id, None) is not None else 0

    def download_transcript(self, transcript_id: str, sink: BinaryIO) -> int:
        self.calls.append(("download_transcript", transcript_id))
        self._fail_if_asked("download_transcript")
        body = self.transcripts.get(transcript_id)
        if body is None:
            raise TranscriptNotReady(f"transcript {transcript_id} is still processing", status=202)
        sink.write(body)
        return len(body)

    # --- what a test makes happen at the provider ---------------------------------------------

    def reach(self, bot_id: str, step: str, *, at: datetime, message: str = "") -> None:
        """Record a StatusTimeline step (``InMeeting``, ``Stopped``, ``Done``...) as the detail shows it."""
        self._bot(bot_id).timeline[step] = {"status": True, "timestamp": to_iso(at), "message": message or step}
        self._bot(bot_id).status = step

    def finish_transcript(self, transcript_id: str, body: bytes) -> None:
        self.transcripts[transcript_id] = body
