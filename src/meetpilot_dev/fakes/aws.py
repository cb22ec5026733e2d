"""In-memory stand-ins for the AWS-backed ports: queues, dispatch schedules, the transcript bucket
and the event bus. Each keeps what it was given, for a use-case test to read back.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from meetpilot.domain.dispatch_plan import CapacityPlan, SlotGrid


@dataclass(frozen=True)
class SentMessage:
    body: dict[str, Any]
    delay_seconds: int
    message_id: str


class MemoryQueue:
    """``app.ports.MessageQueue``: messages are JSON-encoded on send, as SQS would carry them."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self._lock = threading.Lock()

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> str:
        if not 0 <= delay_seconds <= 900:
            raise ValueError(f"SQS delays are 0-900 s, got {delay_seconds}")
        message = SentMessage(json.loads(json.dumps(body)), delay_seconds, uuid.uuid4().hex)
        with self._lock:
            self.sent.append(message)
        return message.message_id

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.body for m in self.sent]


class MemoryDispatchScheduler:
    """``app.ports.DispatchScheduler``: one schedule per meeting, moved when scheduled again."""

    def __init__(self, create_rate_per_second: float | None = None) -> None:
        self.schedules: dict[str, datetime] = {}  # meeting key -> when
        self.plan = CapacityPlan(SlotGrid.for_rate(create_rate_per_second)) if create_rate_per_second else None

    def schedule(self, meeting_key: str, at: datetime) -> str:
        self.schedules[meeting_key] = at
        return "mtg-" + hashlib.sha256(meeting_key.encode()).hexdigest()[:48]

    def unschedule(self, meeting_key: str) -> bool:
        return self.schedules.pop(meeting_key, None) is not None

    def claim_slot(self, *, latest: datetime, earliest: datetime) -> datetime | None:
        return latest if self.plan is None else self.plan.claim(latest=latest, earliest=earliest)

    def release_slot(self, at: datetime) -> None:
        if self.plan is not None:
            self.plan.release(at)


@dataclass
class StoredObject:
    body: bytes
    content_type: str
    content_encoding: str | None


class MemoryTranscriptStore:
    """``app.ports.TranscriptStore``: objects by key, their bytes read from the uploaded file."""

    def __init__(self, bucket: str = "transcripts") -> None:
        self.bucket = bucket
        self.objects: dict[str, StoredObject] = {}

    def put_file(self, key: str, path: str, *, content_type: str, content_encoding: str | None = None) -> None:
        self.objects[key] = StoredObject(Path(path).read_bytes(), content_type, content_encoding)

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.objects if key.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)


@dataclass
class MemoryEventBus:
    """``app.ports.EventPublisher``: accepts every entry (or none while ``down``) and keeps it."""

    published: list[Mapping[str, Any]] = field(default_factory=list)
    down: bool = False

    def publish(self, entries: Sequence[Mapping[str, Any]]) -> set[str]:
        if self.down:
            raise ConnectionError("event bus unreachable")
        self.published.extend(entries)
        return {str(entry["detail"]["event_id"]) for entry in entries}


@dataclass(frozen=True)
class MemorySecrets:
    """``app.ports.Secrets`` with fixed values (test values, never real ones)."""

    api: str = "test-api-key"
    tokens: tuple[str, ...] = ("test-token-secret",)
    signing: tuple[str, ...] = ("test-signing-secret",)

    def api_key(self) -> str:
        return self.api

    def token_secrets(self) -> tuple[str, ...]:
        return self.tokens

    def signing_secrets(self) -> tuple[str, ...]:
        return self.signing
