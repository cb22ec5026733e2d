"""Ports: the small interfaces the use cases need from the outside world.

Adapters implement them over AWS and MeetStream; tests may implement them with in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import (
    Calendar,
    CalendarEvent,
    CalendarKind,
    CalendarLink,
    CalendarRules,
    OAuthClient,
    PushChannel,
    SkippedSeries,
)
from meetpilot.domain.decisions import Decision, EventOverride, OverrideScope
from meetpilot.domain.dispatch_plan import RateState, SlotGrid
from meetpilot.domain.live_transcript import LiveSegment
from meetpilot.domain.meeting import DispatchState, Meeting
from meetpilot.domain.session import Session


@dataclass(frozen=True)
class BotRequest:
    """What meetpilot asks the provider for; the adapter turns it into the provider's body."""

    meeting_url: str
    bot_name: str
    callback_url: str
    deduplication_key: str
    join_at: datetime | None = None
    custom_attributes: Mapping[str, str] = field(default_factory=dict)
    # MeetStream provider key: "deepgram", "assemblyai", "meetstream", "meeting_captions",
    # "deepgram_streaming", ... or None for no transcription.
    transcript_provider: str | None = None
    automatic_leave: Mapping[str, int] = field(default_factory=dict)
    live_transcription_url: str | None = None


@dataclass(frozen=True)
class CreatedBot:
    bot_id: str
    transcript_id: str | None
    status: str | None
    replayed: bool = False  # the provider answered an idempotent replay (507) or a dedup hit


class BotProvider(Protocol):
    """The meeting-bot provider (MeetStream). Methods raise meetpilot.errors.Provider* errors."""

    def create_bot(self, request: BotRequest, *, idempotency_key: str) -> CreatedBot: ...

    def bot_status(self, bot_id: str) -> str | None: ...

    def bot_detail(self, bot_id: str) -> Mapping[str, Any]: ...

    def find_transcript_id(self, bot_id: str) -> str | None: ...

    def remove_bot(self, bot_id: str) -> None: ...

    def reschedule_bot(self, bot_id: str, join_at: datetime) -> None: ...

    def cancel_scheduled_bot(self, bot_id: str) -> None: ...

    def delete_bot_data(self, bot_id: str) -> int: ...

    def download_transcript(self, transcript_id: str, sink: BinaryIO) -> int:
        """Stream the processed transcript body into ``sink``; return the byte count.

        Raises TranscriptNotReady on 202.
        """
        ...


class Secrets(Protocol):
    """Secrets from SSM, cached per warm instance. Values must never be logged."""

    def api_key(self) -> str: ...

    def token_secrets(self) -> tuple[str, ...]:
        """meetpilot's own secrets for capability tokens in callback and live URLs, current first
        (two during a rotation)."""
        ...

    def signing_secrets(self) -> tuple[str, ...]:
        """The signing secrets MeetStream shows for the workspace webhook, current first (two during
        a rotation)."""
        ...


class MessageQueue(Protocol):
    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> str:
        """Send one JSON message; return its message id. Raises on failure."""
        ...


class TranscriptStore(Protocol):
    bucket: str  # where the files land; downstream events name it

    def put_file(self, key: str, path: str, *, content_type: str, content_encoding: str | None = None) -> None:
        """Upload a local file (streamed, never read whole into memory) under ``key``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Erase every object (every version) under ``prefix``; return how many were deleted."""
        ...


@dataclass(frozen=True)
class ClaimUnavailable(Exception):
    """The meeting cannot be claimed now: another dispatcher holds it, or it is not pending."""

    state: str
    retry_in_seconds: float | None = None


# --- storage, one port per aggregate (DynamoDB in production, meetpilot_dev.fakes.memory in tests) ---


