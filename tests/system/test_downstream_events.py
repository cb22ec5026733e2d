"""Downstream events (docs/events.md): published to EventBridge after the state change is stored,
read back through the local stack's rule-to-queue tap, and valid against the documented schemas;
a failing EventBridge loses no event and fails no delivery."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from meetpilot.app.reconcile import reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.status import Outcome
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.stack.embedded import LocalStack
from tests.support.event_schemas import schemas, validate
from tests.support.stacks import run_until

URL = "https://meet.google.com/evt-abcd-efg"


class UnreachableBus:
    def __init__(self) -> None:
        self.calls = 0

    def publish(self, entries: Any) -> set[str]:
        self.calls += 1
        raise ConnectionError("EventBridge is having a bad minute")


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
    assert stack.session_for(session.meeting_key).outbox == []  # everything went out


def test_a_session_needing_review_says_so(stack_factory: Callable[..., LocalStack]) -> None:
    stack = stack_factory(transcript_provider=None)  # without transcription a crashed bot is settled at once
    session = stack.session_for(_record(stack, "https://meet.google.com/rvw-abcd-efg", Scenario.BOT_FAILED))
    assert session.outcome is Outcome.BOT_FAILED
    flagged = [e["detail"] for e in stack.published_events("SessionStatusChanged") if e["detail"]["needs_review"]]
    assert [d["outcome"] for d in flagged] == ["bot_failed"]


def test_an_unreachable_bus_fails_no_delivery_and_the_reconciler_publishes_later(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory()
    real = stack.container.event_publisher
    broken = UnreachableBus()
    stack.container.__dict__["event_publisher"] = broken  # what the handlers get from now on
    key = _record(stack)
    session = stack.session_for(key)

    assert broken.calls > 0
    assert stack.handler_errors == []  # no record failed, so no delivery is retried or dead-lettered
    for dlq in stack.resources.dlq_urls.values():
        attrs = stack.container.client("sqs").get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert session.outcome is Outcome.TRANSCRIPT_STORED  # the state changes are all stored
    assert stack.published_events() == []
    kinds = [entry["detail_type"] for entry in session.outbox]
    assert "TranscriptReady" in kinds and kinds.count("SessionStatusChanged") >= 5

    # The outbox keeps the session in the reconciler's index; its next round publishes it.
    stack.container.__dict__["event_publisher"] = real
    later = FixedClock(datetime.now(UTC) + timedelta(minutes=3))
    c = stack.container
    report = reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=later,
        events=real,
    )
    assert len(report.published) == len(session.outbox)
    published = stack.published_events()
    assert sorted(e["detail"]["event_id"] for e in published) == sorted(
        entry["detail"]["event_id"] for entry in session.outbox
    )
    for event in published:
        validate(event)
    assert stack.session_for(key).outbox == []
    # Published once: a further round finds nothing left.
    again = reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=FixedClock(later.now() + timedelta(minutes=3)),
        events=real,
    )
    assert again.published == []


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
