"""In-memory storage behind the same ports as the DynamoDB adapters, for use-case tests and the workbench.

Faithful to the adapters, not merely shaped like them: the same conditions decide every write
(claims and leases, forward-only session versions with ConcurrentUpdate, "only while the meeting
still has this session"), the same values come back (the old meeting from a cancel, the new one
from a revive), and what DynamoDB would not keep is not kept (timestamps to the millisecond, a
meeting's lease time and a calendar's sync lease only where the adapter writes them). The
repository contract tests run against these too, so they cannot drift from the real adapters.

Objects are copied in and out: changing a returned meeting or session changes nothing stored.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.app.ports import ClaimUnavailable
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import Calendar, CalendarLink, CalendarRules, PushChannel, calendar_event_id
from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.decisions import Decision, EventOverride, OverrideScope
from meetpilot.domain.live_transcript import LiveSegment
from meetpilot.domain.meeting import (
    ATTENTION_GRACE,
    DEFAULT_LEAD_TIME,
    DesiredState,
    DispatchState,
    Meeting,
    meeting_attention_due,
    start_of_meeting_key,
)
from meetpilot.domain.session import Session, attention_due
from meetpilot.errors import ConcurrentUpdate


def _ms_at(moment: datetime) -> datetime:
    """A timestamp as the table keeps it: UTC, to the millisecond."""
    return parse_iso(to_iso(moment))


def _ms(moment: datetime | None) -> datetime | None:
    return _ms_at(moment) if moment is not None else None


def _condition_failed(operation: str) -> ClientError:
    """What boto3 raises where the adapter lets a failed condition through to the caller."""
    error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}
    return ClientError(error, operation)


@dataclass
class MemoryTable:
    """Everything the single table would hold, in dictionaries, behind one lock."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    meetings: dict[str, Meeting] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    # The sparse attention index: (kind, id) -> due, only while the item wants a look.
    attention: dict[tuple[str, str], datetime] = field(default_factory=dict)
    user_meetings: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> sort key -> meeting key
    live_segments: dict[str, dict[str, LiveSegment]] = field(default_factory=dict)  # session -> sort key -> segment
    calendars: dict[str, Calendar] = field(default_factory=dict)
    channels: dict[str, PushChannel] = field(default_factory=dict)
    links: dict[tuple[str, str], CalendarLink] = field(default_factory=dict)
    decisions: dict[tuple[str, str], Decision] = field(default_factory=dict)  # (calendar, event) -> decision
    overrides: dict[tuple[str, str, str], EventOverride] = field(default_factory=dict)  # (calendar, scope, id)
    user_bot_settings: dict[str, BotSettings] = field(default_factory=dict)


class _OnTable:
    def __init__(self, table: MemoryTable | None = None) -> None:
        self.table = table if table is not None else MemoryTable()


def _stored_meeting(meeting: Meeting) -> Meeting:
    return replace(
        meeting,
        user_ids=sorted(set(meeting.user_ids)),
        calendar_event_ids=sorted(set(meeting.calendar_event_ids)),
        claim_expires_at=_ms(meeting.claim_expires_at),
        created_at=_ms(meeting.created_at),
        dispatch_at=_ms(meeting.dispatch_at),
        failure_reason=meeting.failure_reason,
    )


