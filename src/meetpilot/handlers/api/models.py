"""The management API's request and response bodies (pydantic), which its OpenAPI document shows."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator

from meetpilot.app.calendar_decisions import DecisionView, Outcome
from meetpilot.app.queries import SessionSummary
from meetpilot.domain.bot_settings import BotSettings, EffectiveBot
from meetpilot.domain.calendar import DEFAULT_OPT_OUT_WORD, Calendar, CalendarKind, CalendarRules
from meetpilot.domain.clock import to_iso
from meetpilot.domain.decisions import OverrideScope
from meetpilot.domain.links import without_passcode
from meetpilot.domain.meeting import Meeting
from meetpilot.domain.punctuality import platform_label
from meetpilot.domain.session import Session
from meetpilot.errors import InvalidInput

if TYPE_CHECKING:
    from meetpilot.app.forget import ForgetReport

# Times far outside this window are typing mistakes, and date arithmetic on them overflows.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _unicode_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it contains an unpaired surrogate)") from None
    return value


def _plausible_time(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be a time between the years 2000 and 2100")
    return value.astimezone(UTC)


Text = Annotated[str, AfterValidator(_unicode_text)]
Time = Annotated[AwareDatetime, AfterValidator(_plausible_time)]


def meeting_id(key: str) -> str:
    """A meeting's id in URLs: its dedup key (a URL and a minute) in base64url, so it fits a path segment."""
    return base64.urlsafe_b64encode(key.encode()).decode("ascii").rstrip("=")


def meeting_key_of(meeting_id_: str) -> str | None:
    """The dedup key a meeting id stands for, or None when it is not one."""
    try:
        return base64.urlsafe_b64decode(meeting_id_ + "=" * (-len(meeting_id_) % 4)).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _iso(value: datetime | None) -> str | None:
    return to_iso(value) if value else None


class ErrorBody(BaseModel):
    """Every error answer: what went wrong and what to do about it."""

    message: str = Field(description="a sentence a person can act on; for invalid input it names the field")


# --- meetings ---------------------------------------------------------------------------------


class MeetingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meeting_url: Text = Field(
        min_length=1,
        max_length=2048,
        description="the meeting link (Zoom, Google Meet, Teams, Webex)",
        examples=["https://meet.google.com/abc-defg-hij"],
    )
    start: Time = Field(description="when the meeting starts, ISO-8601 with a zone", examples=["2026-06-01T15:00:00Z"])
    end: Time | None = Field(None, description="when it ends (default: an hour after the start)")
    title: Text = Field("", max_length=300)
    user_id: Text | None = Field(None, min_length=1, max_length=200, description="who asked for the recording")


class MeetingOut(BaseModel):
    meeting_id: str = Field(description="the id used in /v1/meetings/{meeting_id}")
    meeting_key: str = Field(
        description="the dedup key: normalised link (a passcode only as a digest) and start minute (UTC)"
    )
    meeting_url: str = Field(description="the meeting link without its passcode: only the bot provider gets that")
    start: str
    end: str | None = None
    title: str = ""
    user_ids: list[str] = []
    calendar_event_ids: list[str] = []
    desired: str = Field(description="record or cancelled")
    dispatch_state: str = Field(description="pending, claimed, dispatched or failed")
    dispatch_at: str | None = None
    session_id: str | None = None
    bot_id: str | None = None
    failure_reason: str | None = None
    requested_directly: bool = Field(description="someone asked for it through the API or CLI (not only calendars)")

    @classmethod
    def of(cls, m: Meeting) -> MeetingOut:
        return cls(
            meeting_id=meeting_id(m.meeting_key),
            meeting_key=m.meeting_key,
            meeting_url=without_passcode(m.meeting_url),
            start=to_iso(m.start),
            end=_iso(m.end),
            title=m.title,
            user_ids=list(m.user_ids),
            calendar_event_ids=list(m.calendar_event_ids),
            desired=m.desired.value,
            dispatch_state=m.dispatch_state.value,
            dispatch_at=_iso(m.dispatch_at),
            session_id=m.session_id,
            bot_id=m.bot_id,
            failure_reason=m.failure_reason,
            requested_directly=m.adhoc,
        )


class MeetingCancelled(BaseModel):
    meeting_id: str
    meeting_key: str
    result: str = Field(
        description="cancelled (no bot yet), bot_cancelled, bot_removed, bot_left_in_meeting, no_bot, "
        "already_over or already_cancelled"
    )


