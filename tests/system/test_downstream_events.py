"""Downstream events (docs/events.md): derived from the table's stream after the state change is
stored, read back through the local stack's rule-to-queue tap, and valid against the documented
schemas; a failing EventBridge fails no delivery, delays events while the stream retries and, past
the retries, names the batch in the publisher's failure queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from meetpilot.domain.status import Outcome
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.stack.embedded import LocalStack
from tests.support.event_schemas import schemas, validate
from tests.support.stacks import run_until

URL = "https://meet.google.com/evt-abcd-efg"


class UnreachableBus:
    """Down for its first ``failures`` calls (all of them by default), then the real bus."""

    def __init__(self, real: Any = None, failures: int = 10**9) -> None:
        self.calls = 0
        self._real = real
        self._failures = failures

    def publish(self, entries: Any) -> set[str]:
        self.calls += 1
        if self.calls <= self._failures or self._real is None:
            raise ConnectionError("EventBridge is having a bad minute")
        return set(self._real.publish(entries))


def _record(stack: LocalStack, url: str = URL, scenario: Scenario = Scenario.NORMAL) -> str:
    stack.simulator.set_scenario(url, scenario)
    key = stack.submit_meeting(url, datetime.now(UTC) + timedelta(seconds=2), title="Events")
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.outcome is not None, 60)
    return key


def test_the_documented_schemas_cover_every_detail_type() -> None:
    assert set(schemas()) == {
        "SessionStatusChanged",
        "TranscriptReady",
        "LiveTranscriptSegment",
        "CalendarDisconnected",
    }
    bad = {"schema_version": "1", "event_id": "nothex", "session_id": "s"}
    with pytest.raises(jsonschema.ValidationError):
        validate({"source": "meetpilot", "detail-type": "SessionStatusChanged", "detail": bad})


def test_a_recorded_meeting_publishes_every_status_change_and_its_transcript(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory()
    session = stack.session_for(_record(stack))
    assert session.outcome is Outcome.TRANSCRIPT_STORED
    events = stack.published_events()
    for event in events:
        validate(event)
    changes = sorted(
        (e["detail"] for e in events if e["detail-type"] == "SessionStatusChanged"), key=lambda d: d["sequence"]
    )
    assert {d["session_id"] for d in changes} == {session.session_id}
    walked = [changes[0]["old_status"], *(d["new_status"] for d in changes)]
    # Forward only, every status the bot went through, each announced once.
    assert walked[0] == "pending" and walked[-1] == "done"
    for status in ("joining", "in_meeting", "recording", "stopped"):
        assert status in walked
    assert len({d["event_id"] for d in changes}) == len(changes)
    assert changes[-1]["outcome"] == "transcript_stored" or any(d["outcome"] == "transcript_stored" for d in changes)
    assert not any(d["needs_review"] for d in changes)
    assert {d["bot_id"] for d in changes[1:]} == {session.bot_id}

    (ready,) = [e["detail"] for e in events if e["detail-type"] == "TranscriptReady"]
    assert ready["bucket"] == stack.resources.bucket
    assert ready["word_count"] == session.transcript["words"] > 0
    assert ready["source"] == "post_call" and ready["partial"] is False
    s3 = stack.container.client("s3")
    for key in ready["keys"].values():
        s3.head_object(Bucket=ready["bucket"], Key=key)
    # Each status event's sequence is the version its write gave the session: none from the future.
    assert changes[-1]["sequence"] <= stack.session_for(session.meeting_key).version
    assert stack.quiet()  # the stream is read to its end


def test_a_session_needing_review_says_so(stack_factory: Callable[..., LocalStack]) -> None:
    stack = stack_factory(transcript_provider=None)  # without transcription a crashed bot is settled at once
    session = stack.session_for(_record(stack, "https://meet.google.com/rvw-abcd-efg", Scenario.BOT_FAILED))
    assert session.outcome is Outcome.BOT_FAILED
    flagged = [e["detail"] for e in stack.published_events("SessionStatusChanged") if e["detail"]["needs_review"]]
    assert [d["outcome"] for d in flagged] == ["bot_failed"]


def _no_dead_letters(stack: LocalStack) -> None:
    assert stack.handler_errors == []  # no record failed, so no delivery is retried or dead-lettered
    sqs = stack.container.client("sqs")
    for name, dlq in stack.resources.dlq_urls.items():
        attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0", name


def test_a_bus_down_for_a_moment_delays_the_events_and_loses_none(stack_factory: Callable[..., LocalStack]) -> None:
    stack = stack_factory()
    real = stack.container.event_publisher
    # Every attempt of the first invocation fails, and the first of the retry: the stream hands
    # the same records over again and their events go out then, once each.
    flaky = UnreachableBus(real, failures=4)
    stack.container.__dict__["event_publisher"] = flaky  # what the publisher gets from now on
    session = stack.session_for(_record(stack))
    assert flaky.calls > 4
    _no_dead_letters(stack)
    (feeder,) = stack.stream_feeders.values()
    assert feeder.failed_invocations >= 1 and feeder.records_given_up == 0
    events = stack.published_events()
    for event in events:
        validate(event)
    changes = [e["detail"] for e in events if e["detail-type"] == "SessionStatusChanged"]
    assert len({d["event_id"] for d in changes}) == len(changes)
    walked = [d["new_status"] for d in sorted(changes, key=lambda d: d["sequence"])]
    assert walked[-1] == "done" and "recording" in walked
    assert [e["detail"]["session_id"] for e in events if e["detail-type"] == "TranscriptReady"] == [session.session_id]


def test_a_bus_down_past_every_retry_fails_no_delivery_and_names_the_batch_in_the_failure_queue(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory()
    broken = UnreachableBus()
    stack.container.__dict__["event_publisher"] = broken
    session = stack.session_for(_record(stack))
    assert session.outcome is Outcome.TRANSCRIPT_STORED  # the state changes are all stored
    assert broken.calls > 0
    _no_dead_letters(stack)
    assert stack.published_events() == []
    (feeder,) = stack.stream_feeders.values()
    assert feeder.records_given_up > 0
    sqs = stack.container.client("sqs")
    failures = stack.resources.url("StreamPublisherFailureQueue")
    got = sqs.receive_message(QueueUrl=failures, MaxNumberOfMessages=10)["Messages"]
    info = [json.loads(m["Body"])["DDBStreamBatchInfo"] for m in got]
    assert info and all(i["streamArn"] == stack.resources.table_stream_arn for i in info)
    # The pointer names where the records were, never what they held.
    assert session.meeting_key not in json.dumps([m["Body"] for m in got])


def test_metrics_are_written_as_emf_for_dispatch_webhooks_and_transcripts(
    stack_factory: Callable[..., LocalStack], capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    stack = stack_factory()
    capsys.readouterr()
    _record(stack)
    rejected = httpx.post(f"{stack.gateway.url}/webhooks/meetstream/nosuch/badtoken", content=b"{}")
    assert rejected.status_code == 401
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names: dict[str, list[dict[str, Any]]] = {}
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "meetpilot"
        for metric in directive["Metrics"]:
            names.setdefault(metric["Name"], []).append(blob)
    for name in (
        "BotsDispatched",
        "DispatchLateness",
        "WebhooksAccepted",
        "EventsApplied",
        "TranscriptsStored",
        "TranscriptLatency",
        "EventsPublished",
        "WebhooksRejected",
    ):
        assert name in names, f"{name} not written; got {sorted(names)}"
    assert all(blob["service"] == "meetpilot" for blobs_ in names.values() for blob in blobs_)
    (reject,) = names["WebhooksRejected"]
    assert reject["reason"] == "bad_token" and _values(reject["WebhooksRejected"]) == [1.0]
    lateness = [v for blob in names["DispatchLateness"] for v in _values(blob["DispatchLateness"])]
    assert all(0 <= v < 60 for v in lateness)
    latency = [v for blob in names["TranscriptLatency"] for v in _values(blob["TranscriptLatency"])]
    assert latency and all(0 <= v < 60 for v in latency)


def _values(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]