class MemoryMeetings(_OnTable):
    """``app.ports.Meetings`` in memory (see ``adapters.meetings``)."""

    def __init__(self, table: MemoryTable | None = None, *, lead_time: timedelta = DEFAULT_LEAD_TIME) -> None:
        super().__init__(table)
        self._lead_time = lead_time

    def _due(self, meeting: Meeting) -> None:
        due = meeting_attention_due(meeting, self._lead_time)
        if due is None:
            self.table.attention.pop(("meeting", meeting.meeting_key), None)
        else:
            self.table.attention[("meeting", meeting.meeting_key)] = due

    def _out(self, key: str) -> Meeting:
        return copy.deepcopy(self.table.meetings[key])

    def get_meeting(self, key: str) -> Meeting | None:
        with self.table.lock:
            return self._out(key) if key in self.table.meetings else None

    def add_meeting(self, meeting: Meeting, now: datetime) -> tuple[Meeting, bool]:
        with self.table.lock:
            key = meeting.meeting_key
            created = key not in self.table.meetings
            if created:
                # The adapter writes no lease time on a new item.
                fresh = _stored_meeting(replace(copy.deepcopy(meeting), claim_expires_at=None, created_at=now))
                self.table.meetings[key] = fresh
                self._due(fresh)
            else:
                stored = self.table.meetings[key]
                stored.user_ids = sorted(set(stored.user_ids) | set(meeting.user_ids))
                stored.calendar_event_ids = sorted(set(stored.calendar_event_ids) | set(meeting.calendar_event_ids))
                stored.adhoc = stored.adhoc or meeting.adhoc
            for user_id in meeting.user_ids:
                sort_key = f"MTG#{to_iso(meeting.start)}#{key}"
                self.table.user_meetings.setdefault(user_id, {})[sort_key] = key
            return self._out(key), created

    def withdraw_request(self, key: str) -> Meeting | None:
        with self.table.lock:
            if key not in self.table.meetings:
                return None
            self.table.meetings[key].adhoc = False
            return self._out(key)

    def claim_meeting(
        self, key: str, *, now: datetime, lease_seconds: int, session_id: str, idempotency_key: str
    ) -> Meeting:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None:
                raise ClaimUnavailable("missing")
            lapsed = (
                current.dispatch_state is DispatchState.CLAIMED
                and current.claim_expires_at is not None
                and to_iso(current.claim_expires_at) < to_iso(now)
            )
            if current.desired is not DesiredState.RECORD or not (
                current.dispatch_state is DispatchState.PENDING or lapsed
            ):
                retry_in = None
                if current.dispatch_state is DispatchState.CLAIMED and current.claim_expires_at:
                    retry_in = max(1.0, (current.claim_expires_at - now).total_seconds())
                state = current.dispatch_state.value
                if current.desired is not DesiredState.RECORD:
                    state = current.desired.value
                raise ClaimUnavailable(state, retry_in)
            current.dispatch_state = DispatchState.CLAIMED
            current.claim_expires_at = _ms(datetime.fromtimestamp(now.timestamp() + lease_seconds, tz=UTC))
            current.session_id = current.session_id or session_id
            current.idempotency_key = current.idempotency_key or idempotency_key
            current.dispatch_attempts += 1
            return self._out(key)

    def release_claim(self, key: str, session_id: str) -> None:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current and current.dispatch_state is DispatchState.CLAIMED and current.session_id == session_id:
                current.dispatch_state = DispatchState.PENDING
                current.claim_expires_at = None

    def set_dispatch_schedule(self, key: str, schedule_name: str, dispatch_at: datetime) -> None:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None:
                raise _condition_failed("UpdateItem")
            current.schedule_name = schedule_name
            current.dispatch_at = _ms(dispatch_at)
            self.table.attention[("meeting", key)] = dispatch_at + ATTENTION_GRACE

    def finish_dispatch(
        self,
        key: str,
        *,
        state: DispatchState,
        bot_id: str | None = None,
        reason: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if session_id is not None and (current is None or current.session_id != session_id):
                return False
            if current is None:
                return True  # DynamoDB would write a stub item no reader can map; nothing reads it
            current.dispatch_state = state
            if bot_id:
                current.bot_id = bot_id
            if reason:
                current.failure_reason = reason[:500]
            current.claim_expires_at = None
            self.table.attention.pop(("meeting", key), None)
            return True

    def detach_calendar_event(self, key: str, calendar_event_id: str) -> Meeting | None:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None:
                return None
            current.calendar_event_ids = [c for c in current.calendar_event_ids if c != calendar_event_id]
            return self._out(key)

    def cancel_meeting(self, key: str) -> Meeting | None:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None or current.calendar_event_ids or current.adhoc:
                return None
            before = self._out(key)
            current.desired = DesiredState.CANCELLED
            self.table.attention.pop(("meeting", key), None)
            return before

    def revive_meeting(self, key: str) -> Meeting | None:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None or current.desired is not DesiredState.CANCELLED:
                return None
            if not (current.calendar_event_ids or current.adhoc):
                return None
            revived = replace(
                current,
                desired=DesiredState.RECORD,
                dispatch_state=DispatchState.PENDING,
                dispatch_attempts=0,
                revision=current.revision + 1,
                session_id=None,
                idempotency_key=None,
                bot_id=None,
                failure_reason=None,
                claim_expires_at=None,
                schedule_name=None,
                dispatch_at=None,
            )
            self.table.meetings[key] = revived
            self._due(revived)
            return self._out(key)

    def postpone_meeting_attention(self, key: str, until: datetime) -> None:
        with self.table.lock:
            if ("meeting", key) in self.table.attention:
                self.table.attention[("meeting", key)] = until


class MemorySessions(_OnTable):
    """``app.ports.Sessions`` in memory (see ``adapters.sessions``)."""

    def _store(self, session: Session, now: datetime, version: int, created_at: datetime | None) -> None:
        stored = copy.deepcopy(session)
        stored.version = version
        stored.created_at = _ms(created_at or now)
        stored.updated_at = _ms(now)
        self.table.sessions[session.session_id] = stored
        due = attention_due(session, now)
        if due is None:
            self.table.attention.pop(("session", session.session_id), None)
        else:
            self.table.attention[("session", session.session_id)] = due

    def create_session(self, session: Session, now: datetime) -> bool:
        with self.table.lock:
            session.created_at = session.created_at or now
            session.updated_at = now
            if session.session_id in self.table.sessions:
                return False
            self._store(session, now, 0, session.created_at)
            return True

    def get_session(self, session_id: str) -> Session | None:
        with self.table.lock:
            stored = self.table.sessions.get(session_id)
            return copy.deepcopy(stored) if stored else None

    def find_session_by_bot(self, bot_id: str) -> Session | None:
        with self.table.lock:
            for session_id in sorted(self.table.sessions):
                if self.table.sessions[session_id].bot_id == bot_id:
                    return self.get_session(session_id)
            return None

    def save_session(self, session: Session, now: datetime) -> Session:
        with self.table.lock:
            stored = self.table.sessions.get(session.session_id)
            if stored is None or stored.version != session.version:
                raise ConcurrentUpdate(f"session {session.session_id} changed while being updated")
            # The key, the meeting and the creation time are fixed at creation, as in the adapter.
            self._store(replace(session, meeting_key=stored.meeting_key), now, session.version + 1, stored.created_at)
            session.version += 1
            return session

    def delete_session(self, session_id: str) -> bool:
        with self.table.lock:
            self.table.attention.pop(("session", session_id), None)
            return self.table.sessions.pop(session_id, None) is not None


class MemoryAttentionIndex(_OnTable):
    """``app.ports.AttentionIndex`` in memory: due meetings and sessions, oldest first."""

    def due_for_attention(self, now: datetime, *, limit: int = 500) -> list[tuple[str, str]]:
        with self.table.lock:
            cutoff = to_iso(now)
            due = sorted(
                (to_iso(when), kind.upper(), ident)
                for (kind, ident), when in self.table.attention.items()
                if to_iso(when) <= cutoff
            )
            return [(kind.lower(), ident) for _, kind, ident in due[:limit]]


class MemoryCalendars(_OnTable):
    """``app.ports.Calendars`` in memory (see ``adapters.calendars``)."""

    def _update(self, calendar_id: str, **changes: Any) -> bool:
        current = self.table.calendars.get(calendar_id)
        if current is None:
            return False
        self.table.calendars[calendar_id] = replace(current, **changes)
        return True

    def put_calendar(self, calendar: Calendar, now: datetime) -> bool:
        with self.table.lock:
            calendar.created_at = calendar.created_at or now
            if calendar.calendar_id in self.table.calendars:
                return False
            self.table.calendars[calendar.calendar_id] = replace(
                calendar,
                sync_lease_until=None,  # not written at registration
                created_at=_ms(calendar.created_at),
                channel_expires_at=_ms(calendar.channel_expires_at),
                last_synced_at=_ms(calendar.last_synced_at),
                last_full_sync_at=_ms(calendar.last_full_sync_at),
                last_error_at=_ms(calendar.last_error_at),
            )
            return True

    def get_calendar(self, calendar_id: str) -> Calendar | None:
        with self.table.lock:
            return copy.deepcopy(self.table.calendars.get(calendar_id))

    def list_calendars(self) -> list[Calendar]:
        with self.table.lock:
            return [copy.deepcopy(self.table.calendars[c]) for c in sorted(self.table.calendars)]

    def delete_calendar(self, calendar_id: str) -> None:
        with self.table.lock:
            self.table.calendars.pop(calendar_id, None)

    def mark_calendar_removing(self, calendar_id: str) -> bool:
        with self.table.lock:
            return self._update(calendar_id, removing=True)

    def claim_calendar_sync(
        self, calendar_id: str, *, now: datetime, lease_seconds: int, removal: bool = False
    ) -> Calendar:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None:
                raise ClaimUnavailable("missing")
            held = current.sync_lease_until
            if (current.removing and not removal) or (held is not None and not to_iso(held) < to_iso(now)):
                if current.removing and not removal:
                    raise ClaimUnavailable("removing")
                raise ClaimUnavailable("busy", max(1.0, (held - now).total_seconds()) if held else 1.0)
            self._update(calendar_id, sync_lease_until=_ms(now + timedelta(seconds=lease_seconds)))
            return copy.deepcopy(self.table.calendars[calendar_id])

    def release_calendar_sync(self, calendar_id: str) -> None:
        with self.table.lock:
            self._update(calendar_id, sync_lease_until=None)

    def record_calendar_sync(
        self,
        calendar_id: str,
        *,
        now: datetime,
        full: bool,
        etag: str | None = None,
        sync_token: str | None = None,
        problem: str | None = None,
    ) -> None:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None:
                return
            self._update(
                calendar_id,
                last_synced_at=_ms(now),
                sync_lease_until=None,
                last_error=problem[:500] if problem else None,
                last_error_at=_ms(now) if problem else None,
                last_full_sync_at=_ms(now) if full else current.last_full_sync_at,
                etag=etag or None,
                sync_token=sync_token or None,
            )

    def record_calendar_error(
        self, calendar_id: str, *, now: datetime, message: str, drop_sync_token: bool = False
    ) -> None:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None:
                return
            self._update(
                calendar_id,
                last_error=message[:500],
                last_error_at=_ms(now),
                sync_lease_until=None,
                sync_token=None if drop_sync_token else current.sync_token,
            )

    def drop_sync_token(self, calendar_id: str) -> None:
        with self.table.lock:
            self._update(calendar_id, sync_token=None)

    def mark_calendar_disconnected(self, calendar_id: str, *, reason: str, now: datetime) -> bool:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None:
                return False
            if current.disconnected_reason is not None:
                self._update(calendar_id, sync_lease_until=None)
                return False
            return self._update(
                calendar_id,
                disconnected_reason=reason[:500],
                disconnected_at=_ms(now),
                last_error=reason[:500],
                last_error_at=_ms(now),
                sync_lease_until=None,
            )

    def set_calendar_channel(self, calendar_id: str, channel: PushChannel, *, expect_channel_id: str | None) -> bool:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None or current.removing:
                return False
            if (current.channel_id != expect_channel_id) if expect_channel_id else current.channel_id is not None:
                return False
            return self._update(calendar_id, channel_id=channel.channel_id, channel_expires_at=_ms(channel.expires_at))

    def set_calendar_rules(
        self, calendar_id: str, *, rules: CalendarRules | None = None, bot: BotSettings | None = None
    ) -> bool:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None:
                return False
            return self._update(
                calendar_id,
                filters=rules if rules is not None else current.filters,
                bot=bot if bot is not None else current.bot,
            )

    def store_refresh_token(self, calendar_id: str, sealed: str, *, expect_sealed: str | None) -> bool:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None or current.sealed_refresh_token != expect_sealed:
                return False
            return self._update(calendar_id, sealed_refresh_token=sealed)

    def reconnect_calendar(self, calendar_id: str, sealed: str) -> bool:
        with self.table.lock:
            current = self.table.calendars.get(calendar_id)
            if current is None or current.removing:
                return False
            return self._update(
                calendar_id,
                sealed_refresh_token=sealed,
                disconnected_reason=None,
                disconnected_at=None,
                last_error=None,
                last_error_at=None,
                sync_token=None,
            )

    def update_calendar_details(
        self, calendar_id: str, *, label: str | None = None, owner_email: str | None = None
    ) -> bool:
        with self.table.lock:
            changes: dict[str, Any] = {}
            if label is not None:
                changes["label"] = label
            if owner_email is not None:
                changes["owner_email"] = owner_email or None
            return self._update(calendar_id, **changes)


class MemoryPushChannels(_OnTable):
    """``app.ports.PushChannels`` in memory."""

    def put_channel(self, channel: PushChannel) -> None:
        with self.table.lock:
            self.table.channels[channel.channel_id] = replace(channel, expires_at=_ms_at(channel.expires_at))

    def get_channel(self, channel_id: str) -> PushChannel | None:
        with self.table.lock:
            return self.table.channels.get(channel_id)  # frozen: no copy needed

    def delete_channel(self, channel_id: str) -> None:
        with self.table.lock:
            self.table.channels.pop(channel_id, None)


class MemoryCalendarLinks(_OnTable):
    """``app.ports.CalendarLinks`` in memory."""

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None:
        with self.table.lock:
            return self.table.links.get((calendar_id, event_id))

    def put_calendar_link(self, link: CalendarLink, now: datetime) -> None:
        with self.table.lock:
            self.table.links[(link.calendar_id, link.event_id)] = replace(
                link, start=_ms_at(link.start), end=_ms(link.end)
            )

    def delete_calendar_link(self, calendar_id: str, event_id: str) -> None:
        with self.table.lock:
            self.table.links.pop((calendar_id, event_id), None)

    def list_calendar_links(self, calendar_id: str) -> list[CalendarLink]:
        with self.table.lock:
            return [link for (cal, _), link in sorted(self.table.links.items()) if cal == calendar_id]

    def meeting_for_calendar_event(self, calendar_id: str, event_id: str) -> str | None:
        with self.table.lock:
            wanted = calendar_event_id(calendar_id, event_id)
            for link in self.table.links.values():
                if link.calendar_event_id == wanted:
                    return link.meeting_key
            return None


class MemoryCalendarDecisions(_OnTable):
    """``app.ports.CalendarDecisions`` in memory (see ``adapters.calendar_decisions``)."""

    def get_decision(self, calendar_id: str, event_id: str) -> Decision | None:
        with self.table.lock:
            return self.table.decisions.get((calendar_id, event_id))  # frozen: no copy needed

    def put_decision(self, decision: Decision) -> None:
        with self.table.lock:
            self.table.decisions[(decision.calendar_id, decision.event_id)] = replace(
                decision,
                start=_ms(decision.start),
                end=_ms(decision.end),
                decided_at=_ms(decision.decided_at),
                reason=decision.reason[:500],
                facts=replace(decision.facts, title=decision.facts.title[:300]),
            )

    def delete_decision(self, calendar_id: str, event_id: str) -> None:
        with self.table.lock:
            self.table.decisions.pop((calendar_id, event_id), None)

    def list_decisions(self, calendar_id: str) -> list[Decision]:
        with self.table.lock:
            found = [d for (cal, _), d in self.table.decisions.items() if cal == calendar_id]
        return sorted(found, key=lambda d: (to_iso(d.start) if d.start else "", d.event_id))


class MemoryEventOverrides(_OnTable):
    """``app.ports.EventOverrides`` in memory (see ``adapters.calendar_overrides``)."""

    def get_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> EventOverride | None:
        with self.table.lock:
            return self.table.overrides.get((calendar_id, scope.value, target_id))

    def put_override(self, override: EventOverride) -> None:
        with self.table.lock:
            key = (override.calendar_id, override.scope.value, override.target_id)
            self.table.overrides[key] = replace(override, set_at=_ms(override.set_at), until=_ms(override.until))

    def delete_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> bool:
        with self.table.lock:
            return self.table.overrides.pop((calendar_id, scope.value, target_id), None) is not None

    def list_overrides(self, calendar_id: str) -> list[EventOverride]:
        with self.table.lock:
            # The adapter's Query returns them in sort-key order: scope, then id.
            return [o for key, o in sorted(self.table.overrides.items()) if key[0] == calendar_id]


class MemoryUserBotSettings(_OnTable):
    """``app.ports.UserBotSettings`` in memory (see ``adapters.bot_settings``)."""

    def get_user_bot_settings(self, user_id: str) -> BotSettings:
        with self.table.lock:
            return self.table.user_bot_settings.get(user_id, BotSettings())

    def put_user_bot_settings(self, user_id: str, settings: BotSettings, now: datetime) -> None:
        with self.table.lock:
            self.table.user_bot_settings[user_id] = settings

    def delete_user_bot_settings(self, user_id: str) -> bool:
        with self.table.lock:
            return self.table.user_bot_settings.pop(user_id, None) is not None


class MemoryErasure(_OnTable):
    """``app.ports.Erasure`` in memory (see ``adapters.erasure``)."""

    def session_ids_of_meeting(self, key: str) -> list[str]:
        with self.table.lock:
            if start_of_meeting_key(key) is None:
                return []  # such a session is in no listing index, so the adapter cannot find it either
            return sorted(s.session_id for s in self.table.sessions.values() if s.meeting_key == key)

    def delete_session_items(self, session_id: str, *, keep_session: bool = False) -> int:
        with self.table.lock:
            deleted = len(self.table.live_segments.pop(session_id, {}))
            if not keep_session and self.table.sessions.pop(session_id, None) is not None:
                self.table.attention.pop(("session", session_id), None)
                deleted += 1
            return deleted

    def detach_session(self, key: str, session_id: str) -> bool:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None or current.session_id != session_id:
                return False
            current.session_id = None
            current.bot_id = None
            return True

    def delete_meeting(self, key: str) -> bool:
        with self.table.lock:
            self.table.attention.pop(("meeting", key), None)
            return self.table.meetings.pop(key, None) is not None

    def user_meeting_entries(self, user_id: str) -> list[tuple[str, str]]:
        with self.table.lock:
            return sorted(self.table.user_meetings.get(user_id, {}).items())

    def delete_user_meeting_entries(self, user_id: str, key: str) -> int:
        with self.table.lock:
            entries = self.table.user_meetings.get(user_id, {})
            doomed = [sort_key for sort_key, k in entries.items() if k == key]
            for sort_key in doomed:
                del entries[sort_key]
            return len(doomed)

    def remove_user_from_meeting(self, key: str, user_id: str) -> bool:
        with self.table.lock:
            current = self.table.meetings.get(key)
            if current is None:
                return False
            current.user_ids = [u for u in current.user_ids if u != user_id]
            return True

    def delete_calendar_link_if_present(self, calendar_id: str, event_id: str) -> bool:
        with self.table.lock:
            return self.table.links.pop((calendar_id, event_id), None) is not None


class MemoryRepository(
    MemoryMeetings,
    MemorySessions,
    MemoryAttentionIndex,
    MemoryCalendars,
    MemoryPushChannels,
    MemoryCalendarLinks,
    MemoryCalendarDecisions,
    MemoryEventOverrides,
    MemoryUserBotSettings,
    MemoryErasure,
):
    """Every storage port (``app.ports.Storage``) on one in-memory table, like ``DynamoRepository``."""


class MemoryLiveSegments(_OnTable):
    """``app.ports.LiveSegmentStore`` in memory; pass the repository's table to share its sessions."""

    def put_segment(
        self,
        session_id: str,
        segment: LiveSegment,
        *,
        expires_at: int,
        meeting_key: str | None = None,
        bot_id: str | None = None,
        received_at: datetime | None = None,
    ) -> bool:
        with self.table.lock:
            sort_key = f"LIVE#{to_iso(segment.spoken_at)}#{segment.segment_id}"
            stored = self.table.live_segments.setdefault(session_id, {})
            if sort_key in stored:
                return False
            stored[sort_key] = replace(segment, spoken_at=_ms_at(segment.spoken_at))
            return True

    def segments(self, session_id: str) -> Iterator[LiveSegment]:
        with self.table.lock:
            found = [segment for _, segment in sorted(self.table.live_segments.get(session_id, {}).items())]
        yield from found
