"""Bot sessions in the single table: one item per session, written only from the version it read.

Every write after the first is conditional on ``version`` (optimistic concurrency): a writer that
lost the race gets ConcurrentUpdate, re-reads and retries (``app.sessions.update_session``).

The session item stays small, because every write is billed by the size of the whole item (1 KB
per write unit): the event history lives beside it, one ``SESSION#E#<dedupe key>`` item per
accepted event, written once; the dedupe hashes stay on the item (they must change in the same
write as the status they guard) as a binary set. A write sends only the attributes that changed
since the session was read, so the listing and attention indexes are written only when an entry
of theirs changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
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
from meetpilot.domain.session import (
    HISTORY_CAP,
    Session,
    TranscriptMode,
    TranscriptState,
    attention_basis,
    attention_due,
)
from meetpilot.domain.status import BotStatus, Outcome, StopReason
from meetpilot.errors import ConcurrentUpdate


class DynamoSessions(TableAdapter):
    """The sessions port (``app.ports.Sessions``) over one table."""

    def create_session(self, session: Session, now: datetime) -> bool:
        """Store a new session unless one with that id exists. Returns True if created."""
        session.created_at = session.created_at or now
        session.updated_at = now
        attrs = _session_attrs(session, now, None)
        attrs.update(session_index_attrs(session.meeting_key))
        attrs["version"] = 0
        self._put_events(session, _stored_entries(None), 0, now)
        try:
            self._ddb.put_item(TableName=self._table, Item=item(attrs), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        _remember(session, attrs, 0)
        return True

    def get_session(self, session_id: str) -> Session | None:
        """The session with its event history: one consistent Query of the session item and the
        history items beside it (``SESSION`` and ``SESSION#E#...`` sort together)."""
        found = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues=item({":pk": session_pk(session_id), ":sk": "SESSION"}),
        )
        attrs = next((a for a in found if a["sk"] == "SESSION"), None)
        if attrs is None:
            return None
        events = sorted((a for a in found if str(a["sk"]).startswith(EVENT_SK)), key=lambda a: int(a.get("n", 0)))
        session = _session_from(attrs)
        history = [*session.history, *(dict(a.get("entry") or {}) for a in events)]  # older items kept it inline
        if len(history) > HISTORY_CAP:
            history = history[:10] + history[-(HISTORY_CAP - 10) :]  # how it started and the latest
        session.history = history
        _remember(session, attrs, max((int(a.get("n", 0)) + 1 for a in events), default=0))
        return session

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
        keys = [
            {"pk": a["pk"], "sk": a["sk"]}
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
                ExpressionAttributeValues=item({":pk": session_pk(session_id), ":sk": "SESSION"}),
                ProjectionExpression="pk, sk",
            )
        ]
        self._delete_keys(keys)
        return any(k["sk"] == "SESSION" for k in keys)

    def save_session(self, session: Session, now: datetime) -> Session:
        """Write a session changed in memory, if nobody else wrote it since it was read.

        Only what changed since it was read is written (an index entry is rewritten only when one
        of its keys or projected attributes moves), and each newly accepted event goes to an item
        of its own, before the session, so the history never lacks an event the session counts as
        seen. Raises ConcurrentUpdate when the stored version moved on; the caller re-reads and
        retries (the event items are keyed by the event, so writing one again overwrites it).
        """
        expected = session.version
        stored = session.stored
        attrs = _session_attrs(session, now, stored)
        for fixed in ("pk", "sk", "type", "session_id", "meeting_key", "created_at"):
            attrs.pop(fixed, None)
        attrs["version"] = expected + 1
        attrs.update(session_index_attrs(session.meeting_key))
        if stored is None:  # not read from here: write every attribute
            removals = [name for name in _SESSION_OPTIONAL if attrs.get(name) is None]
            sets = {name: value for name, value in attrs.items() if value is not None}
        else:
            removals = [name for name in _SESSION_OPTIONAL if attrs.get(name) is None and stored.get(name) is not None]
            sets = {name: value for name, value in attrs.items() if value is not None and stored.get(name) != value}
        next_n = self._put_events(session, _stored_entries(stored), int((stored or {}).get("_next", 0)), now)
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
        merged = {**(stored or {}), **attrs}
        for name in removals:
            merged.pop(name, None)
        _remember(session, merged, next_n)
        return session

    def _put_events(self, session: Session, known: set[int], next_n: int, now: datetime) -> int:
        """Store the history entries not stored yet, one item each; returns the next sequence number."""
        keys = {id(entry): key for key, entry in session.new_events}
        for entry in session.history:
            if id(entry) in known:
                continue
            key = keys.get(id(entry)) or _entry_key(entry)
            self._ddb.put_item(
                TableName=self._table,
                Item=item(
                    {
                        "pk": session_pk(session.session_id),
                        "sk": EVENT_SK + key,
                        "type": "session_event",
                        "n": next_n,
                        "entry": entry,
                        "expires_at": session_expires_at(now),
                    }
                ),
            )
            next_n += 1
        return next_n