class Meetings(Protocol):
    """Meetings by dedup key, and each one's dispatch: claim, schedule, finish, cancel, revive."""

    def get_meeting(self, key: str) -> Meeting | None: ...

    def add_meeting(self, meeting: Meeting, now: datetime) -> tuple[Meeting, bool]:
        """Store a new meeting, or merge its users and calendar events into the stored one;
        returns the stored meeting and whether this call created it."""
        ...

    def withdraw_request(self, key: str) -> Meeting | None:
        """Take back a direct request (calendar events may still want the meeting); None if missing."""
        ...

    def claim_meeting(
        self, key: str, *, now: datetime, lease_seconds: int, session_id: str, idempotency_key: str
    ) -> Meeting:
        """Take the dispatch lease, keeping any session id and idempotency key the meeting has.

        Raises ClaimUnavailable when the meeting is missing, not pending, or leased to another.
        """
        ...

    def release_claim(self, key: str, session_id: str) -> None: ...

    def set_dispatch_schedule(self, key: str, schedule_name: str, dispatch_at: datetime) -> None: ...

    def finish_dispatch(
        self,
        key: str,
        *,
        state: DispatchState,
        bot_id: str | None = None,
        reason: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Record how a dispatch ended; with ``session_id`` only while the meeting still has it."""
        ...

    def detach_calendar_event(self, key: str, calendar_event_id: str) -> Meeting | None: ...

    def cancel_meeting(self, key: str) -> Meeting | None:
        """Cancel unless a calendar event or a direct request still wants it; returns the meeting
        as it was before (None when it is wanted or missing)."""
        ...

    def revive_meeting(self, key: str) -> Meeting | None:
        """Back to ``record`` with a clean dispatch slate; None unless it was cancelled and is wanted."""
        ...

    def postpone_meeting_attention(self, key: str, until: datetime) -> None: ...


class Sessions(Protocol):
    """Bot sessions. Every write after the first is conditional on the version it read."""

    def create_session(self, session: Session, now: datetime) -> bool:
        """Store a new session unless one with that id exists; True if created."""
        ...

    def get_session(self, session_id: str) -> Session | None: ...

    def find_session_by_bot(self, bot_id: str) -> Session | None: ...

    def save_session(self, session: Session, now: datetime) -> Session:
        """Write a session changed in memory; raises ConcurrentUpdate if its version moved on."""
        ...

    def delete_session(self, session_id: str) -> bool: ...


class AttentionIndex(Protocol):
    """What the reconciler should look at: it spans meetings and sessions."""

    def due_for_attention(self, now: datetime, *, limit: int = 500) -> list[tuple[str, str]]:
        """(``"meeting"`` or ``"session"``, id) of everything due by ``now``, oldest first."""
        ...


class MeetingsAndSessions(Meetings, Sessions, Protocol):
    """Use cases that follow a meeting to its session (dispatch, transcripts, cancellation, queries)."""


class Reconciling(MeetingsAndSessions, AttentionIndex, Protocol):
    """The reconciler: its work list, and the meetings and sessions on it."""


class Repository(Reconciling, Protocol):
    """Meetings, sessions and the attention index: the storage the bot pipeline's handlers get."""


class DispatchScheduler(Protocol):
    """One-time schedules that put a meeting on the dispatch queue at its dispatch time."""

    def schedule(self, meeting_key: str, at: datetime) -> str: ...

    def unschedule(self, meeting_key: str) -> bool: ...

    def claim_slot(self, *, latest: datetime, earliest: datetime) -> datetime | None:
        """Take a slot of the dispatch plan (the latest free one in the range); None when all are full.
        Without a plan (no create rate configured): ``latest``."""
        ...

    def release_slot(self, at: datetime) -> None:
        """Give back a slot ``claim_slot`` returned (the meeting was cancelled or moved)."""
        ...


class ProviderRate(Protocol):
    """The provider's create-rate state: what the last 429 lowered it to, and when."""

    def current(self) -> RateState: ...

    def lower(self, state: RateState, *, unless_since: datetime) -> bool: ...


class SlotGate(Protocol):
    """Per-slot create counters at the lowered rate, taken earliest-first at dispatch time."""

    def claim(
        self,
        grid: SlotGrid,
        *,
        latest: datetime,
        earliest: datetime,
        capacity: int | None = None,
        latest_first: bool = True,
    ) -> datetime | None: ...


# --- calendars --------------------------------------------------------------------------------


class Calendars(Protocol):
    """Registered calendars and their sync state (cursor, lease, last error, current channel)."""

    def put_calendar(self, calendar: Calendar, now: datetime) -> bool:
        """Store a newly registered calendar; False if that id is registered already."""
        ...

    def get_calendar(self, calendar_id: str) -> Calendar | None: ...

    def list_calendars(self) -> list[Calendar]: ...

    def delete_calendar(self, calendar_id: str) -> None: ...

    def mark_calendar_removing(self, calendar_id: str) -> bool: ...

    def claim_calendar_sync(
        self, calendar_id: str, *, now: datetime, lease_seconds: int, removal: bool = False
    ) -> Calendar:
        """Take the calendar's sync lease; raises ClaimUnavailable (missing, removing, busy)."""
        ...

    def release_calendar_sync(self, calendar_id: str) -> None: ...

    def record_calendar_sync(
        self,
        calendar_id: str,
        *,
        now: datetime,
        full: bool,
        etag: str | None = None,
        sync_token: str | None = None,
        problem: str | None = None,
    ) -> None: ...

    def record_calendar_error(
        self, calendar_id: str, *, now: datetime, message: str, drop_sync_token: bool = False
    ) -> None: ...

    def drop_sync_token(self, calendar_id: str) -> None: ...

    def mark_calendar_disconnected(self, calendar_id: str, *, reason: str, now: datetime) -> bool:
        """The grant stopped working: store the one-line reason and release the lease.

        True when this call disconnected it; False when it was disconnected already (or is gone).
        """
        ...

    def set_calendar_channel(self, calendar_id: str, channel: PushChannel, *, expect_channel_id: str | None) -> bool:
        """Point the calendar at a new channel if its current one is still ``expect_channel_id``."""
        ...

    def set_calendar_rules(
        self, calendar_id: str, *, rules: CalendarRules | None = None, bot: BotSettings | None = None
    ) -> bool:
        """Replace the calendar's rules and/or bot settings (None leaves one as it is); False if it is gone."""
        ...

    def store_refresh_token(self, calendar_id: str, sealed: str, *, expect_sealed: str | None) -> bool:
        """Replace the sealed refresh token if the stored one is still ``expect_sealed`` (a rotation).

        False when the calendar is gone or another token was stored meanwhile (a reconnect): theirs is newer.
        """
        ...

    def reconnect_calendar(self, calendar_id: str, sealed: str) -> bool:
        """Store a new grant: the sealed token, no disconnection, no error, no sync token (a full resync
        follows). False when the calendar is gone or being removed."""
        ...

    def update_calendar_details(
        self, calendar_id: str, *, label: str | None = None, owner_email: str | None = None
    ) -> bool:
        """Change the label and/or owner e-mail (None: leave as is; "" clears the e-mail). False when gone."""
        ...


class PushChannels(Protocol):
    """Google push channels by id: the push endpoint's one lookup."""

    def put_channel(self, channel: PushChannel) -> None: ...

    def get_channel(self, channel_id: str) -> PushChannel | None: ...

    def delete_channel(self, channel_id: str) -> None: ...


class CalendarLinks(Protocol):
    """Which meeting each calendar event asks a bot for."""

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None: ...

    def put_calendar_link(self, link: CalendarLink, now: datetime) -> None: ...

    def delete_calendar_link(self, calendar_id: str, event_id: str) -> None: ...

    def list_calendar_links(self, calendar_id: str) -> list[CalendarLink]: ...

    def meeting_for_calendar_event(self, calendar_id: str, event_id: str) -> str | None: ...


class CalendarDecisions(Protocol):
    """What the last sync decided for each occurrence of a calendar, and what it saw of the event."""

    def get_decision(self, calendar_id: str, event_id: str) -> Decision | None: ...

    def put_decision(self, decision: Decision) -> None: ...

    def delete_decision(self, calendar_id: str, event_id: str) -> None: ...

    def list_decisions(self, calendar_id: str) -> list[Decision]:
        """Every kept decision of the calendar, by start (all-day ones, without a start, first)."""
        ...


class EventOverrides(Protocol):
    """Per-event "record this one" / "skip this one", by calendar and event (or series) id."""

    def get_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> EventOverride | None: ...

    def put_override(self, override: EventOverride) -> None: ...

    def delete_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> bool:
        """Remove it; True when there was one."""
        ...

    def list_overrides(self, calendar_id: str) -> list[EventOverride]: ...


class UserBotSettings(Protocol):
    """A user's own bot settings (the level between a calendar's and the stack's)."""

    def get_user_bot_settings(self, user_id: str) -> BotSettings:
        """The user's settings; empty ones when none were set."""
        ...

    def put_user_bot_settings(self, user_id: str, settings: BotSettings, now: datetime) -> None: ...

    def delete_user_bot_settings(self, user_id: str) -> bool: ...


class BotSettingsLookup(Protocol):
    """What dispatch reads to work out a meeting's bot: the owning calendar, its event's override, its user."""

    def get_calendar(self, calendar_id: str) -> Calendar | None: ...

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None: ...

    def get_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> EventOverride | None: ...

    def get_user_bot_settings(self, user_id: str) -> BotSettings: ...


class DispatchRepository(MeetingsAndSessions, BotSettingsLookup, Protocol):
    """Dispatching a bot: the meeting and its session, and where the bot's settings come from."""


class CalendarStorage(Calendars, PushChannels, CalendarLinks, CalendarDecisions, EventOverrides, Protocol):
    """A calendar with its channels, event links, decisions and overrides (registration, removal, sync)."""


class CalendarRepository(MeetingsAndSessions, CalendarStorage, UserBotSettings, Protocol):
    """Calendar sync: calendars, and the meetings and sessions their events ask for."""


class Erasure(Protocol):
    """Forgetting's reads and deletes, which cross aggregates (a session's partition holds its live
    segments; a meeting has entries in its users' partitions)."""

    def session_ids_of_meeting(self, key: str) -> list[str]: ...

    def delete_session_items(self, session_id: str, *, keep_session: bool = False) -> int: ...

    def detach_session(self, key: str, session_id: str) -> bool: ...

    def delete_meeting(self, key: str) -> bool: ...

    def user_meeting_entries(self, user_id: str) -> list[tuple[str, str]]: ...

    def delete_user_meeting_entries(self, user_id: str, key: str) -> int: ...

    def remove_user_from_meeting(self, key: str, user_id: str) -> bool: ...

    def delete_calendar_link_if_present(self, calendar_id: str, event_id: str) -> bool: ...


class ForgetRepository(MeetingsAndSessions, Calendars, Erasure, UserBotSettings, Protocol):
    """What forgetting reads and deletes."""


class Storage(Repository, CalendarRepository, ForgetRepository, Protocol):
    """The whole table: every port above, as the composition root builds it."""


@dataclass(frozen=True)
class FeedRead:
    """One read of an ICS feed: unchanged since ``etag`` (HTTP 304), or its occurrences in the window."""

    not_modified: bool
    etag: str | None
    events: tuple[CalendarEvent, ...] = ()
    # Series left out because they could not be read; the rest of the feed is in ``events``.
    skipped_series: tuple[SkippedSeries, ...] = ()


class IcsFeeds(Protocol):
    """Fetch and parse ICS feeds. Raises CalendarSourceError; never puts the feed URL in a message."""

    def read(
        self,
        url: str,
        etag: str | None,
        *,
        calendar_id: str,
        window_start: datetime,
        window_end: datetime,
        owner_email: str | None,
    ) -> FeedRead: ...


@dataclass(frozen=True)
class GoogleSync:
    """Every item of one Google sync and the token for the next; ``full`` when it started without one."""

    events: tuple[CalendarEvent, ...]
    next_sync_token: str
    full: bool


class GoogleCalendars(Protocol):
    """Google Calendar for connected calendars (the app's OAuth client and each calendar's sealed grant,
    see CalendarGrants).

    Raises CalendarSourceError, SyncTokenExpired on 410 Gone, and AccessRevoked when the grant stopped
    working.
    """

    def sync(self, calendar: Calendar, sync_token: str | None, *, time_min: datetime) -> GoogleSync: ...

    def watch(
        self, calendar: Calendar, *, channel_id: str, token: str, address: str, ttl_seconds: int
    ) -> PushChannel: ...

    def stop(self, calendar: Calendar, channel: PushChannel) -> None: ...


class CalendarGrants(Protocol):
    """The OAuth grants behind connected calendars.

    The user's app holds one OAuth client per provider (stack configuration in SSM SecureStrings);
    each connected calendar holds its user's refresh token, sealed with the stack's KMS key. Nothing
    here ever puts a token or a secret in a message.
    """

    def client(self, kind: CalendarKind) -> OAuthClient:
        """The app's OAuth client for Google or Microsoft; raises CalendarSourceError when not configured."""
        ...

    def seal(self, refresh_token: str, *, calendar_id: str) -> str:
        """Encrypt a refresh token for storage on the item of calendar ``calendar_id``.

        The seal is bound to that calendar: copied onto another calendar's item it does not open.
        """
        ...

    def refresh_token(self, calendar: Calendar) -> str:
        """Open the calendar's sealed refresh token; raises CalendarSourceError when it cannot."""
        ...

    def store_rotated(self, calendar: Calendar, refresh_token: str) -> None:
        """The provider returned a new refresh token: seal and store it at once (the old one may stop working)."""
        ...


@dataclass(frozen=True)
class DeltaSync:
    """One finished round of Graph's ``calendarView/delta``: what changed, and the link for the next round.

    ``full`` when the round started without a delta link: ``events`` then holds every occurrence in
    ``[window_start, window_end)``, and a stored link in that range that is absent is gone.
    """

    events: tuple[CalendarEvent, ...]
    delta_link: str
    full: bool
    window_start: datetime
    window_end: datetime
    # Incremental rounds: for each series with an occurrence in ``events``, the ids of all its
    # occurrences in the window now (Graph reports a deleted occurrence nowhere else).
    series_occurrences: Mapping[str, frozenset[str]] = field(default_factory=dict)


class MicrosoftCalendars(Protocol):
    """Microsoft 365 calendars through Microsoft Graph (delegated grants; see CalendarGrants).

    Raises CalendarSourceError (``retryable`` for 5xx, 429 and timeouts, with the wait Graph asked
    for in the message), SyncTokenExpired when the delta link is no longer known, and AccessRevoked
    when the grant stopped working.
    """

    def sync(
        self, calendar: Calendar, delta_link: str | None, *, window_start: datetime, window_end: datetime
    ) -> DeltaSync:
        """Follow ``delta_link`` to its end (or start a new round over the window when it is None)."""
        ...

    def subscribe(
        self,
        calendar: Calendar,
        *,
        client_state: str,
        notification_url: str,
        lifecycle_url: str,
        expires_at: datetime,
    ) -> PushChannel:
        """Create a change-notification subscription on the user's events (Graph validates the URLs first)."""
        ...

    def renew(self, calendar: Calendar, channel: PushChannel, *, expires_at: datetime) -> PushChannel:
        """Extend a subscription (this also reauthorizes it); CalendarSourceError with status 404 when it is gone."""
        ...

    def unsubscribe(self, calendar: Calendar, channel: PushChannel) -> None:
        """Delete a subscription; one Graph no longer knows is fine."""
        ...


# --- downstream events and live transcripts ----------------------------------------------------


class EventPublisher(Protocol):
    """Publishes events to the event bus (EventBridge); only the stream publisher uses it."""

    def publish(self, entries: Sequence[Mapping[str, Any]]) -> set[str]:
        """Publish entries (``{"detail_type", "detail"}``, see domain/notifications.py).

        Returns the ``event_id`` of every entry the bus accepted; raises when it could not be
        reached at all.
        """
        ...


class LiveSegmentStore(Protocol):
    """Final live-transcript segments kept under their session (DynamoDB in production)."""

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
        """Store a segment unless the same one is stored; True when it was new.

        ``meeting_key``, ``bot_id`` (the session's) and ``received_at`` go on the item for the
        ``LiveTranscriptSegment`` event the stream publisher derives from it."""
        ...

    def segments(self, session_id: str) -> Iterator[LiveSegment]:
        """Every stored segment of the session, oldest first, page by page."""
        ...