# --- sessions ---------------------------------------------------------------------------------


class SessionSummaryOut(BaseModel):
    session_id: str
    meeting_id: str
    meeting_key: str
    bot_id: str | None = None
    status: str
    outcome: str | None = None
    outcome_reason: str | None = None
    needs_review: bool = False
    transcript_state: str | None = None
    meeting_start: str | None = None
    created_at: str | None = None

    @classmethod
    def of(cls, s: SessionSummary) -> SessionSummaryOut:
        return cls(
            session_id=s.session_id,
            meeting_id=meeting_id(s.meeting_key),
            meeting_key=s.meeting_key,
            bot_id=s.bot_id,
            status=s.status,
            outcome=s.outcome,
            outcome_reason=s.outcome_reason,
            needs_review=s.needs_review,
            transcript_state=s.transcript_state,
            meeting_start=_iso(s.meeting_start),
            created_at=_iso(s.created_at),
        )


class SessionPage(BaseModel):
    items: list[SessionSummaryOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= (with the same filters) for the next page")


class SessionOut(BaseModel):
    session_id: str
    meeting_id: str
    meeting_key: str
    bot_id: str | None = None
    status: str
    stop_reason: str | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    needs_review: bool = False
    transcript_mode: str
    transcript_state: str
    transcript: dict[str, Any] = Field(
        default_factory=dict, description="where the transcript is stored and its figures (words, turns, speakers)"
    )
    unknown_events: int = 0
    platform: str = Field(description="Google Meet, Zoom, Teams, Webex or Other (from the meeting link)")
    join_lateness_seconds: float | None = Field(
        None,
        description="the bot's arrival (waiting room, else the call) minus the meeting's start, by the "
        "provider's timestamps; negative when early; null until known (or when the provider sent no time)",
    )
    admission_wait_seconds: float | None = Field(
        None, description="from the waiting room to the call; 0 when let straight in; null until admitted"
    )
    history: list[dict[str, Any]] = Field(description="every accepted event, oldest first (capped)")
    created_at: str | None = None
    updated_at: str | None = None
    meeting: MeetingOut | None = None

    @classmethod
    def of(cls, s: Session, meeting: Meeting | None) -> SessionOut:
        return cls(
            session_id=s.session_id,
            meeting_id=meeting_id(s.meeting_key),
            meeting_key=s.meeting_key,
            bot_id=s.bot_id,
            status=s.status.value,
            stop_reason=s.stop_reason.value if s.stop_reason else None,
            outcome=s.outcome.value if s.outcome else None,
            outcome_reason=s.outcome_reason,
            needs_review=s.needs_review,
            transcript_mode=s.transcript_mode.value,
            transcript_state=s.transcript_state.value,
            transcript=dict(s.transcript),
            unknown_events=s.unknown_events,
            platform=platform_label(s.meeting_key),
            join_lateness_seconds=_seconds(s.join_lateness_ms),
            admission_wait_seconds=_seconds(s.admission_wait_ms),
            history=list(s.history),
            created_at=_iso(s.created_at),
            updated_at=_iso(s.updated_at),
            meeting=MeetingOut.of(meeting) if meeting else None,
        )


class TranscriptLinkOut(BaseModel):
    session_id: str
    bot_id: str | None = None
    format: str
    url: str = Field(description="a presigned download link; it stops working at expires_at")
    expires_at: str


# --- calendars --------------------------------------------------------------------------------


MAX_REFRESH_TOKEN = 8192
_TOKEN_SCHEMA: dict[str, JsonValue] = {"format": "password", "writeOnly": True}


class CalendarCreate(BaseModel):
    """Connect a calendar: Google and Microsoft with the user's refresh token, ICS with its feed address."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["google", "microsoft", "ics"] = Field(description="where the calendar lives")
    user_id: Text = Field(min_length=1, max_length=200, description="whose calendar it is")
    refresh_token: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_REFRESH_TOKEN,
        repr=False,
        json_schema_extra=_TOKEN_SCHEMA,
        description="google and microsoft: the refresh token your app got when the user consented (offline "
        "access); stored encrypted, never shown again",
    )
    feed_url: Text | None = Field(
        None,
        min_length=1,
        max_length=2048,
        repr=False,
        description="ics: the calendar's secret iCal (ICS) address; it is stored, never shown again",
    )
    calendar_id: Text | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="google and microsoft: the calendar at the provider (default: primary, the user's main one)",
    )
    owner_email: Text | None = Field(None, max_length=320, description="the owner's email, to honour their declines")
    label: Text = Field("", max_length=200)
    rules: RulesBody | None = Field(None, description="which meetings get a bot (default: every one with a link)")
    bot: BotSettingsBody | None = Field(None, description="this calendar's bot settings, over the user's")


class CalendarPatch(BaseModel):
    """Change a calendar; a new refresh token reconnects it (and resyncs it in full)."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_REFRESH_TOKEN,
        repr=False,
        json_schema_extra=_TOKEN_SCHEMA,
        description="a new refresh token from the user's consent: reconnects the calendar",
    )
    label: Text | None = Field(None, max_length=200)
    owner_email: Text | None = Field(None, max_length=320, description='the owner\'s email; "" clears it')
    rules: RulesBody | None = Field(None, description="new rules: which meetings get a bot (replaces the old ones)")
    bot: BotSettingsBody | None = Field(None, description="new bot settings for this calendar (replace the old ones)")


