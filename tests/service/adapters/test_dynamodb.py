"""Contract tests for Storage, run on moto and on DynamoDB Local.

DynamoDB Local is AWS's own engine: if it rejects an expression that moto accepts, the repository
is wrong, not the test. Every test gets a fresh table made from template.yaml (see
``dynamodb_backends``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import meeting_pk, session_pk
from meetpilot.app.ports import ClaimUnavailable, Storage
from meetpilot.domain.clock import to_iso
from meetpilot.domain.events import MESSAGE_LIMIT, normalise_event
from meetpilot.domain.meeting import DesiredState, DispatchState, Meeting
from meetpilot.domain.retention import SESSION_RETENTION
from meetpilot.domain.session import HISTORY_CAP, SEEN_CAP, Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus, Outcome, StopReason
from meetpilot.errors import ConcurrentUpdate
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    DynamoBackend,
    StorageBackend,
    ddb_backend,
    dynamodb_local,
    moto_server,
    storage_backend,
)

# Near the real clock on purpose: DynamoDB Local emulates TTL deletion, and expires_at is set from
# "now", so a frozen date in the past could make sessions vanish mid-test on that backend.
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
LEASE = 120
URL = "https://zoom.us/j/123456789?pwd=abc"
MAX_ITEM_BYTES = 400 * 1024

_de = TypeDeserializer()


@pytest.fixture
def repo(storage_backend: StorageBackend) -> Storage:  # noqa: F811 - the fixture, by name
    return storage_backend.repo


# --- helpers ------------------------------------------------------------------------------------


def _raw(backend: DynamoBackend, pk: str, sk: str) -> dict[str, Any]:
    """The stored item as DynamoDB typed it, deserialised but not mapped to a domain object."""
    resp = backend.client.get_item(
        TableName=backend.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return {k: _de.deserialize(v) for k, v in resp["Item"].items()}


def _set_meeting(backend: DynamoBackend, key: str, **attrs: str) -> None:
    """Put a meeting into a state directly, as another component would have left it."""
    names = {f"#n{i}": name for i, name in enumerate(attrs)}
    values = {f":v{i}": {"S": value} for i, value in enumerate(attrs.values())}
    backend.client.update_item(
        TableName=backend.table_name,
        Key={"pk": {"S": meeting_pk(key)}, "sk": {"S": "MEETING"}},
        UpdateExpression="SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(attrs))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def _meeting(user: str | None = "alice", event: str | None = "cal-1", start: datetime | None = None) -> Meeting:
    start = start or T0 + timedelta(hours=2)
    return Meeting.new(
        URL, start, end=start + timedelta(minutes=30), title="Weekly sync", user_id=user, calendar_event_id=event
    )


def _stored_meeting(repo: Storage) -> Meeting:
    meeting, created = repo.add_meeting(_meeting(), T0)
    assert created
    return meeting


def _claim(repo: Storage, key: str, now: datetime, sid: str = "sess-1", ik: str = "idem-1") -> Meeting:
    return repo.claim_meeting(key, now=now, lease_seconds=LEASE, session_id=sid, idempotency_key=ik)


def _session(session_id: str = "sess-1", **fields: Any) -> Session:
    return Session(
        session_id=session_id, meeting_key="k|2030-01-01T00:00Z", transcript_mode=TranscriptMode.POST_CALL, **fields
    )


def _query_attention(backend: DynamoBackend, shard: str, until: datetime) -> list[str]:
    resp = backend.client.query(
        TableName=backend.table_name,
        IndexName="attention",
        KeyConditionExpression="attention_shard = :s AND attention_due <= :t",
        ExpressionAttributeValues={":s": {"S": shard}, ":t": {"S": to_iso(until)}},
    )
    return [item["pk"]["S"] for item in resp["Items"]]


def _all_attention(backend: DynamoBackend, until: datetime) -> list[str]:
    found: list[str] = []
    for shard in range(4):
        found += _query_attention(backend, f"A#{shard}", until)
    return found


def _attribute_size(value: dict[str, Any]) -> int:
    """Bytes an attribute value counts for, by DynamoDB's published item-size rules."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in inner)
    if kind == "B":
        return len(inner)
    if kind == "BS":
        return sum(len(v) for v in inner)
    if kind == "L":
        return 3 + sum(1 + _attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _attribute_size(v) for k, v in inner.items())
    raise AssertionError(f"unexpected attribute type {kind}")


