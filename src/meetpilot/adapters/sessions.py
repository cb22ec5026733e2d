"""Bot sessions in the single table: one item per session, written only from the version it read.

Every write after the first is conditional on ``version`` (optimistic concurrency): a writer that
lost the race gets ConcurrentUpdate, re-reads and retries (``app.sessions.update_session``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import (
    TableAdapter,
    attention_shard,
    is_condition_failure,
    item,
    plain,
    session_index_attrs,
    session_pk,
    when,
)
from meetpilot.domain.clock import to_iso
from meetpilot.domain.retention import session_expires_at
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState, attention_due
from meetpilot.domain.status import BotStatus, Outcome, StopReason
from meetpilot.errors import ConcurrentUpdate


class DynamoSessions(TableAdapter):
    """The sessions port (``app.ports.Sessions``) over one table."""

    def create_session(self, session: Session, now: datetime) -> bool:
        """Store a new session unless one with that id exists. Returns True if created."""
        session.created_at = session.created_at or now
        session.updated_at = now
        attrs = _session_attrs(session, now)
        attrs.update(session_index_attrs(session.meeting_key))
        attrs["version"] = 0
        try:
            self._ddb.put_item(TableName=self._table, Item=item(attrs), ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise

    def get_session(self, session_id: str) -> Session | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=item({"pk": session_pk(session_id), "sk": "SESSION"}),
            ConsistentRead=True,
        )
        return _session_from(plain(resp["Item"])) if "Item" in resp else None

    def find_session_by_bot(self, bot_id: str) -> Session | None:
        resp = self._ddb.query(
            TableName=self._table,
            IndexName="by-bot",
            KeyConditionExpression="bot_id = :b",
            ExpressionAttributeValues=item({":b": bot_id}),
            ProjectionExpression="pk",
        )
        for found in resp.get("Items", []):
            pk = plain(found)["pk"]
            if isinstance(pk, str) and pk.startswith("SESSION#"):
                return self.get_session(pk.removeprefix("SESSION#"))
        return None

    def delete_session(self, session_id: str) -> bool:
        """Delete a session item with its event history; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=item({"pk": session_pk(session_id), "sk": "SESSION"}),
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
                Key=item({"pk": session_pk(session.session_id), "sk": "SESSION"}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND version = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=item(values),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConcurrentUpdate(f"session {session.session_id} changed while being updated") from None
            raise
        session.version = expected + 1
        return session


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
    "outbox",  # written by earlier versions (events now come from the stream): dropped on the next write
    "meeting_start_at",
    "join_lateness_ms",
    "admission_wait_ms",
)


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
        # Not "meeting_start": that one is the listing indexes' key, the start minute from the key.
        "meeting_start_at": to_iso(s.meeting_start) if s.meeting_start else None,
        "join_lateness_ms": s.join_lateness_ms,
        "admission_wait_ms": s.admission_wait_ms,
        "attention_shard": attention_shard(s.session_id) if due else None,
        "attention_due": to_iso(due) if due else None,
        "created_at": to_iso(s.created_at) if s.created_at else to_iso(now),
        "updated_at": to_iso(now),
        "expires_at": session_expires_at(now),
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
        meeting_start=when(a.get("meeting_start_at")),
        join_lateness_ms=_whole(a.get("join_lateness_ms")),
        admission_wait_ms=_whole(a.get("admission_wait_ms")),
        version=int(a.get("version", 0)),
        created_at=when(a.get("created_at")),
        updated_at=when(a.get("updated_at")),
    )


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
