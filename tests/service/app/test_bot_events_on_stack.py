"""Webhook deliveries applied to sessions through ingest and bot_events on the embedded stack."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meetpilot.composition import Container, use_container
from meetpilot.domain.clock import to_iso
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import BotStatus, Outcome, StopReason
from meetpilot.domain.webhook_auth import capability_token, sign_body

BOT = "6667fd0c-0165-471a-a880-06a1180be377"
T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def session(stack):
    s = Session(
        session_id="sess-42",
        meeting_key="https://zoom.us/j/1|2026-12-01T15:00Z",
        transcript_mode=TranscriptMode.POST_CALL,
        bot_id=BOT,
        transcript_id="tr-1",
    )
    assert stack.container.repository.create_session(s, datetime.now(UTC))
    return s


def event(name, bot_event=None, *, second=0, status=None, code=200, bot=BOT, **extra):
    body = {
        "event": name,
        "bot_event": bot_event or name,
        "bot_id": bot,
        "status_code": code,
        "timestamp": to_iso(T0 + timedelta(seconds=second)),
        "message": name,
    }
    if status:
        body["bot_status"] = status
    body.update(extra)
    return body


def deliver(stack, session_id, payload) -> int:
    url = f"{stack.gateway.url}/webhooks/meetstream/{session_id}/{capability_token(stack.webhook_secret, session_id)}"
    return httpx.post(
        url, content=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    ).status_code


def transcript_jobs(stack) -> list[dict]:
    sqs = stack.container.client("sqs")
    url = stack.container.settings.transcript_queue_url
    out = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def apply_all(stack):
    stack.feeders["BotEventsFunction"].drain()


def current(stack, session):
    return stack.container.repository.get_session(session.session_id)


def test_duplicate_webhook_is_a_noop_and_enqueues_one_transcript_job(stack, session):
    stopped = event("bot.stopped", "bot.stopped", second=10, status="Stopped")
    processed = event("transcription.processed", second=20)
    for p in (stopped, processed, processed, stopped, processed):
        assert deliver(stack, session.session_id, p) == 200
    apply_all(stack)
    s = current(stack, session)
    assert [h["name"] for h in s.history] == ["bot.stopped", "transcription.processed"]
    assert s.transcript_state is TranscriptState.QUEUED and not s.transcript_job_pending
    jobs = transcript_jobs(stack)
    assert len(jobs) == 1 and jobs[0]["session_id"] == session.session_id


def test_reordered_and_stale_webhooks_never_move_backwards_nor_enqueue_twice(stack, session):
    sequence = [
        event("bot.recording", second=3, status="Recording"),
        event("bot.done", second=30, status="Done"),
        event("bot.joining", second=1, status="Joining"),  # stale, arrives late
        event("transcription.processed", second=25),  # reordered after bot.done
        event("bot.stopped", "bot.stopped", second=10, status="Stopped"),
    ]
    for p in sequence:
        deliver(stack, session.session_id, p)
        apply_all(stack)
        assert current(stack, session).status.rank >= BotStatus.RECORDING.rank
    s = current(stack, session)
    assert s.status is BotStatus.DONE and s.stop_reason is StopReason.STOPPED
    assert len(s.history) == 5
    assert len(transcript_jobs(stack)) == 1


def test_event_naming_another_bot_is_rejected_and_changes_nothing(stack, session):
    deliver(stack, session.session_id, event("bot.inmeeting", status="InMeeting", bot="intruder-bot"))
    apply_all(stack)
    s = current(stack, session)
    assert s.status is BotStatus.PENDING and s.history == [] and s.version == 0


def test_old_shape_terminal_with_reason_in_bot_status(stack, session):
    legacy = {
        "event": "bot.stopped",
        "bot_id": BOT,
        "bot_status": "NotAllowed",
        "status_code": 500,
        "message": "Failed: Not admitted to meeting",
    }
    deliver(stack, session.session_id, legacy)
    apply_all(stack)
    s = current(stack, session)
    assert s.stop_reason is StopReason.NOT_ALLOWED and s.outcome is Outcome.NOT_ADMITTED


def test_signed_delivery_finds_its_session_by_custom_attributes_or_bot_id(stack, session):
    for second, payload in enumerate(
        [
            event("bot.joining", second=1, status="Joining", custom_attributes={"session_id": session.session_id}),
            event("bot.inmeeting", second=2, status="InMeeting"),  # no attributes: found through by-bot
        ]
    ):
        body = json.dumps(payload).encode()
        headers = {
            "content-type": "application/json",
            "x-meetstream-signature": sign_body(stack.signing_secret, body),
            "x-meetstream-timestamp": to_iso(datetime.now(UTC)),
        }
        assert httpx.post(f"{stack.gateway.url}/webhooks/meetstream", content=body, headers=headers).status_code == 200
        apply_all(stack)
        assert len(current(stack, session).history) == second + 1
    assert current(stack, session).status is BotStatus.IN_MEETING


def test_transcript_job_survives_a_queue_failure_between_decision_and_send(stack, session):
    settings = stack.container.settings
    broken = Container(
        replace(settings, transcript_queue_url=settings.transcript_queue_url + "-gone"),
        boto_session=stack.boto_session,
        endpoint_url=stack.aws_endpoint,
    )
    processed = event("transcription.processed", second=20)
    deliver(stack, session.session_id, processed)
    use_container(broken)
    try:
        apply_all(stack)  # the decision is written, the send fails, the record fails
    finally:
        use_container(stack.container)
    s = current(stack, session)
    assert s.transcript_state is TranscriptState.QUEUED and s.transcript_job_pending
    assert transcript_jobs(stack) == []
    # SQS redelivers the failed record after its visibility timeout; here we redeliver it now.
    deliver(stack, session.session_id, processed)
    apply_all(stack)
    assert len(transcript_jobs(stack)) == 1
    assert not current(stack, session).transcript_job_pending


def test_a_signed_body_replayed_with_a_fresh_timestamp_passes_the_edge_and_is_a_noop(stack, session):
    # MeetStream's signature covers the body, not X-MeetStream-Timestamp: a captured delivery sent
    # again later with a new timestamp is genuine as far as the edge can tell. The worker's dedupe
    # (on the body's own bot, names and timestamp) must make it change nothing.
    url = f"{stack.gateway.url}/webhooks/meetstream"
    bodies = [
        json.dumps(event("bot.stopped", "bot.stopped", second=10, status="Stopped")).encode(),
        json.dumps(event("transcription.processed", second=20)).encode(),
    ]

    def post_signed(body: bytes, sent_at: datetime) -> int:
        headers = {
            "content-type": "application/json",
            "x-meetstream-signature": sign_body(stack.signing_secret, body),
            "x-meetstream-timestamp": to_iso(sent_at),
        }
        return httpx.post(url, content=body, headers=headers).status_code

    for body in bodies:
        assert post_signed(body, datetime.now(UTC)) == 200
    apply_all(stack)
    first = current(stack, session)
    assert [h["name"] for h in first.history] == ["bot.stopped", "transcription.processed"]
    assert len(transcript_jobs(stack)) == 1
    published = stack.published_events()
    assert published, "the first deliveries announce the change"

    # The replay: the same signed bodies, each with a timestamp minted now (inside the window).
    for body in bodies:
        assert post_signed(body, datetime.now(UTC) + timedelta(seconds=30)) == 200
    apply_all(stack)
    after = current(stack, session)
    assert after.history == first.history  # no second history entry
    assert (after.status, after.stop_reason, after.transcript_state) == (
        first.status,
        first.stop_reason,
        first.transcript_state,
    )
    assert after.version == first.version  # not even a write
    assert transcript_jobs(stack) == []  # no second transcript job
    assert stack.published_events() == published  # (every event so far) no second event