def _item_size(backend: DynamoBackend, pk: str, sk: str) -> int:
    resp = backend.client.get_item(
        TableName=backend.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return sum(len(name.encode("utf-8")) + _attribute_size(value) for name, value in resp["Item"].items())


# --- the table itself ---------------------------------------------------------------------------


def test_table_matches_the_template(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    table = ddb_backend.client.describe_table(TableName=ddb_backend.table_name)["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {
        "by-calendar-event",
        "by-bot",
        "attention",
        "sessions-by-status",
        "sessions-by-month",
    }
    ttl = ddb_backend.client.describe_time_to_live(TableName=ddb_backend.table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")


# --- meetings -----------------------------------------------------------------------------------


def test_add_meeting_creates_then_merges_users_and_calendar_events(
    repo: Storage,
    storage_backend: StorageBackend,  # noqa: F811
) -> None:
    first, created = repo.add_meeting(_meeting("alice", "cal-1"), T0)
    assert created
    assert first.user_ids == ["alice"]
    assert first.calendar_event_ids == ["cal-1"]
    assert first.created_at == T0
    assert first.dispatch_state is DispatchState.PENDING
    assert first.desired is DesiredState.RECORD

    later = T0 + timedelta(minutes=5)
    second, created = repo.add_meeting(_meeting("bob", "cal-2"), later)
    assert not created
    assert second.meeting_key == first.meeting_key
    assert second.user_ids == ["alice", "bob"]
    assert second.calendar_event_ids == ["cal-1", "cal-2"]
    assert second.created_at == T0  # the merge does not rewrite the meeting

    again, created = repo.add_meeting(_meeting("alice", "cal-1"), later)
    assert not created
    assert again.user_ids == ["alice", "bob"]  # string sets: no duplicates

    table = storage_backend.table()  # the rest reads the stored items
    raw = _raw(table, meeting_pk(first.meeting_key), "MEETING")
    assert raw["user_ids"] == {"alice", "bob"}
    assert raw["calendar_event_ids"] == {"cal-1", "cal-2"}


def test_add_meeting_without_users_then_with_one(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    bare, created = repo.add_meeting(_meeting(user=None, event=None), T0)
    assert created
    assert bare.user_ids == [] and bare.calendar_event_ids == []
    table = storage_backend.table()  # the rest reads the stored items
    raw = _raw(table, meeting_pk(bare.meeting_key), "MEETING")
    assert "user_ids" not in raw and "calendar_event_ids" not in raw  # no empty sets stored

    unchanged, created = repo.add_meeting(_meeting(user=None, event=None), T0)
    assert not created
    assert unchanged.user_ids == []

    merged, created = repo.add_meeting(_meeting(user="carol", event=None), T0)
    assert not created
    assert merged.user_ids == ["carol"]  # ADD creates the set
    assert merged.calendar_event_ids == []


def test_get_meeting_missing(repo: Storage) -> None:
    assert repo.get_meeting("https://nowhere|2030-01-01T00:00Z") is None


def test_fresh_claim(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    claimed = _claim(repo, meeting.meeting_key, T0)
    assert claimed.dispatch_state is DispatchState.CLAIMED
    assert claimed.session_id == "sess-1"
    assert claimed.idempotency_key == "idem-1"
    assert claimed.dispatch_attempts == 1
    assert claimed.claim_expires_at == T0 + timedelta(seconds=LEASE)
    assert repo.get_meeting(meeting.meeting_key) == claimed


def test_claim_is_unavailable_while_held(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    with pytest.raises(ClaimUnavailable) as caught:
        _claim(repo, meeting.meeting_key, T0 + timedelta(seconds=30), sid="sess-2", ik="idem-2")
    assert caught.value.state == "claimed"
    assert caught.value.retry_in_seconds == pytest.approx(LEASE - 30)

    # Just before expiry the retry hint never drops below a second.
    with pytest.raises(ClaimUnavailable) as caught:
        _claim(repo, meeting.meeting_key, T0 + timedelta(seconds=LEASE - 0.5), sid="sess-2", ik="idem-2")
    assert caught.value.retry_in_seconds == 1.0

    # Exactly at expiry the lease still holds ("claim_expires_at < now" is strict).
    with pytest.raises(ClaimUnavailable):
        _claim(repo, meeting.meeting_key, T0 + timedelta(seconds=LEASE), sid="sess-2", ik="idem-2")
    assert repo.get_meeting(meeting.meeting_key).dispatch_attempts == 1  # type: ignore[union-attr]


def test_reclaim_after_expiry_keeps_session_and_idempotency_key(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    later = T0 + timedelta(seconds=LEASE + 1)
    reclaimed = _claim(repo, meeting.meeting_key, later, sid="sess-2", ik="idem-2")
    assert reclaimed.dispatch_state is DispatchState.CLAIMED
    assert reclaimed.session_id == "sess-1"
    assert reclaimed.idempotency_key == "idem-1"
    assert reclaimed.dispatch_attempts == 2
    assert reclaimed.claim_expires_at == later + timedelta(seconds=LEASE)


def test_claim_missing_meeting(repo: Storage) -> None:
    with pytest.raises(ClaimUnavailable) as caught:
        _claim(repo, "https://nowhere|2030-01-01T00:00Z", T0)
    assert caught.value.state == "missing"
    assert caught.value.retry_in_seconds is None


@pytest.mark.parametrize(
    ("attrs", "state"),
    [
        ({"dispatch_state": DispatchState.DISPATCHED.value}, "dispatched"),
        ({"dispatch_state": DispatchState.FAILED.value}, "failed"),
        ({"desired": DesiredState.CANCELLED.value}, "cancelled"),
    ],
    ids=["dispatched", "failed", "cancelled"],
)
def test_claim_refused_when_not_pending(
    repo: Storage,
    storage_backend: StorageBackend,  # noqa: F811
    attrs: dict[str, str],
    state: str,
) -> None:
    meeting = _stored_meeting(repo)
    table = storage_backend.table()  # the rest reads the stored items
    _set_meeting(table, meeting.meeting_key, **attrs)
    with pytest.raises(ClaimUnavailable) as caught:
        _claim(repo, meeting.meeting_key, T0)
    assert caught.value.state == state
    assert caught.value.retry_in_seconds is None  # nothing to wait for
    stored = repo.get_meeting(meeting.meeting_key)
    assert stored is not None and stored.session_id is None and stored.dispatch_attempts == 0


def test_cancelled_meeting_with_a_lapsed_lease_is_not_claimable(
    repo: Storage,
    storage_backend: StorageBackend,  # noqa: F811
) -> None:
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    table = storage_backend.table()  # the rest reads the stored items
    _set_meeting(table, meeting.meeting_key, desired=DesiredState.CANCELLED.value)
    with pytest.raises(ClaimUnavailable) as caught:
        _claim(repo, meeting.meeting_key, T0 + timedelta(seconds=LEASE + 60), sid="sess-2", ik="idem-2")
    assert caught.value.state == "cancelled"
    # retry_in_seconds is 1.0 here, not None: the hint is computed from the lapsed lease even
    # though the meeting is cancelled. dispatch_meeting re-reads the meeting before claiming, so
    # the retry ends as SKIPPED; the hint is only worth tightening, not relied on.
    assert repo.get_meeting(meeting.meeting_key).dispatch_attempts == 1  # type: ignore[union-attr]


def test_release_claim(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)

    repo.release_claim(meeting.meeting_key, "someone-else")  # not the holder: no effect, no error
    assert repo.get_meeting(meeting.meeting_key).dispatch_state is DispatchState.CLAIMED  # type: ignore[union-attr]

    repo.release_claim(meeting.meeting_key, "sess-1")
    released = repo.get_meeting(meeting.meeting_key)
    assert released is not None
    assert released.dispatch_state is DispatchState.PENDING
    assert released.claim_expires_at is None
    table = storage_backend.table()  # the rest reads the stored items
    assert "claim_expires_at" not in _raw(table, meeting_pk(meeting.meeting_key), "MEETING")

    repo.release_claim(meeting.meeting_key, "sess-1")  # already released: still fine

    # The next attempt can claim at once, and keeps the idempotency key.
    again = _claim(repo, meeting.meeting_key, T0 + timedelta(seconds=1), sid="sess-2", ik="idem-2")
    assert (again.session_id, again.idempotency_key, again.dispatch_attempts) == ("sess-1", "idem-1", 2)


def test_release_claim_of_missing_meeting_is_quiet(repo: Storage) -> None:
    repo.release_claim("https://nowhere|2030-01-01T00:00Z", "sess-1")


def test_finish_dispatch_records_the_bot(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    repo.finish_dispatch(meeting.meeting_key, state=DispatchState.DISPATCHED, bot_id="bot-42")

    done = repo.get_meeting(meeting.meeting_key)
    assert done is not None
    assert done.dispatch_state is DispatchState.DISPATCHED
    assert done.bot_id == "bot-42"
    assert done.claim_expires_at is None
    table = storage_backend.table()  # the rest reads the stored items
    raw = _raw(table, meeting_pk(meeting.meeting_key), "MEETING")
    assert "claim_expires_at" not in raw
    assert "attention_shard" not in raw and "attention_due" not in raw  # settled: out of the reconciler's index

    # The meeting and its session both name the bot; the lookup must find the session.
    assert repo.find_session_by_bot("bot-42") is None
    repo.create_session(_session("sess-1", bot_id="bot-42"), T0)
    found = repo.find_session_by_bot("bot-42")
    assert found is not None and found.session_id == "sess-1"

    with pytest.raises(ClaimUnavailable):
        _claim(repo, meeting.meeting_key, T0 + timedelta(hours=1))


def test_meetings_stay_out_of_the_bot_index(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    repo.finish_dispatch(meeting.meeting_key, state=DispatchState.DISPATCHED, bot_id="bot-42")
    table = storage_backend.table()  # the rest reads the stored items
    resp = table.client.query(
        TableName=table.table_name,
        IndexName="by-bot",
        KeyConditionExpression="bot_id = :b",
        ExpressionAttributeValues={":b": {"S": "bot-42"}},
    )
    assert resp["Items"] == []


def test_finish_dispatch_failed_truncates_reason(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    _claim(repo, meeting.meeting_key, T0)
    repo.finish_dispatch(meeting.meeting_key, state=DispatchState.FAILED, reason="x" * 2000)
    failed = repo.get_meeting(meeting.meeting_key)
    assert failed is not None
    assert failed.dispatch_state is DispatchState.FAILED
    assert failed.failure_reason == "x" * 500
    assert failed.bot_id is None


def test_set_dispatch_schedule(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    at = T0 + timedelta(hours=1, minutes=58)
    repo.set_dispatch_schedule(meeting.meeting_key, "meetpilot-abc123", at)
    stored = repo.get_meeting(meeting.meeting_key)
    assert stored is not None
    assert (stored.schedule_name, stored.dispatch_at) == ("meetpilot-abc123", at)

    repo.set_dispatch_schedule(meeting.meeting_key, "meetpilot-def456", at + timedelta(minutes=5))
    assert repo.get_meeting(meeting.meeting_key).schedule_name == "meetpilot-def456"  # type: ignore[union-attr]


def test_set_dispatch_schedule_needs_the_meeting(repo: Storage) -> None:
    with pytest.raises(ClientError) as caught:
        repo.set_dispatch_schedule("https://nowhere|2030-01-01T00:00Z", "meetpilot-x", T0)
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


# --- sessions -----------------------------------------------------------------------------------


def test_create_session_once(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    assert repo.create_session(_session(), T0) is True
    assert repo.create_session(_session(bot_id="other"), T0 + timedelta(seconds=5)) is False

    stored = repo.get_session("sess-1")
    assert stored is not None
    assert stored.version == 0
    assert stored.bot_id is None  # the second create changed nothing
    assert stored.created_at == T0 and stored.updated_at == T0
    table = storage_backend.table()  # the rest reads the stored items
    raw = _raw(table, session_pk("sess-1"), "SESSION")
    assert raw["expires_at"] == int(T0.timestamp()) + int(SESSION_RETENTION.total_seconds())
    assert isinstance(raw["expires_at"], Decimal)  # a Number, or TTL ignores it
    assert "seen" not in raw and "transcript" not in raw  # no empty set, no empty map


def test_get_session_missing(repo: Storage) -> None:
    assert repo.get_session("nope") is None


def test_save_session_optimistic_concurrency(repo: Storage) -> None:
    repo.create_session(_session(), T0)
    first = repo.get_session("sess-1")
    second = repo.get_session("sess-1")
    assert first is not None and second is not None

    first.status = BotStatus.JOINING
    saved = repo.save_session(first, T0 + timedelta(seconds=1))
    assert saved.version == 1

    second.status = BotStatus.IN_MEETING
    with pytest.raises(ConcurrentUpdate):
        repo.save_session(second, T0 + timedelta(seconds=2))
    stored = repo.get_session("sess-1")
    assert stored is not None
    assert (stored.status, stored.version) == (BotStatus.JOINING, 1)

    # Re-read and retry, as callers do.
    stored.status = BotStatus.IN_MEETING
    assert repo.save_session(stored, T0 + timedelta(seconds=3)).version == 2
    assert repo.get_session("sess-1").status is BotStatus.IN_MEETING  # type: ignore[union-attr]


def test_save_session_that_was_never_created(repo: Storage) -> None:
    with pytest.raises(ConcurrentUpdate):
        repo.save_session(_session("ghost"), T0)
    assert repo.get_session("ghost") is None  # the update did not create a half item


def _history_entry(name: str, at: datetime, **extra: Any) -> dict[str, Any]:
    payload = {"event": name, "bot_id": "bot-1", "timestamp": to_iso(at), **extra}
    entry = normalise_event(payload).history_entry()
    entry["received_at"] = to_iso(at + timedelta(milliseconds=350))
    return entry


def test_session_round_trip_of_every_field(repo: Storage) -> None:
    created_at = T0 - timedelta(minutes=40)
    repo.create_session(_session(), created_at)
    session = repo.get_session("sess-1")
    assert session is not None

    history = [
        _history_entry("bot.joining", T0 - timedelta(minutes=30), status_code=102),
        _history_entry("bot.inmeeting", T0 - timedelta(minutes=29)),  # no message, no code
        _history_entry("bot.stopped", T0 - timedelta(minutes=1), bot_event="bot.kicked", message="removed by host"),
        {"name": "custom", "latency": 0.25, "ratio": 1e-7, "big": 12345678901234, "nested": {"x": None, "ok": True}},
    ]
    assert "message" not in history[1] and history[3]["nested"]["x"] is None  # a None nested in an entry
    session.bot_id = "bot-1"
    session.status = BotStatus.DONE
    session.stop_reason = StopReason.KICKED
    session.outcome = Outcome.GAVE_UP  # needs_review is stored too
    session.outcome_reason = "transcript still not ready after 12 tries"
    session.transcript_id = "tr-9"
    session.transcript_state = TranscriptState.QUEUED
    session.transcript_job_pending = True
    session.transcript = {"key": "transcripts/sess-1.json.gz", "bytes": 123456, "duration_seconds": 1799.5, "words": 0}
    session.joining_count = 2
    session.history = history
    session.seen = {hashlib.sha256(str(i).encode()).hexdigest() for i in range(5)}
    session.unknown_events = 3
    now = T0
    session.updated_at = now
    repo.save_session(session, now)

    restored = repo.get_session("sess-1")
    assert restored == session
    assert restored is not None
    assert restored.created_at == created_at and restored.updated_at == now
    assert restored.history[3]["latency"] == 0.25 and isinstance(restored.history[3]["latency"], float)
    assert restored.history[3]["ratio"] == 1e-7
    assert restored.history[3]["big"] == 12345678901234 and isinstance(restored.history[3]["big"], int)
    assert restored.transcript["duration_seconds"] == 1799.5
    assert restored.needs_review


def test_save_session_clears_optional_fields(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    repo.create_session(_session(), T0)
    session = repo.get_session("sess-1")
    assert session is not None
    session.bot_id = "bot-1"
    session.outcome = Outcome.BOT_FAILED
    session.outcome_reason = "crashed"
    session.transcript = {"key": "k"}
    session.seen = {"a", "b"}
    repo.save_session(session, T0 + timedelta(seconds=1))
    table = storage_backend.table()  # the rest reads the stored items
    raw = _raw(table, session_pk("sess-1"), "SESSION")
    assert raw["seen"] == {"a", "b"}
    assert raw["needs_review"] is True

    session.outcome = None
    session.outcome_reason = None
    session.transcript = {}
    session.seen = set()
    repo.save_session(session, T0 + timedelta(seconds=2))
    raw = _raw(table, session_pk("sess-1"), "SESSION")
    for gone in ("seen", "outcome", "outcome_reason", "needs_review", "transcript"):
        assert gone not in raw, gone  # an empty set cannot be stored: the attribute is removed
    restored = repo.get_session("sess-1")
    assert restored is not None
    assert restored.seen == set() and restored.transcript == {} and restored.outcome is None
    assert restored.bot_id == "bot-1"


def test_find_session_by_bot(repo: Storage) -> None:
    repo.create_session(_session("sess-1", bot_id="bot-1"), T0)
    repo.create_session(_session("sess-2"), T0)
    assert repo.find_session_by_bot("bot-2") is None

    found = repo.find_session_by_bot("bot-1")
    assert found is not None and found.session_id == "sess-1"

    # A bot id learned later (first webhook before dispatch recorded it) is indexed too.
    later = repo.get_session("sess-2")
    assert later is not None
    later.bot_id = "bot-2"
    repo.save_session(later, T0 + timedelta(seconds=1))
    found = repo.find_session_by_bot("bot-2")
    assert found is not None and found.session_id == "sess-2" and found.version == 1


def test_sparse_attention_index(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    repo.create_session(_session("open"), T0)
    repo.create_session(_session("settled", outcome=Outcome.DENIED, status=BotStatus.STOPPED), T0)

    table = storage_backend.table()  # the rest reads the stored items
    settled = _raw(table, session_pk("settled"), "SESSION")
    assert "attention_shard" not in settled and "attention_due" not in settled
    open_raw = _raw(table, session_pk("open"), "SESSION")
    assert open_raw["attention_due"] == to_iso(T0 + timedelta(minutes=10))  # PENDING looks again in 10 min

    assert _query_attention(table, open_raw["attention_shard"], T0 + timedelta(minutes=5)) == []
    due_later = T0 + timedelta(minutes=10)
    assert _query_attention(table, open_raw["attention_shard"], due_later) == [session_pk("open")]
    assert _all_attention(table, T0 + timedelta(days=1)) == [session_pk("open")]

    # Once the session has an outcome it leaves the index.
    session = repo.get_session("open")
    assert session is not None
    session.outcome = Outcome.NO_TRANSCRIPT
    repo.save_session(session, T0 + timedelta(minutes=1))
    assert _all_attention(table, T0 + timedelta(days=1)) == []
    assert "attention_shard" not in _raw(table, session_pk("open"), "SESSION")


def test_attention_shards_order_by_due_time(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    for i in range(12):
        repo.create_session(_session(f"s{i}", status=BotStatus.SCHEDULED if i % 2 else BotStatus.PENDING), T0)
    seen: list[str] = []
    table = storage_backend.table()  # the rest reads the stored items
    for shard in range(4):
        resp = table.client.query(
            TableName=table.table_name,
            IndexName="attention",
            KeyConditionExpression="attention_shard = :s",
            ExpressionAttributeValues={":s": {"S": f"A#{shard}"}},
        )
        dues = [item["attention_due"]["S"] for item in resp["Items"]]
        assert dues == sorted(dues)
        seen += [item["pk"]["S"] for item in resp["Items"]]
    assert sorted(seen) == sorted(session_pk(f"s{i}") for i in range(12))


def test_full_history_stays_well_under_the_item_limit(repo: Storage, storage_backend: StorageBackend) -> None:  # noqa: F811
    """The worst the domain allows: HISTORY_CAP entries with full-length multi-byte messages."""
    repo.create_session(_session(), T0)
    session = repo.get_session("sess-1")
    assert session is not None
    message = ("Überprüfung der Aufnahme fehlgeschlagen 🎙️ " * 40)[:MESSAGE_LIMIT]
    names = ["participant_events.join", "participant_events.leave", "bot.error", "bot.recording"]
    session.history = [
        _history_entry(names[i % len(names)], T0 + timedelta(seconds=i), message=message, status_code=500)
        for i in range(HISTORY_CAP)
    ]
    session.seen = {hashlib.sha256(str(i).encode()).hexdigest() for i in range(SEEN_CAP)}
    session.transcript = {"key": "transcripts/" + "x" * 200, "bytes": 10**9, "segments": 48_000}
    session.bot_id = "bot-" + "b" * 60
    repo.save_session(session, T0)  # DynamoDB Local itself refuses items over 400 KB

    table = storage_backend.table()  # the rest reads the stored items
    size = _item_size(table, session_pk("sess-1"), "SESSION")
    assert size < MAX_ITEM_BYTES / 2, f"{size} bytes"
    restored = repo.get_session("sess-1")
    assert restored is not None and len(restored.history) == HISTORY_CAP and len(restored.seen) == SEEN_CAP


def test_the_backend_enforces_the_item_limit(ddb_backend: DynamoBackend) -> None:  # noqa: F811
    """Guards the test above: a write over 400 KB must fail here, as it does on AWS."""
    with pytest.raises(ClientError) as caught:
        ddb_backend.client.put_item(
            TableName=ddb_backend.table_name,
            Item={"pk": {"S": "BIG"}, "sk": {"S": "BIG"}, "blob": {"S": "x" * MAX_ITEM_BYTES}},
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_due_for_attention_reads_meetings_and_sessions_from_the_sparse_index(repo: Storage) -> None:
    meeting = _stored_meeting(repo)  # starts at T0 + 2h: checked 10 min before, plus the grace
    repo.create_session(_session("open"), T0)  # PENDING: looked at again after 10 min
    repo.create_session(_session("settled", outcome=Outcome.DENIED, status=BotStatus.STOPPED), T0)

    assert repo.due_for_attention(T0) == []
    assert repo.due_for_attention(T0 + timedelta(hours=1)) == [("session", "open")]
    everything = repo.due_for_attention(T0 + timedelta(hours=3))
    assert everything == [("session", "open"), ("meeting", meeting.meeting_key)]  # oldest first
    assert repo.due_for_attention(T0 + timedelta(hours=3), limit=1) == [("session", "open")]

    repo.postpone_meeting_attention(meeting.meeting_key, T0 + timedelta(hours=4))
    assert repo.due_for_attention(T0 + timedelta(hours=3)) == [("session", "open")]

    _claim(repo, meeting.meeting_key, T0 + timedelta(hours=1))
    repo.finish_dispatch(meeting.meeting_key, state=DispatchState.DISPATCHED, bot_id="bot-1")
    assert repo.due_for_attention(T0 + timedelta(days=1)) == [("session", "open")]
    # Postponing a settled meeting must not put it back in the index.
    repo.postpone_meeting_attention(meeting.meeting_key, T0 + timedelta(hours=5))
    assert repo.due_for_attention(T0 + timedelta(days=1)) == [("session", "open")]


def test_set_dispatch_schedule_moves_the_meeting_check(repo: Storage) -> None:
    meeting = _stored_meeting(repo)
    repo.set_dispatch_schedule(meeting.meeting_key, "meetpilot-abc", T0 + timedelta(hours=5))
    assert repo.due_for_attention(T0 + timedelta(hours=5)) == []
    assert repo.due_for_attention(T0 + timedelta(hours=5, minutes=5)) == [("meeting", meeting.meeting_key)]


def test_an_unscheduled_meeting_is_checked_a_grace_period_after_the_configured_lead_time(
    storage_backend: StorageBackend,  # noqa: F811
) -> None:
    lead = timedelta(minutes=30)
    repo = storage_backend.with_lead_time(lead)
    meeting = _stored_meeting(repo)
    due = meeting.start - lead + timedelta(minutes=5)
    assert repo.due_for_attention(due - timedelta(seconds=1)) == []
    assert repo.due_for_attention(due) == [("meeting", meeting.meeting_key)]

    # Cancelled, then wanted again: the revived meeting is checked by the same rule.
    repo.detach_calendar_event(meeting.meeting_key, "cal-1")
    assert repo.cancel_meeting(meeting.meeting_key) is not None
    assert repo.due_for_attention(due) == []
    repo.add_meeting(_meeting(), T0)
    assert repo.revive_meeting(meeting.meeting_key) is not None
    assert repo.due_for_attention(due - timedelta(seconds=1)) == []
    assert repo.due_for_attention(due) == [("meeting", meeting.meeting_key)]
