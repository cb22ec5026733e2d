"""Session lists on moto and on DynamoDB Local (AWS's own engine checks every expression): by status,
by month, by user and by calendar event, paged, newest meeting first, never a Scan."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.adapters.dynamodb import DynamoRepository
from meetpilot.adapters.session_listing import DynamoSessionListing
from meetpilot.app.queries import SessionFilter, list_sessions
from meetpilot.domain.calendar import CalendarLink
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import Meeting
from meetpilot.domain.session import Session, TranscriptMode
from meetpilot.domain.status import BotStatus
from meetpilot.errors import InvalidInput
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    DynamoBackend,
    ddb_backend,
    dynamodb_local,
    moto_server,
)

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# Three meetings across a month boundary, so a date range reads two month partitions.
STARTS = [
    NOW.replace(day=1) - timedelta(days=1, hours=2),
    NOW.replace(day=1) + timedelta(hours=3),
    NOW.replace(day=1) + timedelta(days=2),
]


def _seed(backend: DynamoBackend) -> tuple[DynamoRepository, list[Session]]:
    repo = DynamoRepository(backend.client, backend.table_name)
    sessions = []
    for i, start in enumerate(STARTS):
        meeting = Meeting.new(f"https://zoom.us/j/90000{i}", start, user_id="ana" if i != 1 else "ben")
        repo.add_meeting(meeting, NOW)
        claimed = repo.claim_meeting(
            meeting.meeting_key, now=NOW, lease_seconds=60, session_id=f"s{i}", idempotency_key=f"k{i}"
        )
        session = Session(session_id=f"s{i}", meeting_key=claimed.meeting_key, transcript_mode=TranscriptMode.POST_CALL)
        repo.create_session(session, NOW)
        session.bot_id = f"bot-{i}"
        session.status = BotStatus.DONE if i != 1 else BotStatus.RECORDING
        repo.save_session(session, NOW)
        sessions.append(session)
    return repo, sessions


def _pages(listing: DynamoSessionListing, flt: SessionFilter, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = list_sessions(flt, listing=listing, clock=FixedClock(NOW), limit=limit, cursor=cursor)
        pages.append([s.bot_id for s in page.items])
        cursor = page.cursor
        if cursor is None:
            return pages


def test_lists_by_status_user_month_and_calendar_event(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    repo, _ = _seed(ddb_backend)
    listing = DynamoSessionListing(ddb_backend.client, ddb_backend.table_name)

    done = _pages(listing, SessionFilter(status=BotStatus.DONE), limit=1)
    assert [bot for page in done for bot in page] == ["bot-2", "bot-0"]
    assert _pages(listing, SessionFilter(status=BotStatus.RECORDING), limit=5) == [["bot-1"]]

    by_user = _pages(listing, SessionFilter(user_id="ana"), limit=1)
    assert [bot for page in by_user for bot in page] == ["bot-2", "bot-0"]
    first_two = SessionFilter(user_id="ana", start_from=STARTS[2] - timedelta(minutes=1))
    assert _pages(listing, first_two, limit=5) == [["bot-2"]]

    everything = SessionFilter(start_from=STARTS[0] - timedelta(hours=1), start_to=STARTS[2] + timedelta(hours=1))
    rows = [bot for page in _pages(listing, everything, limit=2) for bot in page]
    assert rows == ["bot-2", "bot-1", "bot-0"]  # across the month boundary, newest first
    narrow = SessionFilter(start_from=STARTS[1] - timedelta(minutes=1), start_to=STARTS[1] + timedelta(minutes=1))
    assert _pages(listing, narrow, limit=5) == [["bot-1"]]

    link = CalendarLink("cal-a", "evt-1", repo.get_session("s1").meeting_key, STARTS[1], None, None)
    repo.put_calendar_link(link, NOW)
    assert [s.bot_id for s in listing.by_calendar_event("cal-a#evt-1")] == ["bot-1"]
    assert listing.by_calendar_event("cal-a#evt-404") == []


def test_a_resume_position_for_another_partition_is_refused(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    _seed(ddb_backend)
    listing = DynamoSessionListing(ddb_backend.client, ddb_backend.table_name)
    page = listing.by_status("done", start_from=None, start_to=None, limit=1, resume=None)
    assert page.resume is not None
    with pytest.raises(InvalidInput):
        listing.by_status("recording", start_from=None, start_to=None, limit=1, resume=page.resume)
    with pytest.raises(InvalidInput):
        listing.by_user("ana", start_from=None, start_to=None, limit=1, resume={"pk": {"N": "1"}})
    # A position moved inside the partition either reads on or is refused as a bad cursor (DynamoDB
    # itself checks it against the key condition); it is never a server error.
    forged = dict(page.resume, meeting_start={"S": "not-a-time"})
    with contextlib.suppress(InvalidInput):
        listing.by_status("done", start_from=None, start_to=None, limit=5, resume=forged)
