"""Every session write records its downstream events in the same write (the outbox), and
publishing clears only what the bus accepted, never failing the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from meetpilot.app.sessions import publish_outbox, update_session
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.errors import ConcurrentUpdate


class Sessions:
    """Just the session part of the repository, with its optimistic concurrency."""

    def __init__(self, session: Session) -> None:
        self.stored = session
        self.writes = 0

    def get_session(self, session_id: str) -> Session | None:
        return replace(self.stored, outbox=list(self.stored.outbox), transcript=dict(self.stored.transcript))

    def save_session(self, session: Session, now: datetime) -> Session:
        if session.version != self.stored.version:
            raise ConcurrentUpdate("moved on")
        self.writes += 1
        session.version += 1
        self.stored = replace(session, outbox=list(session.outbox))
        return session


class Bus:
    def __init__(self, reject: set[str] | None = None, down: bool = False) -> None:
        self.reject = reject or set()
        self.down = down
        self.sent: list[Mapping[str, Any]] = []

    def publish(self, entries: Sequence[Mapping[str, Any]]) -> set[str]:
        if self.down:
            raise TimeoutError("unreachable")
        self.sent.extend(entries)
        return {e["detail"]["event_id"] for e in entries} - self.reject


CLOCK = FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))


def _repo() -> Sessions:
    return Sessions(Session("s1", "meet.google.com/abc@2026-05-04T10:00Z", TranscriptMode.POST_CALL, bot_id="b1"))


def _move(status: BotStatus, outcome: Outcome | None = None):  # type: ignore[no-untyped-def]
    def change(current: Session) -> Session:
        current.status = status  # edited in place, as several use cases do
        current.outcome = outcome
        return current

    return change


def test_a_status_change_is_written_with_its_event() -> None:
    repo = _repo()
    update_session(repo, "s1", _move(BotStatus.JOINING), CLOCK)  # type: ignore[arg-type]
    (entry,) = repo.stored.outbox
    assert entry["detail_type"] == "SessionStatusChanged"
    detail = entry["detail"]
    assert (detail["old_status"], detail["new_status"], detail["bot_id"]) == ("pending", "joining", "b1")
    assert detail["sequence"] == 1 and repo.writes == 1


def test_a_write_without_a_status_or_outcome_change_adds_no_event() -> None:
    repo = _repo()

    def bump(current: Session) -> Session:
        current.reconcile_attempts += 1
        return current

    update_session(repo, "s1", bump, CLOCK)  # type: ignore[arg-type]
    assert repo.stored.outbox == []


def test_a_stored_transcript_announces_itself_once() -> None:
    repo = _repo()

    def store(current: Session) -> Session:
        current.transcript_state = TranscriptState.STORED
        current.outcome = Outcome.TRANSCRIPT_STORED
        current.transcript = {"bucket": "b", "keys": {"json": "transcripts/x.json"}, "words": 9}
        return current

    update_session(repo, "s1", store, CLOCK)  # type: ignore[arg-type]
    update_session(repo, "s1", lambda s: s, CLOCK)  # type: ignore[arg-type]
    kinds = [e["detail_type"] for e in repo.stored.outbox]
    assert kinds == ["SessionStatusChanged", "TranscriptReady"]
    assert repo.stored.outbox[1]["detail"]["word_count"] == 9


def test_publishing_clears_what_the_bus_accepted_and_keeps_the_rest() -> None:
    repo = _repo()
    update_session(repo, "s1", _move(BotStatus.JOINING), CLOCK)  # type: ignore[arg-type]
    update_session(repo, "s1", _move(BotStatus.IN_MEETING), CLOCK)  # type: ignore[arg-type]
    first, second = (e["detail"]["event_id"] for e in repo.stored.outbox)
    report = publish_outbox(repo, Bus(reject={second}), "s1", CLOCK)  # type: ignore[arg-type]
    assert [e["detail"]["event_id"] for e in report.published] == [first] and report.failed == 1
    assert [e["detail"]["event_id"] for e in repo.stored.outbox] == [second]


def test_an_unreachable_bus_raises_nothing_and_keeps_every_event() -> None:
    repo = _repo()
    update_session(repo, "s1", _move(BotStatus.JOINING), CLOCK)  # type: ignore[arg-type]
    report = publish_outbox(repo, Bus(down=True), "s1", CLOCK)  # type: ignore[arg-type]
    assert report.published == [] and report.failed == 1 and report.error == "TimeoutError"
    assert len(repo.stored.outbox) == 1


def test_the_outbox_keeps_the_session_in_the_reconcilers_sight_even_when_settled() -> None:
    from meetpilot.domain.session import attention_due

    repo = _repo()
    update_session(repo, "s1", _move(BotStatus.DONE, Outcome.TRANSCRIPT_STORED), CLOCK)  # type: ignore[arg-type]
    assert attention_due(repo.stored, CLOCK.now()) is not None
    publish_outbox(repo, Bus(), "s1", CLOCK)  # type: ignore[arg-type]
    assert attention_due(repo.stored, CLOCK.now()) is None
