"""Meetings in the single table: one item per dedup key, plus a user's entry per meeting.

Every dispatch step is one conditional write on the meeting item (claim with a lease, release,
finish only for the session that holds it), so two dispatchers never both create a bot. When the
reconciler next looks at a meeting is the domain's rule (``meeting_attention_due``), read with the
configured lead time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import (
    TableAdapter,
    attention_shard,
    is_condition_failure,
    item,
    meeting_pk,
    plain,
    user_meeting_sk,
    user_pk,
    when,
)
from meetpilot.app.ports import ClaimUnavailable
from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.meeting import (
    ATTENTION_GRACE,
    DEFAULT_LEAD_TIME,
    DesiredState,
    DispatchState,
    Meeting,
    meeting_attention_due,
)
from meetpilot.domain.retention import user_meeting_expires_at


class DynamoMeetings(TableAdapter):
    """The meetings port (``app.ports.Meetings``) over one table."""

    def __init__(self, client: Any, table_name: str, *, lead_time: timedelta = DEFAULT_LEAD_TIME) -> None:
        super().__init__(client, table_name)
        self._lead_time = lead_time

    def get_meeting(self, key: str) -> Meeting | None:
        resp = self._ddb.get_item(
            TableName=self._table, Key=item({"pk": meeting_pk(key), "sk": "MEETING"}), ConsistentRead=True
        )
        return _meeting_from(plain(resp["Item"])) if "Item" in resp else None

    def add_meeting(self, meeting: Meeting, now: datetime) -> tuple[Meeting, bool]:
        """Store a new meeting, or merge its users and calendar events into the existing one.

        Returns the stored meeting and whether it was created by this call.
        """
        attrs = _meeting_attrs(meeting, self._lead_time)
        attrs["created_at"] = to_iso(now)
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item(attrs),
                ConditionExpression="attribute_not_exists(pk)",
            )
            stored = self.get_meeting(meeting.meeting_key)
            assert stored is not None
            self._link_users(meeting)
            return stored, True
        except ClientError as exc:
            if not is_condition_failure(exc):
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
                Key=item({"pk": meeting_pk(meeting.meeting_key), "sk": "MEETING"}),
                UpdateExpression=expression.strip(),
                ExpressionAttributeValues=item(values),
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
                Item=item(
                    {
                        "pk": user_pk(user_id),
                        "sk": user_meeting_sk(meeting.start, meeting.meeting_key),
                        "type": "user_meeting",
                        "user_id": user_id,
                        "meeting_key": meeting.meeting_key,
                        "start": to_iso(meeting.start),
                        "expires_at": user_meeting_expires_at(meeting.start),
                    }
                ),
            )

    def withdraw_request(self, key: str) -> Meeting | None:
        """Take back a direct ("record this meeting") request; calendar events that want the meeting
        still do. Returns the meeting as it is now, or None if there is no such meeting."""
        return self._meeting_if(key, "REMOVE adhoc", "attribute_exists(pk)", None, "ALL_NEW")

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
                Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
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
                ExpressionAttributeValues=item(
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
            if not is_condition_failure(exc):
                raise
            old = exc.response.get("Item")
            if not old:
                raise ClaimUnavailable("missing") from None
            current = _meeting_from(plain(old))
            retry_in = None
            if current.dispatch_state is DispatchState.CLAIMED and current.claim_expires_at:
                retry_in = max(1.0, (current.claim_expires_at - now).total_seconds())
            state = current.dispatch_state.value
            if current.desired is not DesiredState.RECORD:
                state = current.desired.value
            raise ClaimUnavailable(state, retry_in) from None
        return _meeting_from(plain(resp["Attributes"]))

    def release_claim(self, key: str, session_id: str) -> None:
        """Give the lease back so the next attempt can claim at once (same idempotency key)."""
        self._update_if(
            key,
            "SET dispatch_state = :pending REMOVE claim_expires_at",
            "dispatch_state = :claimed AND session_id = :sid",
            {":pending": DispatchState.PENDING.value, ":claimed": DispatchState.CLAIMED.value, ":sid": session_id},
        )

    def set_dispatch_schedule(self, key: str, schedule_name: str, dispatch_at: datetime) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
            UpdateExpression=(
                "SET schedule_name = :n, dispatch_at = :at, attention_shard = :shard, attention_due = :due"
            ),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=item(
                {
                    ":n": schedule_name,
                    ":at": to_iso(dispatch_at),
                    ":shard": attention_shard(key),
                    ":due": to_iso(dispatch_at + ATTENTION_GRACE),
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
        condition = None
        if session_id is not None:
            condition = "session_id = :sid"
            values[":sid"] = session_id
        expression = "SET " + ", ".join(sets) + " REMOVE claim_expires_at, attention_shard, attention_due"
        return self._update_if(key, expression, condition, values) is not None

    def detach_calendar_event(self, key: str, calendar_event_id: str) -> Meeting | None:
        """Take one calendar event off a meeting; returns the meeting as it is now (None if missing)."""
        return self._meeting_if(
            key, "DELETE calendar_event_ids :c", "attribute_exists(pk)", {":c": {calendar_event_id}}, "ALL_NEW"
        )

    def cancel_meeting(self, key: str) -> Meeting | None:
        """Set ``desired=cancelled`` if no calendar event and no direct request wants the meeting.

        Returns the meeting as it was before (its session id names the bot to withdraw), or None when
        something still wants it (an event attached meanwhile) or it does not exist. Calling it again
        on a cancelled meeting returns it again, so an interrupted cancellation can be finished.
        """
        return self._meeting_if(
            key,
            "SET desired = :cancelled REMOVE attention_shard, attention_due",
            "attribute_exists(pk) AND attribute_not_exists(calendar_event_ids) AND "
            "(attribute_not_exists(adhoc) OR adhoc = :no)",
            {":cancelled": DesiredState.CANCELLED.value, ":no": False},
            "ALL_OLD",
        )

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
        fresh = replace(meeting, desired=DesiredState.RECORD, dispatch_state=DispatchState.PENDING, dispatch_at=None)
        due = meeting_attention_due(fresh, self._lead_time)
        assert due is not None
        return self._meeting_if(
            key,
            "SET desired = :record, dispatch_state = :pending, dispatch_attempts = :zero, "
            "attention_shard = :shard, attention_due = :due, "
            "revision = if_not_exists(revision, :zero) + :one "
            "REMOVE session_id, idempotency_key, bot, failure_reason, claim_expires_at, "
            "schedule_name, dispatch_at",
            "desired = :cancelled AND (attribute_exists(calendar_event_ids) OR adhoc = :yes)",
            {
                ":record": DesiredState.RECORD.value,
                ":pending": DispatchState.PENDING.value,
                ":cancelled": DesiredState.CANCELLED.value,
                ":yes": True,
                ":zero": 0,
                ":one": 1,
                ":shard": attention_shard(key),
                ":due": to_iso(due),
            },
            "ALL_NEW",
        )

    def postpone_meeting_attention(self, key: str, until: datetime) -> None:
        """Look at this meeting again at ``until`` (it stays in the reconciler's index)."""
        self._update_if(key, "SET attention_due = :due", "attribute_exists(attention_shard)", {":due": to_iso(until)})

    def _update_if(
        self,
        key: str,
        expression: str,
        condition: str | None,
        values: dict[str, Any] | None = None,
        returns: str = "NONE",
    ) -> dict[str, Any] | None:
        """One update of a meeting item: the attributes ``returns`` asks for (empty for NONE), or None
        when ``condition`` did not hold."""
        kwargs: dict[str, Any] = {"ReturnValues": returns}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = item(values)
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression=expression,
                **kwargs,
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return None
        return plain(resp.get("Attributes", {}))

    def _meeting_if(
        self, key: str, expression: str, condition: str, values: dict[str, Any] | None, returns: str
    ) -> Meeting | None:
        """The meeting before or after an update (as ``returns`` says), or None when the condition failed."""
        attributes = self._update_if(key, expression, condition, values, returns)
        return _meeting_from(attributes) if attributes is not None else None


def _meeting_attrs(m: Meeting, lead_time: timedelta) -> dict[str, Any]:
    due = meeting_attention_due(m, lead_time)
    return {
        "attention_shard": attention_shard(m.meeting_key) if due else None,
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
        end=when(a.get("end")),
        title=a.get("title", ""),
        user_ids=sorted(a.get("user_ids") or []),
        calendar_event_ids=sorted(a.get("calendar_event_ids") or []),
        desired=DesiredState(a.get("desired", DesiredState.RECORD.value)),
        dispatch_state=DispatchState(a.get("dispatch_state", DispatchState.PENDING.value)),
        session_id=a.get("session_id"),
        idempotency_key=a.get("idempotency_key"),
        bot_id=a.get("bot") or a.get("bot_id"),
        claim_expires_at=when(a.get("claim_expires_at")),
        dispatch_attempts=int(a.get("dispatch_attempts", 0)),
        failure_reason=a.get("failure_reason"),
        created_at=when(a.get("created_at")),
        schedule_name=a.get("schedule_name"),
        dispatch_at=when(a.get("dispatch_at")),
        adhoc=bool(a.get("adhoc", False)),
        revision=int(a.get("revision", 0)),
    )