EVENT_SK = "SESSION#E#"  # + the event's dedupe key: one item per accepted event, beside the session


def _entry_key(entry: dict[str, Any]) -> str:
    """A key for a history entry that came without its event's (set directly, or from old items)."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _stored_entries(stored: dict[str, Any] | None) -> set[int]:
    return {id(e) for e in (stored or {}).get("_entries", ())}


def _remember(session: Session, attrs: dict[str, Any], next_n: int) -> None:
    """Keep, on the session, what is stored now: the next write compares against it."""
    stored = copy.deepcopy({k: v for k, v in attrs.items() if not k.startswith("_") and k != "history"})
    stored["_entries"] = list(session.history)  # held, so their ids stay theirs
    stored["_next"] = next_n
    stored["_basis"] = attention_basis(session)
    stored["_due"] = when(attrs.get("attention_due"))
    session.stored = stored
    session.new_events = []


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
    # Zero and false are left off the item (each write is billed by its size).
    "transcript_job_pending",
    "joining_count",
    "unknown_events",
    "reconcile_attempts",
    "transcript_tries",
    "transcript_tries_seen",
    "live_transcript",
    "outbox",  # written by earlier versions (events now come from the stream): dropped on the next write
    "meeting_start_at",
    "join_lateness_ms",
    "admission_wait_ms",
)


def _session_attrs(s: Session, now: datetime, stored: dict[str, Any] | None) -> dict[str, Any]:
    previous = (stored["_basis"], stored["_due"]) if stored and "_basis" in stored else None
    due = attention_due(s, now, previous)
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
        "transcript_job_pending": True if s.transcript_job_pending else None,
        "transcript": s.transcript or None,
        "joining_count": s.joining_count or None,
        "seen": _compact_seen(s.seen),
        "unknown_events": s.unknown_events or None,
        "reconcile_attempts": s.reconcile_attempts or None,
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
        joining_count=int(a.get("joining_count") or 0),
        history=list(a.get("history") or []),
        seen=_expand_seen(a.get("seen")),
        unknown_events=int(a.get("unknown_events") or 0),
        reconcile_attempts=int(a.get("reconcile_attempts") or 0),
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


_HEX = re.compile(r"(?:[0-9a-f]{2})+")


def _compact_seen(seen: set[str]) -> set[bytes] | set[str] | None:
    """The dedupe hashes as a binary set (half the bytes of their hex), else as they are."""
    if not seen:
        return None
    if all(_HEX.fullmatch(key) for key in seen):
        return {bytes.fromhex(key) for key in seen}
    return set(seen)


def _expand_seen(value: Any) -> set[str]:
    out = set()
    for v in value or ():
        raw = getattr(v, "value", v)  # boto3 reads a binary set as Binary wrappers
        out.add(raw.hex() if isinstance(raw, bytes | bytearray) else str(raw))
    return out


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
