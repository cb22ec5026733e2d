"""The single-table DynamoDB repository for meetings and bot sessions.

Item layout (``pk`` / ``sk``):
- meeting  ``MEETING#<meeting key>`` / ``MEETING``
- session  ``SESSION#<session id>`` / ``SESSION`` (``bot_id`` feeds the ``by-bot`` index;
  ``attention_shard`` + ``attention_due`` feed the sparse ``attention`` index of the reconciler)
- calendar ``CALENDARS`` / ``CAL#<calendar id>`` (all in one partition: listing them is one Query)
- calendar event link ``CALENDAR#<calendar id>`` / ``EVENT#<event id>`` (``calendar_event_id`` =
  ``<calendar id>#<event id>`` feeds the ``by-calendar-event`` index; ``meeting_key`` says which
  meeting the event asks a bot for)
- Google push channel ``CHANNEL#<channel id>`` / ``CHANNEL`` (the push endpoint's one lookup)
- user's meeting ``USER#<user id>`` / ``MTG#<start>#<meeting key>`` (a user's meetings by start)
- live segment ``SESSION#<session id>`` / ``LIVE#...`` (``adapters.live_segments``)
Forgetting (``app.forget``) deletes by these keys: a session's whole partition, its meeting, the
meeting's user entries and calendar links; index entries follow their items.
Sessions also carry ``meeting_start`` and ``start_month`` for the listing indexes
``sessions-by-status`` and ``sessions-by-month`` (read by ``adapters.session_listing``).
Every session write is conditional on the version it read (optimistic concurrency).
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from meetpilot.app.ports import ClaimUnavailable
from meetpilot.domain.calendar import Calendar, CalendarFilters, CalendarKind, CalendarLink, PushChannel
from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.meeting import DesiredState, DispatchState, Meeting, start_of_meeting_key
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState, attention_due
from meetpilot.domain.status import BotStatus, Outcome, StopReason
from meetpilot.errors import ConcurrentUpdate

ATTENTION_SHARDS = 4  # spreads the reconciler's index over a few partitions
SESSION_TTL_DAYS = 400
LINK_TTL_DAYS = 30  # an event link outlives its meeting by this much, then DynamoDB expires it
CALENDARS_PK = "CALENDARS"

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_ddb(value: Any) -> Any:
    """Python value -> DynamoDB-ready value (floats become Decimals, empty sets are dropped)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_ddb(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_ddb(v) for v in value]
    return value


def _from_ddb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_ddb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_ddb(v) for v in value]
    if isinstance(value, set):
        return {_from_ddb(v) for v in value}
    return value


def _item(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_to_ddb(v)) for k, v in attrs.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_ddb(_de.deserialize(v)) for k, v in item.items()}


def _dt(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) and value else None


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def meeting_pk(key: str) -> str:
    return f"MEETING#{key}"


def session_pk(session_id: str) -> str:
    return f"SESSION#{session_id}"


def calendar_sk(calendar_id: str) -> str:
    return f"CAL#{calendar_id}"


def link_pk(calendar_id: str) -> str:
    return f"CALENDAR#{calendar_id}"


def link_sk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def channel_pk(channel_id: str) -> str:
    return f"CHANNEL#{channel_id}"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def user_meeting_sk(start: datetime, key: str) -> str:
    return f"MTG#{to_iso(start)}#{key}"


def session_index_attrs(meeting_key: str) -> dict[str, str]:
    """The keys of the session listing indexes: the meeting's start (from its dedup key) and its month.

    ``sessions-by-status`` (status, meeting_start) and ``sessions-by-month`` (start_month,
    meeting_start) list sessions without a Scan; a session whose key carries no start stays out.
    """
    start = start_of_meeting_key(meeting_key)
    if start is None:
        return {}
    return {"meeting_start": to_iso(start), "start_month": start.strftime("%Y-%m")}


