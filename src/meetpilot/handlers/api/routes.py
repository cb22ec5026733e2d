"""The management HTTP API: meetings, sessions, transcripts and calendars under /v1, on Powertools'
HTTP API resolver with request validation. API Gateway checks the caller's SigV4 signature (AWS_IAM)
before a request gets here.

Every error is ``{"message": ...}``: 404 for unknown ids, 409 when the state does not allow the
request yet, 422 for invalid input (naming the field).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel

from meetpilot.app.bot_settings import set_user_bot_settings
from meetpilot.app.calendar_decisions import (
    OverrideResult,
    list_decisions,
    preview_calendar_settings,
    remove_override,
    set_override,
    update_calendar_settings,
)
from meetpilot.app.calendar_decisions import view_of as _decision_view
from meetpilot.app.calendars import (
    GrantDeps,
    GrantRegistration,
    IcsRegistration,
    Removal,
    add_ics_calendar,
    connect_calendar,
    reconnect_calendar,
    update_calendar,
)
from meetpilot.app.calendars import get_calendar as find_calendar
from meetpilot.app.calendars import list_calendars as registered
from meetpilot.app.calendars import remove_calendar as remove
from meetpilot.app.dispatch import MeetingRequest
from meetpilot.app.forget import ForgetDeps, forget_bot, forget_meeting, forget_user
from meetpilot.app.meeting_requests import request_meeting, withdraw_meeting_request
from meetpilot.app.queries import SessionFilter, session_view, transcript_link
from meetpilot.app.queries import list_sessions as list_page
from meetpilot.composition import Container, container
from meetpilot.domain.calendar import AccessRevoked, CalendarKind, CalendarSourceError
from meetpilot.domain.clock import to_iso
from meetpilot.domain.decisions import OverrideScope
from meetpilot.domain.status import BotStatus
from meetpilot.errors import (
    ConcurrentUpdate,
    Conflict,
    InvalidInput,
    MeetpilotError,
    NotFound,
    ProviderAuthError,
    ProviderError,
)
from meetpilot.handlers.api.models import (
    BotSettingsBody,
    CalendarCreate,
    CalendarList,
    CalendarOut,
    CalendarPatch,
    CalendarRemoved,
    CalendarSettingsOut,
    CalendarSettingsPatch,
    DecisionChangeOut,
    DecisionOut,
    DecisionPageOut,
    ErrorBody,
    ForgetOut,
    ForgetRequest,
    MeetingCancelled,
    MeetingCreate,
    MeetingOut,
    OutcomeOut,
    OverrideBody,
    OverrideOut,
    RulesBody,
    SessionOut,
    SessionPage,
    SessionSummaryOut,
    Time,
    TranscriptLinkOut,
    UserBotSettingsOut,
    meeting_key_of,
)
from meetpilot.handlers.api.models import meeting_id as id_of_meeting
from meetpilot.handlers.apigw import json_response
from meetpilot.handlers.observability import logger

API_PREFIX = "/v1"
TRANSCRIPT_LINK_SECONDS = 300

app = APIGatewayHttpResolver(enable_validation=True)


def _answers(ok: type[BaseModel], *codes: int) -> dict[int, Any]:
    """The OpenAPI responses of a route: 200 with ``ok``, and the error answers it may give."""
    return {200: {"description": "OK", "content": {"application/json": {"model": ok}}}, **_errors(*codes)}


def _errors(*codes: int) -> dict[int, Any]:
    text = {
        404: "unknown id",
        409: "not possible in the current state",
        422: "invalid input",
        502: "the bot provider did not answer",
    }
    return {code: {"description": text[code], "content": {"application/json": {"model": ErrorBody}}} for code in codes}


def _json(status: int, model: BaseModel) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model)


def _error(status: int, message: str) -> Response[Any]:
    return _json(status, ErrorBody(message=message))


# --- meetings ---------------------------------------------------------------------------------


def _key_or_404(meeting_id_: str) -> str:
    key = meeting_key_of(meeting_id_)
    if key is None:
        raise NotFound("no such meeting; the meeting_id is the one a create or a session answer shows")
    return key


@app.post(
    f"{API_PREFIX}/meetings",
    summary="Ask for a bot in a meeting",
    description="Stores the meeting (or adds the user to it) and plans its bot. 201 when new, 200 when known.",
    responses={
        201: {"description": "the meeting was new", "content": {"application/json": {"model": MeetingOut}}},
        200: {"description": "the meeting was known", "content": {"application/json": {"model": MeetingOut}}},
        **_errors(422),
    },
    tags=["meetings"],
)
def create_meeting(body: MeetingCreate) -> Response[MeetingOut]:
    c = container()
    request = MeetingRequest(
        meeting_url=body.meeting_url,
        start=body.start,
        end=body.end,
        title=body.title,
        user_id=body.user_id,
    )
    meeting, created = request_meeting(request, repo=c.repository, dispatch_queue=c.dispatch_queue, clock=c.clock)
    return _json(201 if created else 200, MeetingOut.of(meeting))


@app.get(
    f"{API_PREFIX}/meetings/<meeting_id>",
    summary="A meeting and where its bot is",
    responses=_answers(MeetingOut, 404, 422),
    tags=["meetings"],
)
def get_meeting(meeting_id: Annotated[str, Path(max_length=4096)]) -> MeetingOut:
    meeting = container().repository.get_meeting(_key_or_404(meeting_id))
    if meeting is None:
        raise NotFound("no such meeting; the meeting_id is the one a create or a session answer shows")
    return MeetingOut.of(meeting)


@app.post(
    f"{API_PREFIX}/meetings/<meeting_id>/cancel",
    summary="Cancel a meeting asked for directly",
    description="Withdraws the direct request and the bot (cancelled while scheduled, removed from the call). "
    "409 when calendar events still want the meeting.",
    responses=_answers(MeetingCancelled, 404, 409, 422, 502),
    tags=["meetings"],
)
def cancel_meeting(meeting_id: Annotated[str, Path(max_length=4096)]) -> MeetingCancelled:
    c = container()
    key = _key_or_404(meeting_id)
    result = withdraw_meeting_request(
        key,
        repo=c.repository,
        scheduler=c.dispatch_scheduler,
        provider=c.provider,
        clock=c.clock,
        remove_in_meeting=c.settings.remove_bot_on_cancel,
    )
    return MeetingCancelled(meeting_id=id_of_meeting(key), meeting_key=key, result=result)


# --- sessions ---------------------------------------------------------------------------------


@app.get(
    f"{API_PREFIX}/sessions",
    summary="List sessions, newest meeting first",
    description="Filter by one of status, user_id or calendar_event_id; from/to bound the meeting start "
    "(without any filter: 30 days back to 30 days ahead). Pages continue with next_cursor.",
    responses=_answers(SessionPage, 422),
    tags=["sessions"],
)
def list_sessions(
    status: Annotated[BotStatus | None, Query(description="only sessions in this status")] = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    calendar_event_id: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="<calendar id>#<event id>")
    ] = None,
    start_from: Annotated[Time | None, Query(alias="from", description="meeting start at or after")] = None,
    start_to: Annotated[Time | None, Query(alias="to", description="meeting start at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> SessionPage:

    c = container()
    flt = SessionFilter(
        status=status,
        user_id=user_id,
        calendar_event_id=calendar_event_id,
        start_from=start_from,
        start_to=start_to,
    )
    page = list_page(flt, listing=c.session_listing, clock=c.clock, limit=limit, cursor=cursor)
    return SessionPage(items=[SessionSummaryOut.of(s) for s in page.items], next_cursor=page.cursor)


@app.get(
    f"{API_PREFIX}/sessions/<session_id>",
    summary="A session with its full event history",
    description="The id may be the session id or the bot id.",
    responses=_answers(SessionOut, 404, 422),
    tags=["sessions"],
)
def get_session(session_id: Annotated[str, Path(max_length=200)]) -> SessionOut:
    view = session_view(session_id, repo=container().repository)
    return SessionOut.of(view.session, view.meeting)


# --- transcripts ------------------------------------------------------------------------------


@app.get(
    f"{API_PREFIX}/transcripts/<bot_id>",
    summary="A short-lived download link for a stored transcript",
    description=f"The id may be the bot id or the session id. The link works for {TRANSCRIPT_LINK_SECONDS} s.",
    responses=_answers(TranscriptLinkOut, 404, 409, 422),
    tags=["transcripts"],
)
def get_transcript_link(
    bot_id: Annotated[str, Path(max_length=200)],
    format: Annotated[str, Query(pattern="^(json|txt|vtt)$", description="json, txt or vtt")] = "txt",
) -> TranscriptLinkOut:

    c = container()
    link = transcript_link(
        bot_id, format, repo=c.repository, links=c.transcript_links, clock=c.clock, expires_in=TRANSCRIPT_LINK_SECONDS
    )
    return TranscriptLinkOut(
        session_id=link.session_id,
        bot_id=link.bot_id,
        format=link.format,
        url=link.url,
        expires_at=to_iso(link.expires_at),
    )


# --- calendars --------------------------------------------------------------------------------


def _grant_deps(c: Container) -> GrantDeps:
    return GrantDeps(
        repo=c.repository,
        grants=c.calendar_grants,
        google=lambda: c.google_calendars,
        microsoft=lambda: c.microsoft_calendars,
        sync_queue=c.calendar_sync_queue,
        clock=c.clock,
        public_base_url=c.settings.public_base_url,
        new_id=lambda: str(uuid.uuid4()),
        new_token=lambda: secrets.token_urlsafe(32),
        config=c.calendar_sync_deps.config,
    )


def _removal(c: Container, calendar_id: str) -> Removal:
    return remove(
        calendar_id,
        deps=c.calendar_sync_deps,
        google=lambda: c.google_calendars,
        microsoft=lambda: c.microsoft_calendars,
    )


@app.post(
    f"{API_PREFIX}/calendars",
    summary="Connect a calendar",
    description="Google and Microsoft 365 with the refresh token the user's consent gave your app "
    "(stored encrypted, never shown); ICS with its feed address. Its meetings get bots from its first "
    "sync on. 201 when new; 200 when the same user, provider and calendar is connected already (a new "
    "token replaces the stored one, and reconnects a disconnected calendar, once a new channel or "
    "subscription opened with it proves it works; a refused one is a 422 and changes nothing).",
    responses={
        201: {"description": "connected", "content": {"application/json": {"model": CalendarOut}}},
        200: {"description": "already connected", "content": {"application/json": {"model": CalendarOut}}},
        **_errors(409, 422, 502),
    },
    tags=["calendars"],
)
def add_calendar(body: CalendarCreate) -> Response[CalendarOut]:
    c = container()
    provider = body.provider
    if provider == "ics":
        for name in ("refresh_token", "calendar_id"):
            if getattr(body, name) is not None:
                raise InvalidInput(f"{name}: not taken for provider ics; send feed_url")
        if body.feed_url is None:
            raise InvalidInput("feed_url: is required for provider ics")
        done = add_ics_calendar(
            IcsRegistration(
                user_id=body.user_id,
                feed_url=body.feed_url,
                owner_email=body.owner_email,
                label=body.label,
                **calendar_settings_of(body.rules, body.bot),
            ),
            repo=c.repository,
            sync_queue=c.calendar_sync_queue,
            clock=c.clock,
            check_address=c.feed_guard.vet_url,
        )
    else:
        if body.feed_url is not None:
            raise InvalidInput(f"feed_url: not taken for provider {provider}; send refresh_token")
        if body.refresh_token is None:
            raise InvalidInput(f"refresh_token: is required for provider {provider}")
        done = connect_calendar(
            GrantRegistration(
                kind=CalendarKind(provider),
                user_id=body.user_id,
                refresh_token=body.refresh_token,
                source_calendar_id=body.calendar_id or "primary",
                owner_email=body.owner_email,
                label=body.label,
                **calendar_settings_of(body.rules, body.bot),
            ),
            deps=_grant_deps(c),
        )
    logger.info(
        "calendar connected" if done.created else "calendar already connected",
        extra={"calendar_id": done.calendar.calendar_id, "provider": provider},
    )
    return _json(201 if done.created else 200, CalendarOut.of(done.calendar))


@app.get(
    f"{API_PREFIX}/calendars",
    summary="List connected calendars",
    description="With their provider, status (connected, disconnected, removing), last sync and last error.",
    responses=_answers(CalendarList, 422),
    tags=["calendars"],
)
def list_calendars(user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None) -> CalendarList:
    return CalendarList(items=[CalendarOut.of(cal) for cal in registered(repo=container().repository, user_id=user_id)])


@app.get(
    f"{API_PREFIX}/calendars/<calendar_id>",
    summary="A calendar: provider, status, why it is disconnected, last sync and error",
    responses=_answers(CalendarOut, 404, 422),
    tags=["calendars"],
)
def get_calendar(calendar_id: Annotated[str, Path(max_length=200)]) -> CalendarOut:
    return CalendarOut.of(find_calendar(calendar_id, repo=container().repository))


@app.patch(
    f"{API_PREFIX}/calendars/<calendar_id>",
    summary="Change or reconnect a calendar, or preview new rules",
    description="A new refresh_token reconnects a Google or Microsoft calendar: it is stored encrypted, the "
    "disconnection cleared, the push channel or subscription opened again and a full resync queued. "
    "label and owner_email change just those. New rules apply at once to every event ahead (from what the last "
    "sync saw) and at each sync; bot settings apply to every bot created from now on (event override > calendar > "
    "user > stack; a meeting on several calendars takes the settings of the earliest-connected one). With "
    "dry_run=true (rules and bot only) nothing is stored: changes lists each decision of the next 14 days that "
    "would change, before and after.",
    responses=_answers(CalendarOut, 404, 409, 422, 502),
    tags=["calendars"],
)
def change_calendar(
    calendar_id: Annotated[str, Path(max_length=200)],
    body: CalendarPatch,
    dry_run: Annotated[bool, Query(description="only say what new rules or bot settings would change")] = False,
) -> CalendarOut:
    c = container()
    if not body.model_fields_set:
        raise InvalidInput("body: give at least one of refresh_token, label, owner_email, rules or bot")
    settings = CalendarSettingsPatch(rules=body.rules, bot=body.bot)
    if dry_run:
        others = sorted(body.model_fields_set - {"rules", "bot"})
        if others:
            raise InvalidInput(f"{others[0]}: dry_run previews rules and bot only; send it without dry_run")
        preview = change_calendar_settings(calendar_id, settings, dry_run=True)
        shown = CalendarOut.of(find_calendar(calendar_id, repo=c.repository))
        return shown.model_copy(
            update={"rules": preview.rules, "bot": preview.bot, "dry_run": True, "changes": preview.changes}
        )
    calendar = find_calendar(calendar_id, repo=c.repository)
    if body.label is not None or body.owner_email is not None:
        calendar = update_calendar(calendar_id, repo=c.repository, label=body.label, owner_email=body.owner_email)
    if body.rules is not None or body.bot is not None:
        change_calendar_settings(calendar_id, settings, dry_run=False)
        calendar = find_calendar(calendar_id, repo=c.repository)
    if body.refresh_token is not None:
        calendar = reconnect_calendar(calendar_id, body.refresh_token, deps=_grant_deps(c))
        logger.info("calendar reconnected", extra={"calendar_id": calendar_id, "provider": calendar.kind.value})
    return CalendarOut.of(calendar).model_copy(update={"dry_run": False})


@app.delete(
    f"{API_PREFIX}/calendars/<calendar_id>",
    summary="Remove a calendar",
    description="Stops its Google push channel or deletes its Graph subscription; meetings only it asked for "
    "lose their schedule or bot. 409 while it is being synced.",
    responses=_answers(CalendarRemoved, 404, 409, 422, 502),
    tags=["calendars"],
)
def remove_calendar(calendar_id: Annotated[str, Path(max_length=200)]) -> CalendarRemoved:
    removal = _removal(container(), calendar_id)
    return CalendarRemoved(calendar_id=calendar_id, actions=dict(removal.actions))


# --- calendar rules, bot settings, decisions, overrides ---------------------------------------


def calendar_settings_of(rules: RulesBody | None, bot: BotSettingsBody | None) -> dict[str, Any]:
    """The registration fields for rules and bot settings given at POST /v1/calendars (any provider)."""
    out: dict[str, Any] = {}
    if rules is not None:
        out["filters"] = rules.to_domain()
    if bot is not None:
        out["bot"] = bot.to_domain()
    return out


def change_calendar_settings(calendar_id: str, body: CalendarSettingsPatch, *, dry_run: bool) -> CalendarSettingsOut:
    """The rules/bot part of PATCH /v1/calendars/{id}: applied at once, or only previewed with dry_run."""
    c = container()
    rules = body.rules.to_domain() if body.rules is not None else None
    bot = body.bot.to_domain() if body.bot is not None else None
    deps = c.calendar_sync_deps
    if dry_run:
        current = deps.repo.get_calendar(calendar_id)
        changes = preview_calendar_settings(calendar_id, deps=deps, rules=rules, bot=bot)
        assert current is not None  # the preview raised NotFound otherwise
        return CalendarSettingsOut(
            calendar_id=calendar_id,
            rules=RulesBody.of(rules or current.filters),
            bot=BotSettingsBody.of(bot or current.bot),
            dry_run=True,
            changes=[
                DecisionChangeOut(
                    event_id=ch.decision.event_id,
                    title=ch.decision.title,
                    start=to_iso(ch.decision.start) if ch.decision.start else None,
                    before=OutcomeOut.of(ch.before),
                    after=OutcomeOut.of(ch.after),
                )
                for ch in changes
            ],
        )
    calendar = update_calendar_settings(calendar_id, deps=deps, rules=rules, bot=bot)
    return CalendarSettingsOut(
        calendar_id=calendar_id,
        rules=RulesBody.of(calendar.filters),
        bot=BotSettingsBody.of(calendar.bot),
        dry_run=False,
    )


@app.get(
    f"{API_PREFIX}/calendars/<calendar_id>/events",
    summary="Why each event of a calendar gets a bot or not",
    description="One decision per occurrence the last sync saw, by start: recorded (meeting, session and bot once "
    "known) or not, with the reason in plain words. from/to bound the start (default: a day back to 14 days "
    "ahead, at most 62 days); all-day events come first. Pages continue with next_cursor.",
    responses=_answers(DecisionPageOut, 404, 422),
    tags=["calendars"],
)
def list_calendar_events(
    calendar_id: Annotated[str, Path(max_length=200)],
    start_from: Annotated[Time | None, Query(alias="from", description="start at or after")] = None,
    start_to: Annotated[Time | None, Query(alias="to", description="start before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DecisionPageOut:
    c = container()
    page = list_decisions(
        calendar_id,
        repo=c.repository,
        clock=c.clock,
        start_from=start_from,
        start_to=start_to,
        limit=limit,
        cursor=cursor,
        horizon=c.calendar_sync_deps.config.horizon,
    )
    return DecisionPageOut(
        calendar_id=calendar_id,
        status=page.calendar.status,
        items=[DecisionOut.of(v) for v in page.items],
        next_cursor=page.cursor,
    )


def _override_out(calendar_id: str, result: OverrideResult, scope: OverrideScope, target: str) -> OverrideOut:
    c = container()
    calendar = c.repository.get_calendar(calendar_id)
    views = [_decision_view(d, calendar, c.repository) for d in result.decisions] if calendar else []
    o = result.override
    return OverrideOut(
        calendar_id=calendar_id,
        target_id=o.target_id if o else target,
        scope=scope.value,
        record=o.record if o else None,
        bot=BotSettingsBody.of(o.bot) if o and not o.bot.empty else None,
        decisions=[DecisionOut.of(v) for v in views],
    )


@app.put(
    f"{API_PREFIX}/calendars/<calendar_id>/events/<event_id>/override",
    summary="Record or skip one event (or its whole series), whatever the rules say",
    description="An override beats every rule (record still needs a meeting link and a start), follows the event "
    "when it moves, and goes when the event is cancelled or deleted. It applies at once. An occurrence's own "
    "override beats its series'. The optional bot settings are the highest level for this event's bot. The "
    "event id is the one GET .../events lists (URL-encode it).",
    responses=_answers(OverrideOut, 404, 409, 422, 502),
    tags=["calendars"],
)
def put_event_override(
    calendar_id: Annotated[str, Path(max_length=200)],
    event_id: Annotated[str, Path(max_length=1024)],
    body: OverrideBody,
) -> OverrideOut:
    c = container()
    event = unquote(event_id)
    result = set_override(
        calendar_id,
        event,
        record=body.record,
        scope=body.scope,
        deps=c.calendar_sync_deps,
        bot=body.bot.to_domain() if body.bot else None,
    )
    return _override_out(calendar_id, result, body.scope, event)


@app.delete(
    f"{API_PREFIX}/calendars/<calendar_id>/events/<event_id>/override",
    summary="Remove an event's override: the rules decide again, at once",
    responses=_answers(OverrideOut, 404, 422, 502),
    tags=["calendars"],
)
def delete_event_override(
    calendar_id: Annotated[str, Path(max_length=200)],
    event_id: Annotated[str, Path(max_length=1024)],
    scope: Annotated[OverrideScope, Query(description="occurrence or series")] = OverrideScope.OCCURRENCE,
) -> OverrideOut:
    c = container()
    event = unquote(event_id)
    result = remove_override(calendar_id, event, scope=scope, deps=c.calendar_sync_deps)
    return _override_out(calendar_id, result, scope, event)


@app.get(
    f"{API_PREFIX}/users/<user_id>/bot-settings",
    summary="A user's bot settings",
    description="The level between a calendar's settings and the stack's; empty when never set.",
    responses=_answers(UserBotSettingsOut, 422),
    tags=["users"],
)
def get_user_bot_settings(user_id: Annotated[str, Path(min_length=1, max_length=200)]) -> UserBotSettingsOut:
    user = unquote(user_id)
    return UserBotSettingsOut(user_id=user, bot=BotSettingsBody.of(container().repository.get_user_bot_settings(user)))


@app.put(
    f"{API_PREFIX}/users/<user_id>/bot-settings",
    summary="Set a user's bot settings",
    description="Replaces them (a field left out inherits the stack's). Bots created from now on use them, under "
    "their calendar's and event's settings.",
    responses=_answers(UserBotSettingsOut, 422),
    tags=["users"],
)
def put_user_bot_settings(
    user_id: Annotated[str, Path(min_length=1, max_length=200)], body: BotSettingsBody
) -> UserBotSettingsOut:
    c = container()
    user = unquote(user_id)
    stored = set_user_bot_settings(user, body.to_domain(), repo=c.repository, clock=c.clock)
    return UserBotSettingsOut(user_id=user, bot=BotSettingsBody.of(stored))


# --- forgetting -------------------------------------------------------------------------------

FORGET_ROUTE = f"{API_PREFIX}/forget"


@app.post(
    FORGET_ROUTE,
    summary="Forget a bot, a meeting or a user",
    description="Erases every item that names them or holds their words, every S3 version and delete marker "
    "of their transcripts, and MeetStream's copy; a meeting another user also has only loses the forgotten "
    "user. Answers what was deleted; when complete is false, the same request again finishes the job. "
    "Served by its own function, whose role holds the delete permissions.",
    responses=_answers(ForgetOut, 404, 409, 422),
    tags=["forget"],
)
def forget(body: ForgetRequest) -> ForgetOut:
    c = container()
    deps = ForgetDeps(
        repo=c.repository,
        store=c.transcript_store,
        provider=c.provider,
        scheduler=c.dispatch_scheduler,
        clock=c.clock,
        remove_calendar=lambda calendar_id: _removal(c, calendar_id).actions,
    )
    if body.bot_id is not None:
        report = forget_bot(body.bot_id, deps)
    elif body.meeting_id is not None:
        report = forget_meeting(_key_or_404(body.meeting_id), deps)
    else:
        assert body.user_id is not None
        report = forget_user(body.user_id, deps)
    logger.info(
        "forgot",
        extra={"target": report.target, "complete": report.complete, "items_deleted": report.items_deleted},
    )
    return ForgetOut.of(report)


# --- errors -----------------------------------------------------------------------------------


def _field(loc: Any) -> str:
    parts = [str(p) for p in (loc or ()) if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    problems = []
    for error in exc.errors()[:5]:
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "missing":
            message = "is required"
        problems.append(f"{_field(error.get('loc'))}: {message}")
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "; ".join(problems) or "the request is invalid")


_STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (InvalidInput, 422),
    (Conflict, 409),
    (ConcurrentUpdate, 409),
]


@app.exception_handler(MeetpilotError)
def _meetpilot_error(exc: MeetpilotError) -> Response[Any]:
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return _error(status, str(exc))
    if isinstance(exc, AccessRevoked):
        return _error(422, f"refresh_token: {exc}")
    if isinstance(exc, CalendarSourceError):
        # The calendar provider (or the grants' KMS and SSM) refused or failed; the message is safe to show.
        logger.warning("calendar source failed", extra={"error": type(exc).__name__, "detail": str(exc)})
        if exc.status == 404:
            return _error(422, f"calendar_id: {exc}")
        return _error(502, f"{exc}{'; try again in a minute' if exc.retryable else ''}")
    if isinstance(exc, ProviderAuthError):
        logger.error("provider refused the API key", extra={"error": type(exc).__name__})
        return _error(502, "MeetStream refused meetpilot's API key; check the SSM parameter that holds it")
    if isinstance(exc, ProviderError):
        return _error(502, f"MeetStream did not carry out the request ({exc}); try again in a minute")
    logger.error("management request failed", extra={"error": type(exc).__name__, "detail": str(exc)})
    return _error(500, "meetpilot could not carry out the request; the function's log has the details")


@app.not_found
def _no_route(_: Exception) -> Response[Any]:
    return _error(404, f"no such route; the API's routes are under {API_PREFIX}/ (see docs/openapi.json)")


def _body_problem(event: dict[str, Any]) -> str | None:
    """Why a request body is not the JSON every route takes, or None. Checked before Powertools sees
    it, which would try other encodings (form data) and fail on malformed ones."""
    raw = event.get("body")
    if not raw:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        return "send it as JSON (content-type: application/json)"
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8") if event.get("isBase64Encoded") else str(raw)
        json.loads(text)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return "is not valid JSON in UTF-8"
    return None


def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway (HTTP API, payload v2) event."""
    problem = _body_problem(event)
    if problem is not None:
        return json_response(422, ErrorBody(message=f"body: {problem}").model_dump())
    try:
        return app.resolve(event, context)
    except Exception:
        # API Gateway would answer a bare 500 for a crashed function; say where to look instead.
        logger.exception("management request failed")
        message = "meetpilot could not carry out the request; its log has the details"
        return json_response(500, ErrorBody(message=message).model_dump())
