"""Forget a bot, a meeting or a user: erase every item that names them or holds their words, every S3
version and delete marker under their transcript folders, and the provider's copy, counting each step
(a data-subject request must be answerable precisely). Running it again finishes what a failure left.

What goes, by target:
- bot: its session (history, dedupe hashes) and live segments, its transcripts in S3, the
  provider's copy; its meeting stays but no longer names it.
- meeting: every session the meeting ever had (as for a bot), its schedule, its calendar event links,
  its users' index entries and the meeting itself.
- user: their calendars (removed as ``calendars remove`` does: channel stopped, links gone), every
  meeting only they had (as for a meeting) and their index entries; a meeting someone else also has
  only loses this user from its users.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meetpilot.app.cancellation import withdraw_bot
from meetpilot.app.ports import BotProvider, DispatchScheduler, ForgetRepository, TranscriptStore
from meetpilot.app.transcripts import transcript_prefix
from meetpilot.domain.clock import Clock
from meetpilot.domain.meeting import Meeting, start_of_meeting_key
from meetpilot.domain.session import Session
from meetpilot.errors import NotFound, ProviderError, ProviderNotFound

RERUN = "run forget again to finish"


@dataclass(frozen=True)
class ForgetDeps:
    repo: ForgetRepository
    store: TranscriptStore
    provider: BotProvider
    scheduler: DispatchScheduler
    clock: Clock
    # Removes one calendar and withdraws what only it asked for; returns what it did, by action
    # (one action per link or channel it deleted). Calendar removal has its own use case.
    remove_calendar: Callable[[str], Mapping[str, int]]
    # A user with many meetings is forgotten over several calls rather than past the API's timeout.
    time_budget: timedelta = timedelta(seconds=20)


@dataclass
class ForgetReport:
    target: str  # bot, meeting or user
    ident: str
    sessions_deleted: int = 0
    items_deleted: int = 0  # DynamoDB items: sessions, live segments, meetings, index entries, links, calendars
    transcript_versions_deleted: int = 0  # S3 object versions and delete markers
    meetings_deleted: int = 0
    meetings_kept_for_others: int = 0
    calendars_removed: int = 0
    bots_withdrawn: int = 0
    provider: dict[str, str] = field(default_factory=dict)  # bot id -> what the provider said
    unfinished: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unfinished


def forget_bot(bot_id: str, deps: ForgetDeps) -> ForgetReport:
    session = deps.repo.find_session_by_bot(bot_id)
    if session is None:
        raise NotFound(f"no session for bot {bot_id}; check the id with 'meetpilot sessions list'")
    report = ForgetReport("bot", bot_id)
    meeting = deps.repo.get_meeting(session.meeting_key)
    if _forget_session(session, _start_of(meeting, session.meeting_key), deps, report):
        deps.repo.detach_session(session.meeting_key, session.session_id)
    return report


def forget_meeting(key: str, deps: ForgetDeps, report: ForgetReport | None = None) -> ForgetReport:
    report = report or ForgetReport("meeting", key)
    meeting = deps.repo.get_meeting(key)
    session_ids = set(deps.repo.session_ids_of_meeting(key))
    if meeting is not None and meeting.session_id:
        session_ids.add(meeting.session_id)
    if meeting is None and not session_ids:
        raise NotFound("no such meeting; the meeting_id is the one a create or a session answer shows")
    # No new bot once forgetting has begun: the schedule would put the meeting back on the queue.
    deps.scheduler.unschedule(key)
    start = _start_of(meeting, key)
    done = True
    for session_id in sorted(session_ids):
        session = deps.repo.get_session(session_id)
        if session is not None:
            done = _forget_session(session, start, deps, report) and done
    if not done:
        # The meeting and its index entries stay: they are how a second run finds what is left.
        return report
    if meeting is not None:
        for calendar_event_id in meeting.calendar_event_ids:
            calendar_id, _, event_id = calendar_event_id.partition("#")
            report.items_deleted += deps.repo.delete_calendar_link_if_present(calendar_id, event_id)
        for user_id in meeting.user_ids:
            report.items_deleted += deps.repo.delete_user_meeting_entries(user_id, key)
        if deps.repo.delete_meeting(key):
            report.items_deleted += 1
            report.meetings_deleted += 1
    return report


def forget_user(user_id: str, deps: ForgetDeps) -> ForgetReport:
    report = ForgetReport("user", user_id)
    calendars = [c for c in deps.repo.list_calendars() if c.user_id == user_id]
    # Calendars first: once they are gone, no sync can add this user to a meeting again.
    for calendar in calendars:
        actions = deps.remove_calendar(calendar.calendar_id)
        report.calendars_removed += 1
        report.items_deleted += 1 + sum(actions.values())
    settings = deps.repo.delete_user_bot_settings(user_id)
    report.items_deleted += settings
    entries = deps.repo.user_meeting_entries(user_id)
    if not calendars and not entries and not settings:
        raise NotFound(f"meetpilot knows no meetings or calendars of user {user_id}")
    deadline = deps.clock.now() + deps.time_budget
    for key in dict.fromkeys(key for _, key in entries):
        if deps.clock.now() > deadline:
            report.unfinished.append(f"more meetings are left than one call has time for; {RERUN}")
            break
        meeting = deps.repo.get_meeting(key)
        if meeting is not None and set(meeting.user_ids) - {user_id}:
            # Someone else has this meeting too: it keeps its bot and transcript, minus this user.
            deps.repo.remove_user_from_meeting(key, user_id)
            report.meetings_kept_for_others += 1
        else:
            with contextlib.suppress(NotFound):  # an index entry a forgotten meeting left behind
                forget_meeting(key, deps, report)
            if not report.complete:
                continue
        report.items_deleted += deps.repo.delete_user_meeting_entries(user_id, key)
    return report


def _start_of(meeting: Meeting | None, key: str) -> datetime | None:
    return meeting.start if meeting is not None else start_of_meeting_key(key)


def _forget_session(session: Session, meeting_start: datetime | None, deps: ForgetDeps, report: ForgetReport) -> bool:
    """Erase one session: stop its bot, the provider's copy, its items, its S3 folders. True when all
    of it went; otherwise the session item stays, so that a second run can finish."""
    provider_done = True
    bot_id = session.bot_id
    if bot_id:
        try:
            withdrawn = withdraw_bot(
                session.session_id,
                repo=deps.repo,
                provider=deps.provider,
                clock=deps.clock,
                remove_in_meeting=True,  # a bot must not go on recording what is being forgotten
                reason="forgotten",
            )
            report.bots_withdrawn += withdrawn in ("bot_cancelled", "bot_removed")
            report.provider[bot_id] = f"deleted {deps.provider.delete_bot_data(bot_id)} objects"
        except ProviderNotFound:
            report.provider[bot_id] = "already gone"
        except ProviderError as exc:
            report.provider[bot_id] = f"not deleted: {exc}"
            report.unfinished.append(f"MeetStream did not stop or delete bot {bot_id}; {RERUN} later")
            provider_done = False
    # The items before the files: with the session gone no new transcript job can start writing.
    report.items_deleted += deps.repo.delete_session_items(session.session_id, keep_session=not provider_done)
    report.sessions_deleted += provider_done
    prefixes = {key.rsplit("/", 1)[0] + "/" for key in (session.transcript.get("keys") or {}).values()}
    prefixes.add(transcript_prefix(session, meeting_start, deps.clock.now()))
    for prefix in sorted(prefixes):
        report.transcript_versions_deleted += deps.store.delete_prefix(prefix)
    return provider_done
