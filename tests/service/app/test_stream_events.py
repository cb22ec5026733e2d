"""Downstream events derived from the table's stream: which write announces what (a pure function of
the old and new image), stable ids on redelivery, and publishing in batches against the emulator's
EventBridge with rejected entries retried and the first unpublished record reported."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meetpilot.adapters.eventbridge import EventBridgePublisher
from meetpilot.app.stream_events import StreamChange, events_for, publish_changes
from tests.support.event_schemas import validate

KEY = "meet.google.com/abc-defg-hij@2026-05-04T10:00Z"


def session_image(version: int, status: str = "joining", **extra: Any) -> dict[str, Any]:
    image: dict[str, Any] = {
        "pk": "SESSION#s1",
        "sk": "SESSION",
        "type": "session",
        "session_id": "s1",
        "meeting_key": KEY,
        "bot_id": "bot-1",
        "status": status,
        "version": version,
        "updated_at": f"2026-05-04T10:0{version % 10}:00.000Z",
        "history": [{"event": "bot.joining"}],
    }
    image.update(extra)
    return image


def modify(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, seq: str = "100") -> StreamChange:
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    return StreamChange(seq, name, old, new)


def envelope(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": "meetpilot", "detail-type": entry["detail_type"], "detail": entry["detail"]}


TRANSCRIPT = {
    "bucket": "meetpilot-transcripts",
    "keys": {
        "json": "transcripts/s1/transcript.json",
        "txt": "transcripts/s1/transcript.txt",
        "vtt": "transcripts/s1/transcript.vtt",
    },
    "words": 42,
    "turns": 3,
    "speaker_count": 2,
    "duration_seconds": 61.5,
}


# --- the mapping ------------------------------------------------------------------------------


def test_a_status_change_is_announced_with_the_new_version_as_sequence() -> None:
    (entry,) = events_for(modify(session_image(3, "joining"), session_image(4, "in_meeting")))
    validate(envelope(entry))
    detail = entry["detail"]
    assert entry["detail_type"] == "SessionStatusChanged"
    assert (detail["old_status"], detail["new_status"], detail["sequence"]) == ("joining", "in_meeting", 4)
    assert detail["at"] == "2026-05-04T10:04:00.000Z" and detail["needs_review"] is False


def test_a_redelivered_record_gives_the_same_event_id_and_another_write_another() -> None:
    old, new = session_image(3, "joining"), session_image(4, "in_meeting")
    first, again = events_for(modify(old, new)), events_for(modify(dict(old), dict(new), seq="999"))
    assert first == again
    later = events_for(modify(session_image(4, "in_meeting"), session_image(5, "recording")))
    assert later[0]["detail"]["event_id"] != first[0]["detail"]["event_id"]


def test_an_outcome_change_alone_is_announced_and_flags_review() -> None:
    old = session_image(7, "stopped")
    new = session_image(8, "stopped", outcome="bot_failed", outcome_reason="the bot crashed in the meeting")
    (entry,) = events_for(modify(old, new))
    validate(envelope(entry))
    assert entry["detail"]["outcome"] == "bot_failed" and entry["detail"]["needs_review"] is True
    assert entry["detail"]["old_status"] == entry["detail"]["new_status"] == "stopped"


def test_a_stored_transcript_is_announced_once_with_its_outcome() -> None:
    old = session_image(9, "done", transcript_state="queued")
    new = session_image(10, "done", outcome="transcript_stored", transcript=TRANSCRIPT)
    kinds = [e["detail_type"] for e in events_for(modify(old, new))]
    assert kinds == ["SessionStatusChanged", "TranscriptReady"]
    ready = events_for(modify(old, new))[1]
    validate(envelope(ready))
    assert ready["detail"]["word_count"] == 42 and ready["detail"]["outcome"] == "transcript_stored"
    # A later write that keeps the same transcript announces nothing more.
    again = session_image(11, "done", outcome="transcript_stored", transcript=TRANSCRIPT, reconcile_attempts=1)
    assert events_for(modify(new, again)) == []


def test_a_write_that_changes_neither_status_outcome_nor_transcript_announces_nothing() -> None:
    old = session_image(4, "in_meeting")
    new = session_image(5, "in_meeting", history=[{"event": "bot.joining"}, {"event": "bot.unknown"}])
    assert events_for(modify(old, new)) == []


def test_a_new_pending_session_announces_nothing_and_one_created_further_on_does() -> None:
    assert events_for(modify(None, session_image(0, "pending"))) == []
    (entry,) = events_for(modify(None, session_image(0, "scheduled")))
    assert (entry["detail"]["old_status"], entry["detail"]["sequence"]) == ("pending", 1)
    validate(envelope(entry))


def test_deletes_announce_nothing() -> None:
    assert events_for(modify(session_image(5, "done"), None)) == []  # forgetting a session, or TTL
    calendar = {"pk": "CALENDARS", "sk": "CAL#c1", "type": "calendar", "calendar_id": "c1"}
    assert events_for(modify(calendar, None)) == []


def calendar_image(**extra: Any) -> dict[str, Any]:
    image = {
        "pk": "CALENDARS",
        "sk": "CAL#c1",
        "type": "calendar",
        "calendar_id": "c1",
        "user_id": "u1",
        "kind": "google",
        "sealed_refresh_token": "sealed-bytes",
    }
    image.update(extra)
    return image


def test_a_calendar_disconnect_is_announced_once() -> None:
    disconnected = calendar_image(
        disconnected_reason="Google refused the grant (invalid_grant)", disconnected_at="2026-05-04T09:00:00.000Z"
    )
    (entry,) = events_for(modify(calendar_image(), disconnected))
    validate(envelope(entry))
    assert entry["detail_type"] == "CalendarDisconnected"
    assert entry["detail"]["provider"] == "google" and entry["detail"]["disconnected_at"] == "2026-05-04T09:00:00.000Z"
    assert "sealed" not in json.dumps(entry)  # never anything of the grant
    # The same disconnected calendar written again (its lease released, say): nothing new.
    assert events_for(modify(disconnected, {**disconnected, "last_error_at": "2026-05-04T09:05:00.000Z"})) == []
    # Reconnected, then disconnected again: a new event.
    again = {**disconnected, "disconnected_at": "2026-05-05T09:00:00.000Z"}
    (second,) = events_for(modify(calendar_image(), again))
    assert second["detail"]["event_id"] != entry["detail"]["event_id"]


def test_a_new_live_segment_is_announced_from_its_own_item() -> None:
    item = {
        "pk": "SESSION#s1",
        "sk": "LIVE#2026-05-04T10:01:02.000Z#" + "a" * 32,
        "type": "live_segment",
        "session_id": "s1",
        "meeting_key": KEY,
        "segment_bot": "bot-1",
        "speaker": "Ada",
        "text": "hello there",
        "spoken_at": "2026-05-04T10:01:02.000Z",
        "received_at": "2026-05-04T10:01:03.000Z",
        "words": json.dumps({"start": 1.0, "end": 2.5, "words": []}),
    }
    (entry,) = events_for(modify(None, item))
    validate(envelope(entry))
    assert entry["detail"]["segment_id"] == "a" * 32 and entry["detail"]["start_seconds"] == 1.0
    assert events_for(modify(item, {**item, "expires_at": 1})) == []  # only when first stored


def test_items_that_never_announce_anything_give_no_event() -> None:
    meeting = {"pk": f"MEETING#{KEY}", "sk": "MEETING", "type": "meeting", "status": "scheduled"}
    assert events_for(modify({**meeting, "status": "pending"}, meeting)) == []


# --- publishing against the emulator's EventBridge ----------------------------------------------


@pytest.fixture
def bus() -> Iterator[tuple[Any, Any, str]]:
    """moto's EventBridge with a rule sending every meetpilot event to a queue we read back."""
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="tap", EventPattern=json.dumps({"source": ["meetpilot"]}), State="ENABLED")
        events.put_targets(Rule="tap", Targets=[{"Id": "q", "Arn": arn}])
        yield events, sqs, url


