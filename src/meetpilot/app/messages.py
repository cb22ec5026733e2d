"""The bodies that travel on meetpilot's queues (and from its schedules), one pydantic model each,
shared by every producer and every consumer.

The wire format is the one the dict-building code always sent: the same JSON keys, and only the
keys a producer set (``to_body`` dumps what was set, so a parsed message goes back out as it came,
and a schedule still sends ``{"meeting_key": ...}`` alone). Unknown keys are ignored, so a message
queued by an older or newer release is still read. A body that does not parse is an ``InvalidInput``
naming the field; the batch runner then fails the record, which reaches the DLQ after
maxReceiveCount, as before.

    job = read_message(TranscriptJob, record.body)
    queue.send(job.updated(attempt=job.attempt + 1).to_body(), delay_seconds=30)

Powertools' parser (``BatchProcessor(model=...)``) is not used: a record that fails its model is
turned into a batch failure inside the processor, before our handler sees it, so the reason (which
field) is logged at debug level only and never as an ``InvalidInput``; the dispatch queue carries two
shapes that are told apart by a key; and its record models cost about 35 ms more at cold start on
top of pydantic (the import of the bot-events handler, timed in a fresh process).

The price of the models: importing pydantic and this module adds about 55 ms to a handler's cold
import (fresh process, min of 9: ingest 86 -> 140 ms, bot events 120 -> 177 ms, transcript fetch
113 -> 168 ms, on a shared two-core machine). Validators are built on first use (``defer_build``),
so a function pays only for the models it reads or writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.errors import InvalidInput


def _utc(value: object) -> object:
    # The project's own reading of a timestamp (a zone required, Z or offset), not pydantic's.
    return parse_iso(value) if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


def _none_is_zero(value: object) -> object:
    return 0 if value is None else value


def _none_is_empty(value: object) -> object:
    return "" if value is None else value


def _or_none(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    try:
        return handler(value)
    except ValidationError:
        return None


def _or_empty(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    try:
        return handler(value)
    except ValidationError:
        return {}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


UtcTime = Annotated[datetime, BeforeValidator(_utc), PlainSerializer(to_iso, return_type=str)]
Text = Annotated[str, Field(min_length=1)]
Attempt = Annotated[int, Field(ge=0), BeforeValidator(_none_is_zero)]


class QueueMessage(BaseModel):
    """A queue body: frozen, unknown keys ignored, written back with the keys that were set."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON object to send (what ``MessageQueue.send`` takes)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def updated(self: M, **changes: Any) -> M:
        """The same message with ``changes``, which are then sent too."""
        return self.model_copy(update=changes)


M = TypeVar("M", bound=QueueMessage)


# --- dispatch queue ----------------------------------------------------------------------------


