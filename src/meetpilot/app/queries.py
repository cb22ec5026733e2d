"""What people ask about meetings and bots: one session with its history, lists of sessions, and a
short-lived link to a stored transcript.

Lists are read page by page from indexes (never a Scan) and resume from an opaque cursor, which is
bound to the filter it was made for:

    page = list_sessions(SessionFilter(status=BotStatus.DONE), listing=listing, clock=clock, limit=50)
    more = list_sessions(SessionFilter(status=BotStatus.DONE), listing=listing, clock=clock, cursor=page.cursor)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from meetpilot.app.ports import MeetingsAndSessions, Sessions
from meetpilot.domain.clock import Clock, to_iso
from meetpilot.domain.meeting import Meeting
from meetpilot.domain.session import Session
from meetpilot.domain.status import BotStatus
from meetpilot.errors import Conflict, InvalidInput, NotFound

TRANSCRIPT_FORMATS = ("json", "txt", "vtt")
DEFAULT_WINDOW = timedelta(days=30)  # a listing without any filter: meetings from 30 days back to 30 ahead
MAX_WINDOW = timedelta(days=400)
MAX_PAGE = 200


@dataclass(frozen=True)
class SessionSummary:
    """One row of a session list (the attributes the listing indexes carry)."""

    session_id: str
    meeting_key: str
    status: str
    bot_id: str | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    needs_review: bool = False
    transcript_state: str | None = None
    meeting_start: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class IndexPage:
    """A page read from one index partition; ``resume`` is where the next read starts (None: done)."""

    items: list[SessionSummary]
    resume: dict[str, Any] | None


class SessionListing(Protocol):
    """Session lists, newest meeting first. ``resume`` is what an earlier page returned; an adapter
    raises InvalidInput for a ``resume`` it did not make for this partition."""

    def by_status(
        self, status: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage: ...

    def by_month(
        self, month: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage: ...

    def by_user(
        self, user_id: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage: ...

    def by_calendar_event(self, calendar_event_id: str) -> list[SessionSummary]: ...


class TranscriptLinks(Protocol):
    def presign_get(self, key: str, *, expires_in: int, filename: str) -> str:
        """A URL that downloads the object ``key`` for ``expires_in`` seconds."""
        ...


# --- one session ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionView:
    session: Session
    meeting: Meeting | None


def find_session(ref: str, *, repo: Sessions) -> Session:
    """A session by its id or by its bot's id; NotFound names what was looked for."""
    ref = ref.strip()
    session = repo.get_session(ref) if ref else None
    if session is None and ref:
        session = repo.find_session_by_bot(ref)
    if session is None:
        raise NotFound("no session or bot with that id; 'meetpilot sessions list' shows the known ones")
    return session


def session_view(ref: str, *, repo: MeetingsAndSessions) -> SessionView:
    """A session (by session id or bot id) with its full event history and its meeting."""
    session = find_session(ref, repo=repo)
    return SessionView(session, repo.get_meeting(session.meeting_key))


