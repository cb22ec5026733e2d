"""The emulator's DynamoDB Query reads its partition: answers, order and pages as DynamoDB gives them.

moto, as shipped, sorts the whole table on every Query. The emulator hands a Query only the
partition asked for (or, on an index, the items unsorted, which moto sorts by the index's key);
these tests check the answers against the items themselves and count the comparisons a query makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

moto = pytest.importorskip("moto")

from meetpilot_dev.stack.emulator import partitioned_dynamodb_queries  # noqa: E402 - after the skip

PARTITIONS, PER_PARTITION = 40, 12


@pytest.fixture
def ddb(in_process_moto: str) -> Iterator[Any]:
    partitioned_dynamodb_queries()
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=in_process_moto)
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "status", "due")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "due", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        # Written in an order unlike the key order, so nothing passes by insertion order.
        for n in reversed(range(PARTITIONS * PER_PARTITION)):
            p, i = n % PARTITIONS, n // PARTITIONS
            item = {"pk": {"S": f"P#{p:03d}"}, "sk": {"S": f"E#{i:03d}"}}
            if i % 3 == 0:  # a sparse index: a third of the items carry its keys
                item |= {"status": {"S": "open" if p % 2 else "done"}, "due": {"S": f"{(i * 7) % 50:02d}#{p:03d}"}}
            client.put_item(TableName="t", Item=item)
        yield client


def _pages(ddb: Any, **query: Any) -> tuple[list[tuple[str, str]], int]:
    keys, pages, start = [], 0, None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        answer = ddb.query(TableName="t", **query, **extra)
        keys += [(item["pk"]["S"], item["sk"]["S"]) for item in answer["Items"]]
        pages += 1
        start = answer.get("LastEvaluatedKey")
        if not start:
            return keys, pages


@pytest.mark.parametrize("forward", [True, False])
def test_a_table_query_answers_its_partition_in_key_order_over_pages(ddb: Any, forward: bool) -> None:
    keys, pages = _pages(
        ddb,
        KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": "P#007"}, ":e": {"S": "E#"}},
        ScanIndexForward=forward,
        Limit=5,
    )
    expected = sorted((("P#007", f"E#{i:03d}") for i in range(PER_PARTITION)), reverse=not forward)
    assert keys == expected
    assert pages == 3


def test_a_range_condition_and_a_missing_partition(ddb: Any) -> None:
    keys, _ = _pages(
        ddb,
        KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":p": {"S": "P#013"}, ":a": {"S": "E#003"}, ":b": {"S": "E#006"}},
    )
    assert keys == [("P#013", f"E#{i:03d}") for i in range(3, 7)]
    assert _pages(ddb, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}}) == ([], 1)


@pytest.mark.parametrize("forward", [True, False])
def test_an_index_query_answers_in_the_index_order_over_pages(ddb: Any, forward: bool) -> None:
    answer_keys: list[tuple[str, str]] = []
    start = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        answer = ddb.query(
            TableName="t",
            IndexName="by-status",
            KeyConditionExpression="#s = :s AND due < :d",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "open"}, ":d": {"S": "30"}},
            ScanIndexForward=forward,
            Limit=7,
            **extra,
        )
        answer_keys += [(item["due"]["S"], item["pk"]["S"]) for item in answer["Items"]]
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    expected = sorted(
        (
            (f"{(i * 7) % 50:02d}#{p:03d}", f"P#{p:03d}")
            for p in range(PARTITIONS)
            for i in range(0, PER_PARTITION, 3)
            if p % 2 and f"{(i * 7) % 50:02d}" < "30"
        ),
        reverse=not forward,
    )
    assert answer_keys == expected


def test_scan_still_walks_the_table_in_moto_order(ddb: Any) -> None:
    seen, start = [], None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        answer = ddb.scan(TableName="t", Limit=50, **extra)
        seen += [(item["pk"]["S"], item["sk"]["S"]) for item in answer["Items"]]
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    assert len(seen) == len(set(seen)) == PARTITIONS * PER_PARTITION


def test_a_table_query_compares_only_its_partitions_keys(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    compared = {"n": 0}
    original = DynamoType.__lt__

    def counting(self: Any, other: Any) -> bool:
        compared["n"] += 1
        return bool(original(self, other))

    monkeypatch.setattr(DynamoType, "__lt__", counting)
    ddb.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "P#021"}})
    # Sorting the partition's 12 items; moto as shipped sorts all 480 first (thousands of comparisons).
    assert compared["n"] <= 4 * PER_PARTITION, compared
