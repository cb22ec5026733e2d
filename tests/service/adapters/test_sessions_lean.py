"""The session item stays small and its writes carry only what changed, on moto and DynamoDB Local.

Each write of a session is billed by the size of the whole item, and each index entry it moves is
billed again: these tests read the stored items and the UpdateItem requests themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bench.cost import item_size

from meetpilot.adapters.dynamodb import DynamoRepository
from meetpilot.adapters.sessions import EVENT_SK
from meetpilot.app.sessions import update_session
from meetpilot.domain.clock import FixedClock, to_iso
from meetpilot.domain.events import normalise_event
from meetpilot.domain.session import EventVerdict, Session, TranscriptMode, apply_event
from meetpilot.domain.status import BotStatus
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    DynamoBackend,
    ddb_backend,
    dynamodb_local,
    moto_server,
)

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
KEY = f"https://meet.google.com/abc-defg-hij|{to_iso(T0)}"


@pytest.fixture
def repo(ddb_backend: DynamoBackend) -> DynamoRepository:  # noqa: F811
    return DynamoRepository(ddb_backend.client, ddb_backend.table_name)


@pytest.fixture
def updates(ddb_backend: DynamoBackend) -> Iterator[list[dict[str, Any]]]:  # noqa: F811
    """The UpdateItem requests the adapter sends, as sent."""
    sent: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    events = ddb_backend.client.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", keep)
    yield sent
    events.unregister("provide-client-params.dynamodb.UpdateItem", keep)


def _raw(backend: DynamoBackend, sk: str = "SESSION") -> dict[str, Any] | None:
    resp = backend.client.get_item(
        TableName=backend.table_name, Key={"pk": {"S": "SESSION#s1"}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return resp.get("Item")


def _event_items(backend: DynamoBackend) -> list[dict[str, Any]]:
    resp = backend.client.query(
        TableName=backend.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": "SESSION#s1"}, ":sk": {"S": EVENT_SK}},
        ConsistentRead=True,
    )
    return list(resp["Items"])


def _written(update: dict[str, Any]) -> set[str]:
    """The attribute names an UpdateItem sets or removes."""
    return set(update["ExpressionAttributeNames"].values())


def _apply(repo: DynamoRepository, payload: dict[str, Any], at: datetime) -> EventVerdict:
    event = normalise_event({"bot_id": "bot-1", **payload})
    verdict: list[EventVerdict] = []

    def change(current: Session) -> Session | None:
        decision = apply_event(current, event, at)
        verdict.append(decision.verdict)
        return decision.session if decision.verdict is EventVerdict.APPLIED else None

    update_session(repo, "s1", change, FixedClock(at))
    return verdict[-1]


def _created(repo: DynamoRepository) -> None:
    session = Session("s1", KEY, TranscriptMode.POST_CALL, bot_id="bot-1", status=BotStatus.JOINING)
    assert repo.create_session(session, T0)


def test_each_event_is_an_item_of_its_own_and_the_session_item_stays_small(
    repo: DynamoRepository,
    ddb_backend: DynamoBackend,  # noqa: F811
) -> None:
    _created(repo)
    names = ["bot.inmeeting", *(f"participant_events.join#{i}" for i in range(20)), "bot.stopped"]
    for i, name in enumerate(names):
        event, _, participant = name.partition("#")
        payload: dict[str, Any] = {"event": event, "timestamp": to_iso(T0 + timedelta(seconds=i)), "message": "x" * 200}
        if participant:
            payload["data"] = {"data": {"participant": {"id": participant}}}
        assert _apply(repo, payload, T0 + timedelta(seconds=i)) is EventVerdict.APPLIED

    raw = _raw(ddb_backend)
    assert raw is not None and "history" not in raw
    assert len(_event_items(ddb_backend)) == len(names)
    # DynamoDB's own size rules, as the cost bench bills them; the unpublished status events wait in
    # the outbox (nothing publishes them here) and are not the session's own state.
    size = item_size({k: v for k, v in raw.items() if k != "outbox"})
    assert size <= 1024, size  # one write unit; 22 events of 200-byte messages would be ~6 KB inline
    assert raw["seen"].get("BS") and all(len(v) == 10 for v in raw["seen"]["BS"])  # 80-bit hashes, binary

    session = repo.get_session("s1")
    assert session is not None
    assert [e["name"] for e in session.history] == [n.partition("#")[0] for n in names]  # in the order accepted
    assert session.status is BotStatus.STOPPED


def test_a_duplicate_is_still_detected_from_the_compact_hashes(repo: DynamoRepository) -> None:
    _created(repo)
    payload = {"event": "bot.inmeeting", "timestamp": to_iso(T0)}
    assert _apply(repo, payload, T0) is EventVerdict.APPLIED
    assert _apply(repo, payload, T0 + timedelta(seconds=5)) is EventVerdict.DUPLICATE
    session = repo.get_session("s1")
    assert session is not None and len(session.history) == 1 and session.version == 1


def test_an_event_that_moves_nothing_indexed_writes_no_index_key(
    repo: DynamoRepository,
    updates: list[dict[str, Any]],
) -> None:
    _created(repo)
    _apply(repo, {"event": "bot.inmeeting", "timestamp": to_iso(T0)}, T0)
    moved = _written(updates[-1])
    assert {"status", "status_rank", "attention_due"} <= moved  # the status moved
    assert "attention_shard" not in moved  # its shard did not

    join = {"event": "participant_events.join", "timestamp": to_iso(T0 + timedelta(minutes=1))}
    _apply(repo, join, T0 + timedelta(minutes=1))
    quiet = _written(updates[-1])
    # Neither the listing indexes' keys and projections nor the attention keys are sent again.
    untouched = {"status", "status_rank", "meeting_start", "start_month", "attention_due", "attention_shard"}
    untouched |= {"bot_id", "transcript_state", "session_id", "meeting_key", "created_at", "transcript_mode"}
    assert not untouched & quiet, untouched & quiet
    assert {"version", "seen"} <= quiet


def test_the_attention_deadline_stays_until_the_reconciler_has_reason_to_look_later(
    repo: DynamoRepository,
    ddb_backend: DynamoBackend,  # noqa: F811
) -> None:
    _created(repo)
    _apply(repo, {"event": "bot.inmeeting", "timestamp": to_iso(T0)}, T0)
    due = _raw(ddb_backend)["attention_due"]  # type: ignore[index]
    for i in range(1, 4):
        at = T0 + timedelta(minutes=i)
        _apply(repo, {"event": "participant_events.join", "timestamp": to_iso(at)}, at)
        assert _raw(ddb_backend)["attention_due"] == due  # type: ignore[index]

    # A reconciler check (counted) is a reason to look again later: the deadline moves.
    def bump(current: Session) -> Session:
        current.reconcile_attempts += 1
        return current

    update_session(repo, "s1", bump, FixedClock(T0 + timedelta(hours=1)))
    assert _raw(ddb_backend)["attention_due"] != due  # type: ignore[index]


def test_a_write_retried_after_losing_a_race_keeps_one_history_item_per_event(
    repo: DynamoRepository,
    ddb_backend: DynamoBackend,  # noqa: F811
) -> None:
    _created(repo)
    stale = repo.get_session("s1")
    assert stale is not None
    _apply(repo, {"event": "bot.inmeeting", "timestamp": to_iso(T0)}, T0)  # someone else wrote meanwhile

    event = normalise_event({"bot_id": "bot-1", "event": "bot.stopped", "timestamp": to_iso(T0)})

    def change(current: Session) -> Session | None:
        return apply_event(current, event, T0 + timedelta(seconds=1)).session

    # The first try starts from the stale copy, loses, and re-reads: the event item is written twice.
    update_session(repo, "s1", change, FixedClock(T0 + timedelta(seconds=1)), read=stale)
    assert len(_event_items(ddb_backend)) == 2
    session = repo.get_session("s1")
    assert session is not None and [e["name"] for e in session.history] == ["bot.inmeeting", "bot.stopped"]


def test_delete_session_takes_its_history_items_with_it(
    repo: DynamoRepository,
    ddb_backend: DynamoBackend,  # noqa: F811
) -> None:
    _created(repo)
    _apply(repo, {"event": "bot.inmeeting", "timestamp": to_iso(T0)}, T0)
    assert _event_items(ddb_backend)
    assert repo.delete_session("s1")
    assert _raw(ddb_backend) is None and _event_items(ddb_backend) == []
    assert not repo.delete_session("s1")