# --- lists ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFilter:
    """At most one of status, user and calendar event; a start range goes with any but the last."""

    status: BotStatus | None = None
    user_id: str | None = None
    calendar_event_id: str | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None

    def check(self) -> None:
        chosen = [name for name in ("status", "user_id", "calendar_event_id") if getattr(self, name)]
        if len(chosen) > 1:
            raise InvalidInput(f"filter by one of status, user_id or calendar_event_id at a time, not {chosen}")
        if self.calendar_event_id and (self.start_from or self.start_to):
            raise InvalidInput("calendar_event_id names one meeting; leave out from and to")
        if self.start_from and self.start_to and self.start_from > self.start_to:
            raise InvalidInput("from must not be after to")

    def fingerprint(self) -> str:
        parts = [
            self.status.value if self.status else "",
            self.user_id or "",
            self.calendar_event_id or "",
            to_iso(self.start_from) if self.start_from else "",
            to_iso(self.start_to) if self.start_to else "",
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionList:
    items: list[SessionSummary]
    cursor: str | None  # pass it back for the next page; None on the last one


_BAD_CURSOR = "cursor is not one this API gave out (or the data moved on); list again without it"


def _encode_cursor(fingerprint: str, state: Mapping[str, Any]) -> str:
    raw = json.dumps({"f": fingerprint, **state}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if not isinstance(state, dict):
        raise InvalidInput(_BAD_CURSOR)
    if state.pop("f", None) != fingerprint:
        raise InvalidInput("cursor belongs to a list with other filters; keep the filters of the first page")
    return state


def _months_descending(start_from: datetime, start_to: datetime) -> list[str]:
    months: list[str] = []
    year, month = start_to.year, start_to.month
    while (year, month) >= (start_from.year, start_from.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def list_sessions(
    flt: SessionFilter,
    *,
    listing: SessionListing,
    clock: Clock,
    limit: int = 50,
    cursor: str | None = None,
) -> SessionList:
    """One page of sessions matching ``flt``, newest meeting start first."""
    flt.check()
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    fingerprint = flt.fingerprint()
    state = _decode_cursor(cursor, fingerprint) if cursor else {}
    resume = state.get("p")

    if flt.calendar_event_id:
        return SessionList(listing.by_calendar_event(flt.calendar_event_id), None)
    if flt.status is not None or flt.user_id:
        if flt.status is not None:
            page = listing.by_status(
                flt.status.value, start_from=flt.start_from, start_to=flt.start_to, limit=limit, resume=resume
            )
        else:
            assert flt.user_id is not None
            page = listing.by_user(
                flt.user_id, start_from=flt.start_from, start_to=flt.start_to, limit=limit, resume=resume
            )
        more = _encode_cursor(fingerprint, {"p": page.resume}) if page.resume else None
        return SessionList(page.items, more)

    # A date range only: one month partition after another, newest first.
    now = clock.now()
    start_to = flt.start_to or (now + DEFAULT_WINDOW)
    start_from = flt.start_from or (start_to - 2 * DEFAULT_WINDOW)
    if start_to - start_from > MAX_WINDOW:
        raise InvalidInput(f"a date range may span at most {MAX_WINDOW.days} days; narrow from/to")
    months = _months_descending(start_from, start_to)
    month = state.get("m", months[0])
    if month not in months:
        raise InvalidInput(_BAD_CURSOR)
    items: list[SessionSummary] = []
    for current in months[months.index(month) :]:
        page = listing.by_month(
            current, start_from=start_from, start_to=start_to, limit=limit - len(items), resume=resume
        )
        items.extend(page.items)
        resume = None
        if page.resume is not None:
            return SessionList(items, _encode_cursor(fingerprint, {"m": current, "p": page.resume}))
        later = months.index(current) + 1
        if len(items) >= limit:
            more = _encode_cursor(fingerprint, {"m": months[later]}) if later < len(months) else None
            return SessionList(items, more)
    return SessionList(items, None)


# --- transcripts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptLink:
    session_id: str
    bot_id: str | None
    format: str
    url: str
    expires_at: datetime


def transcript_link(
    ref: str, fmt: str, *, repo: Sessions, links: TranscriptLinks, clock: Clock, expires_in: int = 300
) -> TranscriptLink:
    """A presigned download link for a stored transcript in one format (json, txt or vtt).

    Raises NotFound for an unknown session or bot, Conflict while no transcript is stored.
    """
    if fmt not in TRANSCRIPT_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(TRANSCRIPT_FORMATS)}")
    session = find_session(ref, repo=repo)
    keys = session.transcript.get("keys") if isinstance(session.transcript, dict) else None
    key = keys.get(fmt) if isinstance(keys, dict) else None
    if not isinstance(key, str) or not key:
        if session.outcome is not None:
            reason = f": {session.outcome_reason}" if session.outcome_reason else ""
            raise Conflict(f"this session ended without a stored transcript ({session.outcome.value}{reason})")
        raise Conflict(
            f"no transcript stored yet (bot status {session.status.value}); it is stored a few minutes "
            "after the bot leaves the call, try again then"
        )
    name = f"{session.bot_id or session.session_id}.{fmt}"
    url = links.presign_get(key, expires_in=expires_in, filename=name)
    return TranscriptLink(session.session_id, session.bot_id, fmt, url, clock.now() + timedelta(seconds=expires_in))