class CalendarOut(BaseModel):
    """A calendar as the API shows it: never its refresh token or feed address."""

    calendar_id: str
    provider: str = Field(description="google, microsoft or ics")
    kind: str = Field(description="the same as provider (kept for older clients)")
    user_id: str
    status: str = Field(description="connected, disconnected (its grant stopped working: reconnect it) or removing")
    disconnected_reason: str | None = Field(None, description="why the grant stopped working, in one line")
    disconnected_at: str | None = None
    provider_calendar_id: str | None = Field(None, description="google and microsoft: the calendar at the provider")
    owner_email: str | None = None
    label: str = ""
    created_at: str | None = None
    last_synced_at: str | None = None
    last_full_sync_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    channel_expires_at: str | None = Field(None, description="when the push channel or subscription expires")
    removing: bool = False
    rules: RulesBody | None = None
    bot: BotSettingsBody | None = None
    dry_run: bool | None = Field(None, description="PATCH with dry_run=true: nothing was stored")
    changes: list[DecisionChangeOut] | None = Field(
        None, description="PATCH with dry_run=true: the decisions of the next 14 days that would change"
    )

    @classmethod
    def of(cls, c: Calendar) -> CalendarOut:
        return cls(
            calendar_id=c.calendar_id,
            provider=c.kind.value,
            kind=c.kind.value,
            user_id=c.user_id,
            status=c.status,
            disconnected_reason=c.disconnected_reason,
            disconnected_at=_iso(c.disconnected_at),
            provider_calendar_id=c.source_calendar_id if c.kind is not CalendarKind.ICS else None,
            owner_email=c.owner_email,
            label=c.label,
            created_at=_iso(c.created_at),
            last_synced_at=_iso(c.last_synced_at),
            last_full_sync_at=_iso(c.last_full_sync_at),
            last_error=c.last_error,
            last_error_at=_iso(c.last_error_at),
            channel_expires_at=_iso(c.channel_expires_at),
            removing=c.removing,
            rules=RulesBody.of(c.filters),
            bot=BotSettingsBody.of(c.bot),
        )


class CalendarList(BaseModel):
    items: list[CalendarOut]


class CalendarRemoved(BaseModel):
    calendar_id: str
    actions: dict[str, int] = Field(description="what removing it did to its meetings, e.g. {'cancelled': 2}")


# --- forgetting -------------------------------------------------------------------------------


class ForgetRequest(BaseModel):
    """Exactly one of the three: what to forget."""

    model_config = ConfigDict(extra="forbid")

    bot_id: Text | None = Field(None, min_length=1, max_length=200, description="a bot, as sessions show it")
    meeting_id: Text | None = Field(None, min_length=1, max_length=4096, description="a meeting's id")
    user_id: Text | None = Field(None, min_length=1, max_length=200, description="a user, as meetings name them")

    @model_validator(mode="after")
    def _exactly_one(self) -> ForgetRequest:
        if sum(v is not None for v in (self.bot_id, self.meeting_id, self.user_id)) != 1:
            raise ValueError("give exactly one of bot_id, meeting_id or user_id")
        return self


