"""The SQS partial-batch loop: failures reported by id, records side by side when asked, and each
record's correlation keys on its own log lines only."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meetpilot.handlers.observability import correlate, correlated, logger
from meetpilot.handlers.sqs_batch import SqsRecord, run_batch


def _event(*bodies: str) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "body": body} for i, body in enumerate(bodies)]}


def test_the_records_that_raise_are_the_failures_in_record_order() -> None:
    def handle(record: SqsRecord) -> None:
        if record.body.startswith("bad"):
            raise ValueError(record.body)

    for concurrency in (1, 4):
        result = run_batch(_event("ok", "bad 1", "ok", "bad 2"), None, handle, concurrency=concurrency)
        assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}


def test_side_by_side_records_wait_together_not_in_turn() -> None:
    # Each record waits until all five are in: only possible when they run at the same time.
    together = threading.Barrier(5, timeout=10)

    def handle(record: SqsRecord) -> None:
        together.wait()

    result = run_batch(_event(*"abcde"), None, handle, concurrency=5)
    assert result == {"batchItemFailures": []}

    one_by_one = threading.Barrier(2, timeout=0.2)

    def alone(record: SqsRecord) -> None:
        one_by_one.wait()

    # One at a time, the first record waits for a second that never comes alongside it.
    assert len(run_batch(_event("a", "b"), None, alone)["batchItemFailures"]) >= 1


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Powertools logger writes while the test runs."""
    out = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream, level = handler.setStream(out), logger.log_level
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    finally:
        handler.setStream(stream)
        logger.setLevel(level)


def test_each_records_correlation_keys_stay_on_its_own_lines(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    met = threading.Barrier(4, timeout=10)

    def handle(record: SqsRecord) -> None:
        with correlated(meeting_key=f"meeting {record.body}"):
            met.wait()  # all four blocks are open at once
            correlate(bot_id=f"bot {record.body}")
            met.wait()
            logger.info("handled", extra={"body": record.body})

    assert run_batch(_event(*"wxyz"), None, handle, concurrency=4) == {"batchItemFailures": []}
    logger.info("after the batch")
    lines = log_lines()
    handled = [line for line in lines if line.get("message") == "handled"]
    assert len(handled) == 4
    for line in handled:
        assert line["meeting_key"] == f"meeting {line['body']}"
        assert line["bot_id"] == f"bot {line['body']}"
    after = next(line for line in lines if line.get("message") == "after the batch")
    assert "meeting_key" not in after and "bot_id" not in after
