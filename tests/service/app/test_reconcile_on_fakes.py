"""The reconciler as a use case, on the in-memory ports: a lost webhook's transitions come back from
the provider's detail, a lost dispatch is sent again, a bot the provider forgot is flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.ports import BotRequest
from meetpilot.app.reconcile import reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import Meeting
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus
from meetpilot_dev.fakes.aws import MemoryQueue
from meetpilot_dev.fakes.bot_provider import MemoryBotProvider
from meetpilot_dev.fakes.memory import MemoryRepository

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def _round(repo: MemoryRepository, provider: MemoryBotProvider, clock: FixedClock):
    dispatch_queue, transcript_queue = MemoryQueue(), MemoryQueue()
    report = reconcile(
        repo=repo, provider=provider, dispatch_queue=dispatch_queue, transcript_queue=transcript_queue, clock=clock
    )
    return report, dispatch_queue.bodies(), transcript_queue.bodies()


def _session_with_bot(repo: MemoryRepository, provider: MemoryBotProvider, clock: FixedClock) -> str:
    created = provider.create_bot(
        BotRequest("https://zoom.us/j/1", "Notetaker", "https://hooks.example.test/x", "k"), idempotency_key="i-1"
    )
    repo.create_session(
        Session(
            session_id="sess-1",
            meeting_key="https://zoom.us/j/1|2030-03-04T09:00Z",
            transcript_mode=TranscriptMode.POST_CALL,
            bot_id=created.bot_id,
            transcript_id=created.transcript_id,
            status=BotStatus.JOINING,
        ),
        clock.now(),
    )
    return created.bot_id


def test_a_lost_webhook_is_recovered_from_the_provider_detail(clock) -> None:
    repo, provider = MemoryRepository(), MemoryBotProvider()
    bot = _session_with_bot(repo, provider, clock)
    for minute, step in enumerate(["InMeeting", "Stopped", "TranscriptionReady", "Done"], start=1):
        provider.reach(bot, step, at=T0 + timedelta(minutes=minute))
    clock.set(T0 + timedelta(hours=1))  # past the JOINING deadline: the session is due for a look

    report, _, transcript_jobs = _round(repo, provider, clock)

    assert report.actions["transcript_requested"] == 1
    session = repo.get_session("sess-1")
    assert session is not None and session.status is BotStatus.DONE
    assert session.transcript_state is TranscriptState.QUEUED
    assert [job["session_id"] for job in transcript_jobs] == ["sess-1"]


def test_a_session_not_yet_due_is_left_alone(clock) -> None:
    repo, provider = MemoryRepository(), MemoryBotProvider()
    bot = _session_with_bot(repo, provider, clock)
    provider.reach(bot, "InMeeting", at=T0)

    report, _, _ = _round(repo, provider, clock)

    assert report.checked == 0 and ("bot_detail", bot) not in provider.calls


def test_a_meeting_whose_dispatch_was_lost_is_dispatched_again_once_per_recheck(clock) -> None:
    repo = MemoryRepository()
    meeting, _ = repo.add_meeting(Meeting.new("https://zoom.us/j/2", T0 + timedelta(hours=1), user_id="ana"), T0)
    clock.set(T0 + timedelta(hours=1))

    report, dispatches, _ = _round(repo, MemoryBotProvider(), clock)
    assert report.actions["meeting_redispatched"] == 1
    assert dispatches == [{"meeting_key": meeting.meeting_key, "attempt": 0, "source": "reconcile"}]

    _, again, _ = _round(repo, MemoryBotProvider(), clock)
    assert again == []  # postponed: the next look is a recheck period away


def test_a_bot_the_provider_does_not_know_is_flagged_for_review(clock) -> None:
    repo, provider = MemoryRepository(), MemoryBotProvider()
    bot = _session_with_bot(repo, provider, clock)
    del provider.bots[bot]
    clock.set(T0 + timedelta(hours=1))

    report, _, _ = _round(repo, provider, clock)

    assert report.actions["flagged"] == 1
    session = repo.get_session("sess-1")
    assert session is not None and session.needs_review and bot in (session.outcome_reason or "")