class ForgetOut(BaseModel):
    target: str = Field(description="bot, meeting or user")
    id: str = Field(description="the id that was forgotten (for a meeting, its dedup key)")
    complete: bool = Field(description="false when something is left; the same request again finishes it")
    items_deleted: int = Field(description="DynamoDB items deleted (index entries go with their items)")
    sessions_deleted: int
    meetings_deleted: int
    meetings_kept_for_others: int = Field(description="shared meetings that only lost this user")
    calendars_removed: int
    transcript_versions_deleted: int = Field(description="S3 object versions and delete markers deleted")
    bots_withdrawn: int = Field(description="bots taken out of their meetings before their data went")
    provider: dict[str, str] = Field(description="per bot id, what MeetStream said to deleting its data")
    unfinished: list[str] = Field(description="what is left and why, when complete is false")

    @classmethod
    def of(cls, r: ForgetReport) -> ForgetOut:
        return cls(
            target=r.target,
            id=r.ident,
            complete=r.complete,
            items_deleted=r.items_deleted,
            sessions_deleted=r.sessions_deleted,
            meetings_deleted=r.meetings_deleted,
            meetings_kept_for_others=r.meetings_kept_for_others,
            calendars_removed=r.calendars_removed,
            transcript_versions_deleted=r.transcript_versions_deleted,
            bots_withdrawn=r.bots_withdrawn,
            provider=dict(r.provider),
            unfinished=list(r.unfinished),
        )


# --- calendar rules, bot settings, decisions, overrides ---------------------------------------

Keyword = Annotated[str, Field(min_length=1, max_length=100)]
TransportId = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")]


class RulesBody(BaseModel):
    """Which meetings of a calendar get a bot. Every rule that is set must pass; all off records
    every meeting with a link (the default)."""

    model_config = ConfigDict(extra="forbid")

    external_only: bool = Field(False, description="only meetings with someone outside the owner's domain(s)")
    internal_domains: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=50, description="more domains that count as the owner's own"
    )
    organizer_only: bool = Field(False, description="only meetings the owner organises")
    accepted_only: bool = Field(False, description="only meetings the owner accepted (or organises)")
    min_attendees: int = Field(0, ge=0, le=10_000, description="at least this many people, organiser included")
    include_keywords: list[Keyword] = Field(
        default_factory=list, max_length=50, description="the title has at least one of these (any case)"
    )
    exclude_keywords: list[Keyword] = Field(
        default_factory=list, max_length=50, description="the title has none of these (any case)"
    )
    opt_out_word: Text = Field(
        DEFAULT_OPT_OUT_WORD, max_length=100, description="a title with it gets no bot; empty turns it off"
    )

    def to_domain(self) -> CalendarRules:
        return CalendarRules(
            external_only=self.external_only,
            internal_domains=tuple(self.internal_domains),
            organizer_only=self.organizer_only,
            accepted_only=self.accepted_only,
            min_attendees=self.min_attendees,
            include_keywords=tuple(self.include_keywords),
            exclude_keywords=tuple(self.exclude_keywords),
            opt_out_word=self.opt_out_word,
        )

    @classmethod
    def of(cls, rules: CalendarRules) -> RulesBody:
        return cls.model_validate(rules.as_dict())


class AutomaticLeave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    waiting_room_timeout: int | None = Field(None, ge=10, le=86_400, description="seconds in a waiting room")
    everyone_left_timeout: int | None = Field(None, ge=10, le=86_400, description="seconds alone in the call")
    voice_inactivity_timeout: int | None = Field(None, ge=10, le=86_400, description="seconds of silence")


class BotSettingsBody(BaseModel):
    """Bot settings at one level; a field left out (or null) is taken from the level below: event
    override > calendar > user > the stack's configuration."""

    model_config = ConfigDict(extra="forbid")

    bot_name: Text | None = Field(None, min_length=1, max_length=100, examples=["Acme Notetaker"])
    transcript_provider: TransportId | None = Field(
        None, description="a MeetStream transcription provider key (deepgram, assemblyai, ...), or none"
    )
    live_transcripts: bool | None = Field(None, description="ask for live transcription")
    automatic_leave: AutomaticLeave | None = None

    def to_domain(self) -> BotSettings:
        leave = self.automatic_leave.model_dump(exclude_none=True) if self.automatic_leave else {}
        try:
            return BotSettings(
                bot_name=self.bot_name,
                transcript_provider=self.transcript_provider,
                live_transcripts=self.live_transcripts,
                automatic_leave=leave,
            )
        except InvalidInput as exc:
            raise InvalidInput(f"bot: {exc}") from None

    @classmethod
    def of(cls, settings: BotSettings) -> BotSettingsBody:
        return cls.model_validate(settings.as_dict())


