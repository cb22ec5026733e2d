"""Fetching a transcript as a use case, on the in-memory ports: stored once under a predictable key,
202 asks for a retry, and a job for a stored transcript changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.messages import TranscriptJob
from meetpilot.app.transcripts import FetchOutcome, fetch_transcript
from meetpilot.domain.clock import FixedClock, parse_iso
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot_dev.fakes.aws import MemoryTranscriptStore
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
BOT = "bot-7"
SEGMENTS = [
    {"speaker": "Ada", "transcript": "Shall we start?", "start_time": 0.0, "end_time": 1.5},
    {"speaker": "Grace", "transcript": "Yes, the numbers are in.", "start_time": 1.6, "end_time": 3.2},
]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def repo(clock: FixedClock) -> MemoryRepository:
    repo = MemoryRepository()
    repo.create_session(
        Session(
            session_id="sess-1",
            meeting_key="https://zoom.us/j/1|2030-03-04T09:00Z",
            transcript_mode=TranscriptMode.POST_CALL,
            bot_id=BOT,
            transcript_id="tr-7",
            status=BotStatus.DONE,
            transcript_state=TranscriptState.QUEUED,
        ),
        clock.now(),
    )
    return repo


def _fetch(repo, provider, store, clock, tmp_path, attempt: int = 0):
    return fetch_transcript(
        TranscriptJob(session_id="sess-1", attempt=attempt, first_attempt_at=parse_iso("2030-03-04T10:00:00.000Z")),
        repo=repo,
        provider=provider,
        store=store,
        clock=clock,
        spool_dir=str(tmp_path),
    )


def test_a_ready_transcript_is_stored_under_its_meeting_day_and_bot(repo, clock, tmp_path) -> None:
    provider, store = MemoryBotProvider(), MemoryTranscriptStore()
    provider.finish_transcript("tr-7", json.dumps(SEGMENTS).encode())

    result = _fetch(repo, provider, store, clock, tmp_path)

    assert result.outcome is FetchOutcome.STORED
    prefix = f"transcripts/2030/03/04/{BOT}/"  # the meeting's day, then the bot
    assert sorted(store.objects) == [
        prefix + name for name in ("raw.json.gz", "transcript.json", "transcript.txt", "transcript.vtt")
    ]
    assert b"Shall we start?" in store.objects[prefix + "transcript.txt"].body
    session = repo.get_session("sess-1")
    assert session is not None
    assert session.transcript_state is TranscriptState.STORED and session.outcome is Outcome.TRANSCRIPT_STORED
    assert session.transcript["turns"] == 2 and session.transcript["speakers"] == ["Ada", "Grace"]


def test_a_transcript_still_processing_asks_for_a_retry_later(repo, clock, tmp_path) -> None:
    provider, store = MemoryBotProvider(), MemoryTranscriptStore()

    result = _fetch(repo, provider, store, clock, tmp_path)

    assert result.outcome is FetchOutcome.RETRY and result.retry_in and result.retry_in > 0
    assert result.next_job is not None and result.next_job.attempt == 1
    assert store.objects == {}
    session = repo.get_session("sess-1")
    assert session is not None and session.outcome is None


def test_a_job_for_a_stored_transcript_downloads_nothing(repo, clock, tmp_path) -> None:
    provider, store = MemoryBotProvider(), MemoryTranscriptStore()
    provider.finish_transcript("tr-7", json.dumps(SEGMENTS).encode())
    _fetch(repo, provider, store, clock, tmp_path)
    downloads = [c for c in provider.calls if c[0] == "download_transcript"]

    again = _fetch(repo, provider, store, clock, tmp_path)

    assert again.outcome is FetchOutcome.ALREADY_STORED
    assert [c for c in provider.calls if c[0] == "download_transcript"] == downloads


def test_a_transcript_never_ready_gives_up_with_a_reason(repo, clock, tmp_path) -> None:
    provider, store = MemoryBotProvider(), MemoryTranscriptStore()
    clock.set(T0 + timedelta(hours=2))  # far past the not-ready budget since the first attempt

    result = _fetch(repo, provider, store, clock, tmp_path, attempt=30)

    assert result.outcome is FetchOutcome.GAVE_UP
    session = repo.get_session("sess-1")
    assert session is not None and session.outcome is Outcome.GAVE_UP and session.outcome_reason