def delivered(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for message in got:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def reject_entries_naming(events: Any, event_ids: set[str], times: int) -> list[int]:
    """Make EventBridge itself reject entries: the first ``times`` PutEvents calls go out with the
    chosen entries' DetailType blanked, which the emulator answers with an ErrorCode for them."""
    calls: list[int] = []

    def blank(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Entries"]))
        if len(calls) > times:
            return
        for entry in params["Entries"]:
            if json.loads(entry["Detail"])["event_id"] in event_ids:
                entry["DetailType"] = ""

    events.meta.events.register("before-parameter-build.events.PutEvents", blank)
    return calls


def walk(count: int) -> list[StreamChange]:
    """``count`` writes of one session, each moving its status on."""
    statuses = ["pending", "scheduled", "joining", "in_waiting_room", "in_meeting", "recording", "leaving"]
    statuses += ["stopped", "done"]
    changes = []
    for n in range(count):
        old = session_image(n, statuses[n % len(statuses)], session_id=f"s{n // 8}")
        new = session_image(n + 1, statuses[(n + 1) % len(statuses)], session_id=f"s{n // 8}")
        changes.append(StreamChange(str(1000 + n), "MODIFY", old, new))
    return changes


def test_a_batch_goes_out_in_putevents_calls_of_ten(bus: tuple[Any, Any, str]) -> None:
    events, sqs, url = bus
    calls = reject_entries_naming(events, set(), times=0)
    outcome = publish_changes(walk(23), EventBridgePublisher(events))
    assert calls == [10, 10, 3]
    assert outcome.failed_sequence_numbers == [] and len(outcome.published) == 23
    got = delivered(sqs, url)
    assert len(got) == 23
    for event in got:
        validate(event)


def test_rejected_entries_are_retried_and_only_they(bus: tuple[Any, Any, str]) -> None:
    events, sqs, url = bus
    changes = walk(12)
    victim = events_for(changes[4])[0]["detail"]["event_id"]
    calls = reject_entries_naming(events, {victim}, times=1)
    paused: list[int] = []
    outcome = publish_changes(changes, EventBridgePublisher(events), pause=paused.append)
    assert calls == [10, 2, 1]  # the retry sends the one rejected entry alone
    assert paused == [1]
    assert outcome.failed_sequence_numbers == [] and outcome.rejected == 0
    ids = [e["detail"]["event_id"] for e in delivered(sqs, url)]
    assert sorted(ids) == sorted(events_for(c)[0]["detail"]["event_id"] for c in changes)


def test_an_entry_rejected_on_every_attempt_fails_its_record_and_no_earlier_one(bus: tuple[Any, Any, str]) -> None:
    events, sqs, url = bus
    changes = walk(12)
    victims = {events_for(changes[n])[0]["detail"]["event_id"] for n in (6, 9)}
    reject_entries_naming(events, victims, times=99)
    outcome = publish_changes(changes, EventBridgePublisher(events), attempts=3)
    # Lambda checkpoints before the first failed record and hands it (and what follows) over again.
    assert outcome.failed_sequence_numbers == [changes[6].sequence_number]
    assert outcome.rejected == 2 and len(outcome.published) == 10
    assert len(delivered(sqs, url)) == 10


class Unreachable:
    def publish(self, entries: Sequence[Mapping[str, Any]]) -> set[str]:
        raise ConnectionError("EventBridge is having a bad minute")


def test_an_unreachable_bus_fails_the_first_record_with_events() -> None:
    changes = [modify(session_image(4), session_image(5, history=[]), seq="7"), *walk(3)]
    outcome = publish_changes(changes, Unreachable())
    assert outcome.failed_sequence_numbers == [changes[1].sequence_number]  # the first one announced nothing
    assert outcome.error == "ConnectionError" and outcome.published == []