class DynamoRepository:
    """Meetings and sessions in one table, through a low-level boto3 DynamoDB client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    # --- meetings -----------------------------------------------------------------------------

    def get_meeting(self, key: str) -> Meeting | None:
        resp = self._ddb.get_item(
            TableName=self._table, Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}), ConsistentRead=True
        )
        return _meeting_from(_plain(resp["Item"])) if "Item" in resp else None

    def add_meeting(self, meeting: Meeting, now: datetime) -> tuple[Meeting, bool]:
        """Store a new meeting, or merge its users and calendar events into the existing one.

        Returns the stored meeting and whether it was created by this call.
        """
        attrs = _meeting_attrs(meeting)
        attrs["created_at"] = to_iso(now)
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=_item(attrs),
                ConditionExpression="attribute_not_exists(pk)",
            )
            stored = self.get_meeting(meeting.meeting_key)
            assert stored is not None
            self._link_users(meeting)
            return stored, True
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
        additions: list[str] = []
        values: dict[str, Any] = {}
        if meeting.user_ids:
            additions.append("user_ids :u")
            values[":u"] = set(meeting.user_ids)
        if meeting.calendar_event_ids:
            additions.append("calendar_event_ids :c")
            values[":c"] = set(meeting.calendar_event_ids)
        if additions or meeting.adhoc:
            expression = "ADD " + ", ".join(additions) if additions else ""
            if meeting.adhoc:
                expression += " SET adhoc = :adhoc"
                values[":adhoc"] = True
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(meeting.meeting_key), "sk": "MEETING"}),
                UpdateExpression=expression.strip(),
                ExpressionAttributeValues=_item(values),
            )
        stored = self.get_meeting(meeting.meeting_key)
        assert stored is not None
        self._link_users(meeting)
        return stored, False

    def _link_users(self, meeting: Meeting) -> None:
        """One item per (user, meeting) in the user's partition, sorted by start: "a user's meetings"
        is then one Query (a set attribute cannot be an index key). Users never leave a meeting, so
        the items are only ever added; they expire with the sessions."""
        for user_id in meeting.user_ids:
            self._ddb.put_item(
                TableName=self._table,
                Item=_item(
                    {
                        "pk": user_pk(user_id),
                        "sk": user_meeting_sk(meeting.start, meeting.meeting_key),
                        "type": "user_meeting",
                        "user_id": user_id,
                        "meeting_key": meeting.meeting_key,
                        "start": to_iso(meeting.start),
                        "expires_at": int(meeting.start.timestamp()) + SESSION_TTL_DAYS * 86400,
                    }
                ),
            )

    def withdraw_request(self, key: str) -> Meeting | None:
        """Take back a direct ("record this meeting") request; calendar events that want the meeting
        still do. Returns the meeting as it is now, or None if there is no such meeting."""
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="REMOVE adhoc",
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return None
        return _meeting_from(_plain(resp["Attributes"]))

    def claim_meeting(
        self, key: str, *, now: datetime, lease_seconds: int, session_id: str, idempotency_key: str
    ) -> Meeting:
        """Take the dispatch lease on a meeting, keeping any session id and idempotency key it has.

        Raises ClaimUnavailable when the meeting is not pending (or its lease has not expired).
        """
        expires = datetime.fromtimestamp(now.timestamp() + lease_seconds, tz=now.tzinfo)
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression=(
                    "SET dispatch_state = :claimed, claim_expires_at = :exp, "
                    "session_id = if_not_exists(session_id, :sid), "
                    "idempotency_key = if_not_exists(idempotency_key, :ik), "
                    "dispatch_attempts = if_not_exists(dispatch_attempts, :zero) + :one"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND desired = :record AND "
                    "(dispatch_state = :pending OR (dispatch_state = :claimed AND claim_expires_at < :now))"
                ),
                ExpressionAttributeValues=_item(
                    {
                        ":claimed": DispatchState.CLAIMED.value,
                        ":pending": DispatchState.PENDING.value,
                        ":record": DesiredState.RECORD.value,
                        ":exp": to_iso(expires),
                        ":now": to_iso(now),
                        ":sid": session_id,
                        ":ik": idempotency_key,
                        ":zero": 0,
                        ":one": 1,
                    }
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            old = exc.response.get("Item")
            if not old:
                raise ClaimUnavailable("missing") from None
            current = _meeting_from(_plain(old))
            retry_in = None
            if current.dispatch_state is DispatchState.CLAIMED and current.claim_expires_at:
                retry_in = max(1.0, (current.claim_expires_at - now).total_seconds())
            state = current.dispatch_state.value
            if current.desired is not DesiredState.RECORD:
                state = current.desired.value
            raise ClaimUnavailable(state, retry_in) from None
        return _meeting_from(_plain(resp["Attributes"]))

    def release_claim(self, key: str, session_id: str) -> None:
        """Give the lease back so the next attempt can claim at once (same idempotency key)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="SET dispatch_state = :pending REMOVE claim_expires_at",
                ConditionExpression="dispatch_state = :claimed AND session_id = :sid",
                ExpressionAttributeValues=_item(
                    {
                        ":pending": DispatchState.PENDING.value,
                        ":claimed": DispatchState.CLAIMED.value,
                        ":sid": session_id,
                    }
                ),
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def set_dispatch_schedule(self, key: str, schedule_name: str, dispatch_at: datetime) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
            UpdateExpression=(
                "SET schedule_name = :n, dispatch_at = :at, attention_shard = :shard, attention_due = :due"
            ),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_item(
                {
                    ":n": schedule_name,
                    ":at": to_iso(dispatch_at),
                    ":shard": _shard(key),
                    ":due": to_iso(dispatch_at + MEETING_GRACE),
                }
            ),
        )

    def finish_dispatch(
        self,
        key: str,
        *,
        state: DispatchState,
        bot_id: str | None = None,
        reason: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Record how a dispatch ended. With ``session_id``, only while the meeting still belongs to
        that session (a cancelled and revived meeting has a new one); returns whether it was written."""
        sets = ["dispatch_state = :state"]
        values: dict[str, Any] = {":state": state.value}
        if bot_id:
            sets.append("bot = :bot")  # not bot_id: the by-bot index is for sessions
            values[":bot"] = bot_id
        if reason:
            sets.append("failure_reason = :reason")
            values[":reason"] = reason[:500]
        kwargs: dict[str, Any] = {}
        if session_id is not None:
            kwargs["ConditionExpression"] = "session_id = :sid"
            values[":sid"] = session_id
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE claim_expires_at, attention_shard, attention_due",
                ExpressionAttributeValues=_item(values),
                **kwargs,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return False
        return True

    # --- meetings and calendar events ---------------------------------------------------------

    def detach_calendar_event(self, key: str, calendar_event_id: str) -> Meeting | None:
        """Take one calendar event off a meeting; returns the meeting as it is now (None if missing)."""
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="DELETE calendar_event_ids :c",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_item({":c": {calendar_event_id}}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return None
        return _meeting_from(_plain(resp["Attributes"]))

    def cancel_meeting(self, key: str) -> Meeting | None:
        """Set ``desired=cancelled`` if no calendar event and no direct request wants the meeting.

        Returns the meeting as it was before (its session id names the bot to withdraw), or None when
        something still wants it (an event attached meanwhile) or it does not exist. Calling it again
        on a cancelled meeting returns it again, so an interrupted cancellation can be finished.
        """
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="SET desired = :cancelled REMOVE attention_shard, attention_due",
                ConditionExpression=(
                    "attribute_exists(pk) AND attribute_not_exists(calendar_event_ids) AND "
                    "(attribute_not_exists(adhoc) OR adhoc = :no)"
                ),
                ExpressionAttributeValues=_item({":cancelled": DesiredState.CANCELLED.value, ":no": False}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return None
        return _meeting_from(_plain(resp["Attributes"]))

    def revive_meeting(self, key: str) -> Meeting | None:
        """Bring a cancelled meeting back to ``record`` with a clean dispatch slate.

        The session id and idempotency key are removed, so the next claim makes fresh ones: the
        cancelled bot's key must not be replayed into the same (cancelled) bot. Only while some
        calendar event (or a direct request) wants it; returns the revived meeting, or None if it was
        not cancelled.
        """
        meeting = self.get_meeting(key)
        if meeting is None:
            return None
        due = (meeting.start - timedelta(minutes=10)) + MEETING_GRACE
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression=(
                    "SET desired = :record, dispatch_state = :pending, dispatch_attempts = :zero, "
                    "attention_shard = :shard, attention_due = :due, "
                    "revision = if_not_exists(revision, :zero) + :one "
                    "REMOVE session_id, idempotency_key, bot, failure_reason, claim_expires_at, "
                    "schedule_name, dispatch_at"
                ),
                ConditionExpression=("desired = :cancelled AND (attribute_exists(calendar_event_ids) OR adhoc = :yes)"),
                ExpressionAttributeValues=_item(
                    {
                        ":record": DesiredState.RECORD.value,
                        ":pending": DispatchState.PENDING.value,
                        ":cancelled": DesiredState.CANCELLED.value,
                        ":yes": True,
                        ":zero": 0,
                        ":one": 1,
                        ":shard": _shard(key),
                        ":due": to_iso(due),
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return None
        return _meeting_from(_plain(resp["Attributes"]))

    def postpone_meeting_attention(self, key: str, until: datetime) -> None:
        """Look at this meeting again at ``until`` (it stays in the reconciler's index)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="SET attention_due = :due",
                ConditionExpression="attribute_exists(attention_shard)",
                ExpressionAttributeValues=_item({":due": to_iso(until)}),
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def due_for_attention(self, now: datetime, *, limit: int = 500) -> list[tuple[str, str]]:
        """(kind, id) of meetings and sessions whose attention time has passed, oldest first.

        One Query per shard of the sparse ``attention`` index; never a Scan.
        """
        found: list[tuple[str, str, str]] = []
        for shard in range(ATTENTION_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "attention",
                "KeyConditionExpression": "attention_shard = :s AND attention_due <= :now",
                "ExpressionAttributeValues": _item({":s": f"A#{shard}", ":now": to_iso(now)}),
                "ProjectionExpression": "pk, attention_due",
            }
            while len(found) < limit * ATTENTION_SHARDS:
                page = self._ddb.query(**kwargs)
                for item in page.get("Items", []):
                    plain = _plain(item)
                    found.append((plain["attention_due"], *plain["pk"].split("#", 1)))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort()
        kinds = {"MEETING": "meeting", "SESSION": "session"}
        return [(kinds[kind], ident) for _, kind, ident in found[:limit] if kind in kinds]

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, session: Session, now: datetime) -> bool:
        """Store a new session unless one with that id exists. Returns True if created."""
        session.created_at = session.created_at or now
        session.updated_at = now
        attrs = _session_attrs(session, now)
        attrs.update(session_index_attrs(session.meeting_key))
        attrs["version"] = 0
        try:
            self._ddb.put_item(TableName=self._table, Item=_item(attrs), ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise

    def get_session(self, session_id: str) -> Session | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=_item({"pk": session_pk(session_id), "sk": "SESSION"}),
            ConsistentRead=True,
        )
        return _session_from(_plain(resp["Item"])) if "Item" in resp else None

    def find_session_by_bot(self, bot_id: str) -> Session | None:
        resp = self._ddb.query(
            TableName=self._table,
            IndexName="by-bot",
            KeyConditionExpression="bot_id = :b",
            ExpressionAttributeValues=_item({":b": bot_id}),
            ProjectionExpression="pk",
        )
        for item in resp.get("Items", []):
            pk = _plain(item)["pk"]
            if isinstance(pk, str) and pk.startswith("SESSION#"):
                return self.get_session(pk.removeprefix("SESSION#"))
        return None

    def delete_session(self, session_id: str) -> bool:
        """Delete a session item with its event history; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=_item({"pk": session_pk(session_id), "sk": "SESSION"}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp

    def save_session(self, session: Session, now: datetime) -> Session:
        """Write a session changed in memory, if nobody else wrote it since it was read.

        Raises ConcurrentUpdate when the stored version moved on; the caller re-reads and retries.
        """
        expected = session.version
        attrs = _session_attrs(session, now)
        for fixed in ("pk", "sk", "type", "session_id", "meeting_key", "created_at"):
            attrs.pop(fixed, None)
        attrs["version"] = expected + 1
        attrs.update(session_index_attrs(session.meeting_key))
        removals = [name for name in _SESSION_OPTIONAL if attrs.get(name) is None]
        sets = {name: value for name, value in attrs.items() if value is not None}
        names = {f"#a{i}": name for i, name in enumerate(sets)}
        values = {f":v{i}": value for i, value in enumerate(sets.values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(sets)))
        if removals:
            offset = len(names)
            for j, name in enumerate(removals):
                names[f"#a{offset + j}"] = name
            expression += " REMOVE " + ", ".join(f"#a{offset + j}" for j in range(len(removals)))
        values[":expected"] = expected
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": session_pk(session.session_id), "sk": "SESSION"}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND version = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item(values),
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConcurrentUpdate(f"session {session.session_id} changed while being updated") from None
            raise
        session.version = expected + 1
        return session

    # --- calendars ----------------------------------------------------------------------------

    def put_calendar(self, calendar: Calendar, now: datetime) -> bool:
        """Store a newly registered calendar; False if one with that id is registered already."""
        calendar.created_at = calendar.created_at or now
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=_item(_calendar_attrs(calendar)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_calendar(self, calendar_id: str) -> Calendar | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=_item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
            ConsistentRead=True,
        )
        return _calendar_from(_plain(resp["Item"])) if "Item" in resp else None

    def list_calendars(self) -> list[Calendar]:
        """Every registered calendar: one Query on their shared partition."""
        return [
            _calendar_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :cal)",
                ExpressionAttributeValues=_item({":pk": CALENDARS_PK, ":cal": "CAL#"}),
            )
        ]

    def delete_calendar(self, calendar_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=_item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}))

    def mark_calendar_removing(self, calendar_id: str) -> bool:
        """Flag a calendar as being removed: syncs and renewals leave it alone from now on."""
        return self._update_calendar(calendar_id, "SET removing = :yes", {":yes": True})

    def claim_calendar_sync(
        self, calendar_id: str, *, now: datetime, lease_seconds: int, removal: bool = False
    ) -> Calendar:
        """Take a calendar's sync lease, so two syncs of one calendar (or a sync and its removal) never interleave.

        Raises ClaimUnavailable: ``missing``, ``removing`` (a calendar being removed is only claimed
        with ``removal=True``), or ``busy`` with the seconds left on the other holder's lease.
        """
        until = now + timedelta(seconds=lease_seconds)
        not_removing = "" if removal else "attribute_not_exists(removing) AND "
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
                UpdateExpression="SET sync_lease_until = :until",
                ConditionExpression=(
                    "attribute_exists(pk) AND "
                    + not_removing
                    + "(attribute_not_exists(sync_lease_until) OR sync_lease_until < :now)"
                ),
                ExpressionAttributeValues=_item({":until": to_iso(until), ":now": to_iso(now)}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            old = exc.response.get("Item")
            if not old:
                raise ClaimUnavailable("missing") from None
            current = _calendar_from(_plain(old))
            if current.removing and not removal:
                raise ClaimUnavailable("removing") from None
            held = current.sync_lease_until
            raise ClaimUnavailable("busy", max(1.0, (held - now).total_seconds()) if held else 1.0) from None
        return _calendar_from(_plain(resp["Attributes"]))

    def release_calendar_sync(self, calendar_id: str) -> None:
        self._update_calendar(calendar_id, "REMOVE sync_lease_until", {})

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
        """A sync went through: store its cursor (ETag or sync token), release the lease, and clear the
        last error, or set it to ``problem`` when part of the source was left out."""
        sets = ["last_synced_at = :now"]
        removes = ["sync_lease_until"]
        values: dict[str, Any] = {":now": to_iso(now)}
        if problem:
            sets += ["last_error = :err", "last_error_at = :now"]
            values[":err"] = problem[:500]
        else:
            removes += ["last_error", "last_error_at"]
        if full:
            sets.append("last_full_sync_at = :now")
        for name, value in (("etag", etag), ("sync_token", sync_token)):
            if value:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
            else:
                removes.append(name)
        self._update_calendar(calendar_id, "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes), values)

    def record_calendar_error(
        self, calendar_id: str, *, now: datetime, message: str, drop_sync_token: bool = False
    ) -> None:
        """A sync failed: keep the last good state, say why, release the lease."""
        removes = ["sync_lease_until"] + (["sync_token"] if drop_sync_token else [])
        self._update_calendar(
            calendar_id,
            "SET last_error = :err, last_error_at = :now REMOVE " + ", ".join(removes),
            {":err": message[:500], ":now": to_iso(now)},
        )

    def drop_sync_token(self, calendar_id: str) -> None:
        self._update_calendar(calendar_id, "REMOVE sync_token", {})

    def set_calendar_channel(self, calendar_id: str, channel: PushChannel, *, expect_channel_id: str | None) -> bool:
        """Point the calendar at a new push channel, if its current one is still ``expect_channel_id``."""
        condition = "channel_id = :old" if expect_channel_id else "attribute_not_exists(channel_id)"
        values: dict[str, Any] = {":id": channel.channel_id, ":exp": to_iso(channel.expires_at)}
        if expect_channel_id:
            values[":old"] = expect_channel_id
        return self._update_calendar(
            calendar_id,
            "SET channel_id = :id, channel_expires_at = :exp",
            values,
            condition=f"attribute_not_exists(removing) AND {condition}",
        )

    def _update_calendar(
        self, calendar_id: str, expression: str, values: dict[str, Any], *, condition: str | None = None
    ) -> bool:
        full_condition = "attribute_exists(pk)" + (f" AND {condition}" if condition else "")
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": _item(values)} if values else {}
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
                UpdateExpression=expression,
                ConditionExpression=full_condition,
                **kwargs,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return False
        return True

    # --- push channels ------------------------------------------------------------------------

    def put_channel(self, channel: PushChannel) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item=_item(
                {
                    "pk": channel_pk(channel.channel_id),
                    "sk": "CHANNEL",
                    "type": "channel",
                    "channel_id": channel.channel_id,
                    "calendar_id": channel.calendar_id,
                    "resource_id": channel.resource_id,
                    "token": channel.token,
                    "expires_at_iso": to_iso(channel.expires_at),
                    # Google stops delivering at expiry; the item may go a week later.
                    "expires_at": int(channel.expires_at.timestamp()) + 7 * 86400,
                }
            ),
        )

    def get_channel(self, channel_id: str) -> PushChannel | None:
        resp = self._ddb.get_item(
            TableName=self._table, Key=_item({"pk": channel_pk(channel_id), "sk": "CHANNEL"}), ConsistentRead=True
        )
        if "Item" not in resp:
            return None
        a = _plain(resp["Item"])
        return PushChannel(
            channel_id=a["channel_id"],
            calendar_id=a["calendar_id"],
            resource_id=a["resource_id"],
            expires_at=parse_iso(a["expires_at_iso"]),
            token=a["token"],
        )

    def delete_channel(self, channel_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=_item({"pk": channel_pk(channel_id), "sk": "CHANNEL"}))

    # --- calendar event links -----------------------------------------------------------------

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=_item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}),
            ConsistentRead=True,
        )
        return _link_from(_plain(resp["Item"])) if "Item" in resp else None

    def put_calendar_link(self, link: CalendarLink, now: datetime) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item=_item(
                {
                    "pk": link_pk(link.calendar_id),
                    "sk": link_sk(link.event_id),
                    "type": "calendar_event",
                    "calendar_id": link.calendar_id,
                    "event_id": link.event_id,
                    "calendar_event_id": link.calendar_event_id,
                    "meeting_key": link.meeting_key,
                    "start": to_iso(link.start),
                    "end": to_iso(link.end) if link.end else None,
                    "recurring_event_id": link.recurring_event_id,
                    "updated_at": to_iso(now),
                    "expires_at": int(link.last_moment.timestamp()) + LINK_TTL_DAYS * 86400,
                }
            ),
        )

    def delete_calendar_link(self, calendar_id: str, event_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=_item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}))

    def list_calendar_links(self, calendar_id: str) -> list[CalendarLink]:
        """Every event of one calendar that points at a meeting: one Query on the calendar's partition."""
        return [
            _link_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :ev)",
                ExpressionAttributeValues=_item({":pk": link_pk(calendar_id), ":ev": "EVENT#"}),
            )
        ]

    def meeting_for_calendar_event(self, calendar_id: str, event_id: str) -> str | None:
        """Which meeting a calendar event asks a bot for, through the ``by-calendar-event`` index."""
        resp = self._ddb.query(
            TableName=self._table,
            IndexName="by-calendar-event",
            KeyConditionExpression="calendar_event_id = :c",
            ExpressionAttributeValues=_item({":c": f"{calendar_id}#{event_id}"}),
        )
        for item in resp.get("Items", []):
            key = _plain(item).get("meeting_key")
            if isinstance(key, str):
                return key
        return None

    # --- forgetting --------------------------------------------------------------------------

    def session_ids_of_meeting(self, key: str) -> list[str]:
        """Every session ever made for a meeting (a revived meeting has had more than one): its
        month's partition of ``sessions-by-month`` at its exact start minute, filtered on the key."""
        attrs = session_index_attrs(key)
        if not attrs:
            return []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "sessions-by-month",
            "KeyConditionExpression": "start_month = :m AND meeting_start = :s",
            "FilterExpression": "meeting_key = :k",
            "ExpressionAttributeValues": _item({":m": attrs["start_month"], ":s": attrs["meeting_start"], ":k": key}),
            "ProjectionExpression": "session_id",
        }
        found: list[str] = []
        while True:
            page = self._ddb.query(**request)
            found.extend(str(_plain(i)["session_id"]) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(set(found))
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_session_items(self, session_id: str, *, keep_session: bool = False) -> int:
        """Delete a session's partition: the session item (its history, dedupe hashes and outbox go
        with it) and its live segments; return how many items went. With ``keep_session`` the
        session item stays, as the map from its bot to what is still to be erased."""
        keys = [
            {"pk": a["pk"], "sk": a["sk"]}
            for a in self._query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=_item({":pk": session_pk(session_id)}),
                ProjectionExpression="pk, sk",
            )
            if not (keep_session and a["sk"] == "SESSION")
        ]
        return self._delete_keys(keys)

    def detach_session(self, key: str, session_id: str) -> bool:
        """Take a forgotten session (and its bot id) off its meeting, if the meeting still points at it."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="REMOVE session_id, bot",
                ConditionExpression="session_id = :sid",
                ExpressionAttributeValues=_item({":sid": session_id}),
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return False
        return True

    def delete_meeting(self, key: str) -> bool:
        """Delete a meeting item; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp

    def user_meeting_entries(self, user_id: str) -> list[tuple[str, str]]:
        """(sort key, meeting key) of every meeting item in a user's partition."""
        return [
            (str(a["sk"]), str(a["meeting_key"]))
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :mtg)",
                ExpressionAttributeValues=_item({":pk": user_pk(user_id), ":mtg": "MTG#"}),
                ProjectionExpression="sk, meeting_key",
            )
        ]

    def delete_user_meeting_entries(self, user_id: str, key: str) -> int:
        """Delete a user's index entries for one meeting (one per start the meeting was seen with)."""
        entries = [(sk, k) for sk, k in self.user_meeting_entries(user_id) if k == key]
        return self._delete_keys([{"pk": user_pk(user_id), "sk": sk} for sk, _ in entries])

    def remove_user_from_meeting(self, key: str, user_id: str) -> bool:
        """Take one user off a meeting others keep; False if the meeting is gone."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="DELETE user_ids :u",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_item({":u": {user_id}}),
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return False
        return True

    def delete_calendar_link_if_present(self, calendar_id: str, event_id: str) -> bool:
        """Delete one calendar event link; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=_item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp

    def _delete_keys(self, keys: list[dict[str, Any]]) -> int:
        """Delete items by key, 25 to a BatchWriteItem, retrying what DynamoDB leaves unprocessed."""
        for start in range(0, len(keys), 25):
            request = {self._table: [{"DeleteRequest": {"Key": _item(k)}} for k in keys[start : start + 25]]}
            for attempt in range(10):
                resp = self._ddb.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off before the rest
            if request:
                raise ConcurrentUpdate("DynamoDB kept throttling the deletes; run forget again")
        return len(keys)

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request = {"TableName": self._table, "ConsistentRead": True, **kwargs}
        while True:
            page = self._ddb.query(**request)
            items.extend(_plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


_SESSION_OPTIONAL = (
    "bot_id",
    "stop_reason",
    "outcome",
    "outcome_reason",
    "transcript_id",
    "seen",
    "attention_shard",
    "attention_due",
    "needs_review",
    "transcript",
    "outbox",  # emptied once its events are published
)


MEETING_GRACE = timedelta(minutes=5)


def meeting_attention_due(m: Meeting) -> datetime | None:
    """When the reconciler should check that a meeting got its bot; None once that is settled."""
    if m.desired is not DesiredState.RECORD or m.dispatch_state not in (DispatchState.PENDING, DispatchState.CLAIMED):
        return None
    planned = m.dispatch_at or (m.start - timedelta(minutes=10))
    return planned + MEETING_GRACE


def _meeting_attrs(m: Meeting) -> dict[str, Any]:
    due = meeting_attention_due(m)
    return {
        "attention_shard": _shard(m.meeting_key) if due else None,
        "attention_due": to_iso(due) if due else None,
        "pk": meeting_pk(m.meeting_key),
        "sk": "MEETING",
        "type": "meeting",
        "meeting_key": m.meeting_key,
        "meeting_url": m.meeting_url,
        "start": to_iso(m.start),
        "end": to_iso(m.end) if m.end else None,
        "title": m.title,
        "user_ids": set(m.user_ids) or None,
        "calendar_event_ids": set(m.calendar_event_ids) or None,
        "desired": m.desired.value,
        "dispatch_state": m.dispatch_state.value,
        "session_id": m.session_id,
        "idempotency_key": m.idempotency_key,
        "bot_id": None,  # the by-bot index is for sessions; the meeting keeps it as bot
        "bot": m.bot_id,
        "dispatch_attempts": m.dispatch_attempts,
        "failure_reason": m.failure_reason,
        "schedule_name": m.schedule_name,
        "dispatch_at": to_iso(m.dispatch_at) if m.dispatch_at else None,
        "adhoc": True if m.adhoc else None,
        "revision": m.revision or None,
    }


def _meeting_from(a: dict[str, Any]) -> Meeting:
    return Meeting(
        meeting_key=a["meeting_key"],
        meeting_url=a["meeting_url"],
        start=parse_iso(a["start"]),
        end=_dt(a.get("end")),
        title=a.get("title", ""),
        user_ids=sorted(a.get("user_ids") or []),
        calendar_event_ids=sorted(a.get("calendar_event_ids") or []),
        desired=DesiredState(a.get("desired", DesiredState.RECORD.value)),
        dispatch_state=DispatchState(a.get("dispatch_state", DispatchState.PENDING.value)),
        session_id=a.get("session_id"),
        idempotency_key=a.get("idempotency_key"),
        bot_id=a.get("bot") or a.get("bot_id"),
        claim_expires_at=_dt(a.get("claim_expires_at")),
        dispatch_attempts=int(a.get("dispatch_attempts", 0)),
        failure_reason=a.get("failure_reason"),
        created_at=_dt(a.get("created_at")),
        schedule_name=a.get("schedule_name"),
        dispatch_at=_dt(a.get("dispatch_at")),
        adhoc=bool(a.get("adhoc", False)),
        revision=int(a.get("revision", 0)),
    )


def _shard(session_id: str) -> str:
    return f"A#{int(hashlib.sha256(session_id.encode()).hexdigest(), 16) % ATTENTION_SHARDS}"


def _session_attrs(s: Session, now: datetime) -> dict[str, Any]:
    due = attention_due(s, now)
    return {
        "pk": session_pk(s.session_id),
        "sk": "SESSION",
        "type": "session",
        "session_id": s.session_id,
        "meeting_key": s.meeting_key,
        "transcript_mode": s.transcript_mode.value,
        "bot_id": s.bot_id,
        "status": s.status.value,
        "status_rank": s.status.rank,
        "stop_reason": s.stop_reason.value if s.stop_reason else None,
        "outcome": s.outcome.value if s.outcome else None,
        "outcome_reason": s.outcome_reason,
        "needs_review": True if s.needs_review else None,
        "transcript_id": s.transcript_id,
        "transcript_state": s.transcript_state.value,
        "transcript_job_pending": s.transcript_job_pending,
        "transcript": s.transcript or None,
        "joining_count": s.joining_count,
        "history": s.history,
        "seen": set(s.seen) or None,
        "unknown_events": s.unknown_events,
        "reconcile_attempts": s.reconcile_attempts,
        "transcript_tries": s.transcript_tries or None,
        "transcript_tries_seen": s.transcript_tries_seen or None,
        "live_transcript": True if s.live_transcript else None,
        "outbox": s.outbox or None,
        "attention_shard": _shard(s.session_id) if due else None,
        "attention_due": to_iso(due) if due else None,
        "created_at": to_iso(s.created_at) if s.created_at else to_iso(now),
        "updated_at": to_iso(now),
        "expires_at": int(now.timestamp()) + SESSION_TTL_DAYS * 86400,
    }


def _session_from(a: dict[str, Any]) -> Session:
    return Session(
        session_id=a["session_id"],
        meeting_key=a["meeting_key"],
        transcript_mode=TranscriptMode(a.get("transcript_mode", TranscriptMode.POST_CALL.value)),
        bot_id=a.get("bot_id"),
        status=BotStatus(a.get("status", BotStatus.PENDING.value)),
        stop_reason=StopReason(a["stop_reason"]) if a.get("stop_reason") else None,
        outcome=Outcome(a["outcome"]) if a.get("outcome") else None,
        outcome_reason=a.get("outcome_reason"),
        transcript_id=a.get("transcript_id"),
        transcript_state=TranscriptState(a.get("transcript_state", TranscriptState.NONE.value)),
        transcript_job_pending=bool(a.get("transcript_job_pending", False)),
        transcript=dict(a.get("transcript") or {}),
        joining_count=int(a.get("joining_count", 0)),
        history=list(a.get("history") or []),
        seen=set(a.get("seen") or ()),
        unknown_events=int(a.get("unknown_events", 0)),
        reconcile_attempts=int(a.get("reconcile_attempts", 0)),
        transcript_tries=int(a.get("transcript_tries") or 0),
        transcript_tries_seen=int(a.get("transcript_tries_seen") or 0),
        live_transcript=bool(a.get("live_transcript", False)),
        outbox=list(a.get("outbox") or []),
        version=int(a.get("version", 0)),
        created_at=_dt(a.get("created_at")),
        updated_at=_dt(a.get("updated_at")),
    )


# --- calendar items ---------------------------------------------------------------------------


def _calendar_attrs(c: Calendar) -> dict[str, Any]:
    return {
        "pk": CALENDARS_PK,
        "sk": calendar_sk(c.calendar_id),
        "type": "calendar",
        "calendar_id": c.calendar_id,
        "kind": c.kind.value,
        "user_id": c.user_id,
        "owner_email": c.owner_email,
        "label": c.label or None,
        "filters": {
            "external_only": c.filters.external_only,
            "min_attendees": c.filters.min_attendees,
            "opt_out_word": c.filters.opt_out_word,
            "internal_domains": list(c.filters.internal_domains),
        },
        "feed_url": c.feed_url,
        "etag": c.etag,
        "google_calendar_id": c.google_calendar_id,
        "credentials_param": c.credentials_param,
        "sync_token": c.sync_token,
        "channel_id": c.channel_id,
        "channel_expires_at": to_iso(c.channel_expires_at) if c.channel_expires_at else None,
        "last_synced_at": to_iso(c.last_synced_at) if c.last_synced_at else None,
        "last_full_sync_at": to_iso(c.last_full_sync_at) if c.last_full_sync_at else None,
        "last_error": c.last_error,
        "last_error_at": to_iso(c.last_error_at) if c.last_error_at else None,
        "removing": True if c.removing else None,
        "created_at": to_iso(c.created_at) if c.created_at else None,
    }


def _calendar_from(a: dict[str, Any]) -> Calendar:
    f = a.get("filters") or {}
    return Calendar(
        calendar_id=a["calendar_id"],
        kind=CalendarKind(a["kind"]),
        user_id=a["user_id"],
        owner_email=a.get("owner_email"),
        label=a.get("label") or "",
        filters=CalendarFilters(
            external_only=bool(f.get("external_only", False)),
            min_attendees=int(f.get("min_attendees", 0)),
            opt_out_word=str(f.get("opt_out_word", "")),
            internal_domains=tuple(f.get("internal_domains") or ()),
        ),
        feed_url=a.get("feed_url"),
        etag=a.get("etag"),
        google_calendar_id=a.get("google_calendar_id"),
        credentials_param=a.get("credentials_param"),
        sync_token=a.get("sync_token"),
        channel_id=a.get("channel_id"),
        channel_expires_at=_dt(a.get("channel_expires_at")),
        last_synced_at=_dt(a.get("last_synced_at")),
        last_full_sync_at=_dt(a.get("last_full_sync_at")),
        last_error=a.get("last_error"),
        last_error_at=_dt(a.get("last_error_at")),
        sync_lease_until=_dt(a.get("sync_lease_until")),
        removing=bool(a.get("removing", False)),
        created_at=_dt(a.get("created_at")),
    )


def _link_from(a: dict[str, Any]) -> CalendarLink:
    return CalendarLink(
        calendar_id=a["calendar_id"],
        event_id=a["event_id"],
        meeting_key=a["meeting_key"],
        start=parse_iso(a["start"]),
        end=_dt(a.get("end")),
        recurring_event_id=a.get("recurring_event_id"),
    )