class MeetingSubmission(BaseModel):
    """An ad-hoc "record this meeting" request, as the management API and the CLI queue it."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    meeting_url: Annotated[str, AfterValidator(_not_blank)]
    start: UtcTime
    end: Annotated[UtcTime | None, BeforeValidator(_blank_is_none)] = None
    title: Annotated[str, BeforeValidator(_none_is_empty)] = ""
    user_id: Annotated[str | None, BeforeValidator(_blank_is_none)] = None


class SubmitMeeting(QueueMessage):
    """``{"submit": {...}}``: store the meeting, then schedule its dispatch or dispatch it now."""

    submit: MeetingSubmission

    @classmethod
    def of(
        cls,
        meeting_url: str,
        start: datetime,
        *,
        end: datetime | None = None,
        title: str = "",
        user_id: str | None = None,
    ) -> SubmitMeeting:
        """The message for one request; ``end`` and ``user_id`` travel only when given."""
        fields: dict[str, Any] = {"meeting_url": meeting_url, "start": start, "title": title}
        if end is not None:
            fields["end"] = end
        if user_id:
            fields["user_id"] = user_id
        return cls(submit=MeetingSubmission(**fields))


class DispatchMeeting(QueueMessage):
    """``{"meeting_key": ..., "attempt"?: n, "source"?: ...}``: dispatch this meeting's bot now.

    Sent by the meeting's schedule (the key alone), by calendar sync and the reconciler (with a
    source), and by the dispatcher itself to retry later (with the next attempt)."""

    meeting_key: Text
    attempt: Attempt = 0
    source: str | None = None

    def next_attempt(self) -> DispatchMeeting:
        return DispatchMeeting(meeting_key=self.meeting_key, attempt=self.attempt + 1)


DispatchMessage = SubmitMeeting | DispatchMeeting


def read_dispatch_message(body: str | bytes) -> DispatchMessage:
    """A dispatch-queue body: ``submit`` when present, else a meeting key."""
    data = _json_object(body, "dispatch")
    if "submit" in data:
        return _validate(SubmitMeeting, data, "dispatch")
    if "meeting_key" not in data:
        raise InvalidInput("dispatch message needs 'meeting_key' or 'submit'")
    return _validate(DispatchMeeting, data, "dispatch")


# --- bot-events queue --------------------------------------------------------------------------


class BotEventDelivery(QueueMessage):
    """One webhook delivery, stored raw by the ingest before it answered 2xx.

    Only ``body`` must fit: the ingest has acknowledged the delivery, and MeetStream does not send it
    again, so a malformed session id (read as absent: the event's own ids find the session) or audit
    field (dropped) never sends it to the DLQ."""

    body: str  # the delivery's raw body, read again by the worker
    # Set on a capability-token URL: only that session may be touched.
    session_id: Annotated[str | None, BeforeValidator(_blank_is_none), WrapValidator(_or_none)] = None
    auth: Annotated[str | None, WrapValidator(_or_none)] = None  # "token" or "signature"
    received_at: Annotated[UtcTime | None, WrapValidator(_or_none)] = None
    # The few headers kept for audit, never Authorization.
    headers: Annotated[dict[str, str], WrapValidator(_or_empty)] = Field(default_factory=dict)


# --- transcript queue --------------------------------------------------------------------------


class TranscriptJob(QueueMessage):
    """Fetch (or assemble) one session's transcript; retried with the next attempt until a budget."""

    session_id: Text
    bot_id: str | None = None
    attempt: Attempt = 0
    first_attempt_at: Annotated[UtcTime | None, BeforeValidator(_blank_is_none)] = None
    live_fallback: bool = False  # the post-call transcription failed: keep the live one as partial


# --- calendar-sync queue -----------------------------------------------------------------------


class CalendarSyncJob(QueueMessage):
    """Sync one calendar; ``reason`` says who asked (poll, push, registered, requested, retry_busy)."""

    calendar_id: Text
    reason: str | None = None
    full: bool = False  # re-list a Google calendar from scratch
    # Microsoft: renew the Graph subscription (PATCH, which also reauthorizes it) before syncing,
    # or create a new one (Graph removed it) and then run a full round.
    renew_subscription: bool = False
    resubscribe: bool = False


# --- reading -----------------------------------------------------------------------------------


def read_message(model: type[M], body: str | bytes) -> M:
    """Parse one queue body as ``model``; InvalidInput naming the field when it does not fit."""
    return _validate(model, _json_object(body, _label(model)), _label(model))


def _label(model: type[BaseModel]) -> str:
    labels: dict[type[BaseModel], str] = {
        BotEventDelivery: "bot-event",
        TranscriptJob: "transcript job",
        CalendarSyncJob: "calendar sync",
    }
    return labels.get(model, model.__name__)


def _json_object(body: str | bytes, label: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput(f"{label} message is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{label} message is not a JSON object")
    return data


def _validate(model: type[M], data: dict[str, Any], label: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{label} message: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """``'field.sub': what is wrong`` for each problem; never the value (it may be a webhook body)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        what = "is required" if error["type"] == "missing" else error["msg"][:120]
        parts.append(f"'{where}': {what.removeprefix('Value error, ')}")
    return "; ".join(parts)