class EffectiveBotOut(BaseModel):
    bot_name: str
    transcript_provider: str | None = None
    live_transcripts: bool
    automatic_leave: dict[str, int]
    sources: list[str] = Field(description="the levels that set something, highest first (event, calendar, user)")

    @classmethod
    def of(cls, bot: EffectiveBot) -> EffectiveBotOut:
        return cls(
            bot_name=bot.bot_name,
            transcript_provider=bot.transcript_provider,
            live_transcripts=bot.live_transcripts,
            automatic_leave=dict(bot.automatic_leave),
            sources=list(bot.sources),
        )


class UserBotSettingsOut(BaseModel):
    user_id: str
    bot: BotSettingsBody


class CalendarSettingsPatch(BaseModel):
    """New rules and/or bot settings for a calendar; a part left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    rules: RulesBody | None = None
    bot: BotSettingsBody | None = None


class DecisionOut(BaseModel):
    event_id: str
    title: str
    start: str | None = Field(None, description="null for all-day events")
    end: str | None = None
    recorded: bool
    reason: str = Field(
        description="why, in words support can read: recorded, no meeting link, declined by the calendar owner, "
        "cancelled, all-day event, a rule and what the event said (rule min-attendees 3: 2 attendees), "
        "override: skip, override: record, beyond the 14-day horizon, shared with <calendar>: one bot for this "
        "meeting, using <calendar>'s settings (the earliest-connected calendar that wants a meeting sets its "
        "bot), calendar disconnected (...)"
    )
    meeting_id: str | None = Field(None, description="the meeting it asks a bot for (/v1/meetings/{meeting_id})")
    meeting_key: str | None = None
    session_id: str | None = None
    bot_id: str | None = None
    settings_from: str | None = Field(None, description="the calendar whose settings the shared bot uses")
    recurring_event_id: str | None = None
    decided_at: str | None = None

    @classmethod
    def of(cls, view: DecisionView) -> DecisionOut:
        d = view.decision
        return cls(
            event_id=d.event_id,
            title=d.title,
            start=_iso(d.start),
            end=_iso(d.end),
            recorded=view.recorded,
            reason=view.reason,
            meeting_id=meeting_id(d.meeting_key) if d.meeting_key else None,
            meeting_key=d.meeting_key,
            session_id=view.session_id,
            bot_id=view.bot_id,
            settings_from=view.settings_from,
            recurring_event_id=d.recurring_event_id,
            decided_at=_iso(d.decided_at),
        )


class DecisionPageOut(BaseModel):
    calendar_id: str
    status: str = Field(description="connected, disconnected or removing")
    items: list[DecisionOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= (with the same from/to) for the next page")


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: bool = Field(description="true: record it whatever the rules say (it still needs a link); false: skip it")
    scope: OverrideScope = Field(
        OverrideScope.OCCURRENCE, description="occurrence (this event) or series (every instance of its series)"
    )
    bot: BotSettingsBody | None = Field(None, description="bot settings for this event, over the calendar's")


class OverrideOut(BaseModel):
    calendar_id: str
    target_id: str = Field(description="the event id, or the series id for scope series")
    scope: str
    record: bool | None = Field(None, description="null once the override is removed")
    bot: BotSettingsBody | None = None
    decisions: list[DecisionOut] = Field(description="the occurrences it applies to, decided again just now")


class OutcomeOut(BaseModel):
    recorded: bool
    reason: str
    bot: EffectiveBotOut | None = Field(None, description="the bot's settings, when this calendar's settings set it")

    @classmethod
    def of(cls, o: Outcome) -> OutcomeOut:
        return cls(recorded=o.recorded, reason=o.reason, bot=EffectiveBotOut.of(o.bot) if o.bot else None)


class DecisionChangeOut(BaseModel):
    event_id: str
    title: str
    start: str | None = None
    before: OutcomeOut
    after: OutcomeOut


class CalendarSettingsOut(BaseModel):
    calendar_id: str
    rules: RulesBody
    bot: BotSettingsBody
    dry_run: bool = Field(description="true: nothing was stored, changes says what would change")
    changes: list[DecisionChangeOut] = Field(
        default_factory=list, description="the decisions of the next 14 days that change (dry run only)"
    )
