"""Applying bot events as a use case, on the in-memory ports: dedupe, forward-only status, one
transcript job, and a lost race with another writer retried rather than lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetpilot.app.bot_events import ApplyOutcome, apply_delivery
from meetpilot.app.messages import BotEventDelivery
from meetpilot.domain.clock import FixedClock, to_iso
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus
from meetpilot_dev.fakes.aws import MemoryQueue
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
BOT = "bot-7"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def repo(clock: FixedClock) -> MemoryRepository:
    repo = MemoryRepository()
    session = Session(
        session_id="sess-1",
        meeting_key="https://zoom.us/j/1|2030-03-04T09:00Z",
        transcript_mode=TranscriptMode.POST_CALL,
        bot_id=BOT,
        transcript_id="tr-7",
        status=BotStatus.SCHEDULED,
    )
    assert repo.create_session(session, clock.now())
    return repo


def _delivery(event: str, *, second: int = 0, session_id: str | None = "sess-1", **extra: Any) -> BotEventDelivery:
    body = {
        "event": event,
        "bot_event": event,
        "bot_id": BOT,
        "status_code": 200,
        "timestamp": to_iso(T0 + timedelta(seconds=second)),
        "message": event,
        **extra,
    }
    return BotEventDelivery(body=json.dumps(body), session_id=session_id)


def _apply(message: BotEventDelivery, repo: MemoryRepository, queue: MemoryQueue, clock: FixedClock):
    return apply_delivery(message, repo=repo, transcript_queue=queue, clock=clock)


def test_an_event_moves_the_session_forward_and_its_duplicate_is_a_noop(repo, clock) -> None:
    queue = MemoryQueue()
    first = _apply(_delivery("bot.inmeeting", second=10), repo, queue, clock)
    again = _apply(_delivery("bot.inmeeting", second=10), repo, queue, clock)

    assert first.outcome is ApplyOutcome.APPLIED and first.status_changed
    assert again.outcome is ApplyOutcome.DUPLICATE
    session = repo.get_session("sess-1")
    assert session is not None and session.status is BotStatus.IN_MEETING
    assert len(session.history) == 1


def test_a_late_event_never_moves_the_session_back(repo, clock) -> None:
    queue = MemoryQueue()
    _apply(_delivery("bot.inmeeting", second=20), repo, queue, clock)
    late = _apply(_delivery("bot.joining", second=5), repo, queue, clock)

    assert not late.status_changed
    session = repo.get_session("sess-1")
    assert session is not None and session.status is BotStatus.IN_MEETING


def test_transcript_ready_sends_exactly_one_transcript_job(repo, clock) -> None:
    queue = MemoryQueue()
    for second, event in enumerate(["bot.inmeeting", "bot.stopped", "transcription.processed", "bot.done"]):
        _apply(_delivery(event, second=second), repo, queue, clock)
    _apply(_delivery("transcription.processed", second=2), repo, queue, clock)  # a duplicate delivery

    jobs = queue.bodies()
    assert [job["session_id"] for job in jobs] == ["sess-1"]
    session = repo.get_session("sess-1")
    assert session is not None and session.transcript_state is TranscriptState.QUEUED
    assert not session.transcript_job_pending


def test_a_workspace_delivery_finds_its_session_by_bot(repo, clock) -> None:
    result = _apply(_delivery("bot.inmeeting", session_id=None), repo, MemoryQueue(), clock)
    assert result.outcome is ApplyOutcome.APPLIED and result.session_id == "sess-1"


def test_an_event_for_no_known_session_is_reported_not_raised(repo, clock) -> None:
    result = _apply(_delivery("bot.inmeeting", session_id="sess-unknown"), repo, MemoryQueue(), clock)
    assert result.outcome is ApplyOutcome.UNKNOWN_SESSION


class _RacingRepository(MemoryRepository):
    """Another writer saves the session between this writer's read and its write, once."""

    raced = False

    def save_session(self, session: Session, now: datetime) -> Session:
        if not self.raced:
            self.raced = True
            other = super().get_session(session.session_id)
            assert other is not None
            other.unknown_events += 1  # any change: it moves the stored version on
            super().save_session(other, now)
        return super().save_session(session, now)


def test_a_write_that_lost_a_race_is_applied_again_on_the_fresh_session(clock) -> None:
    repo = _RacingRepository()
    repo.create_session(
        Session(
            session_id="sess-1", meeting_key="k|2030-03-04T09:00Z", transcript_mode=TranscriptMode.POST_CALL, bot_id=BOT
        ),
        clock.now(),
    )
    result = _apply(_delivery("bot.inmeeting"), repo, MemoryQueue(), clock)

    assert repo.raced and result.outcome is ApplyOutcome.APPLIED
    session = repo.get_session("sess-1")
    assert session is not None
    assert session.status is BotStatus.IN_MEETING and session.unknown_events == 1  # both writes kept
    assert session.version == 2
