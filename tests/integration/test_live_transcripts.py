"""Live transcripts end to end on the local stack: the simulator posts interim and final results
(duplicated by a fault) to the live route; final segments are kept once, published as
LiveTranscriptSegment events, and become the stored transcript of a streaming-only bot, or the
partial transcript of a bot whose post-call transcription failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from meetpilot.domain.status import Outcome
from meetpilot.domain.webhook_auth import capability_token
from meetpilot.local.stack import LocalStack
from meetpilot.simulator import Scenario
from meetpilot.simulator.config import Faults
from tests.integration.conftest import run_until
from tests.integration.event_schemas import validate

SEGMENTS = 4


def _run(stack: LocalStack, url: str, scenario: Scenario = Scenario.NORMAL, *, until: str = "outcome") -> str:
    stack.simulator.set_scenario(url, scenario)
    key = stack.submit_meeting(url, datetime.now(UTC) + timedelta(seconds=2), title="Live")

    def done() -> bool:
        session = stack.session_for(key)
        if session is None or session.outcome is None:
            return False
        return until == "outcome" or bool(session.transcript.get("partial"))

    assert run_until(stack, done, 60), stack.session_for(key)
    return key


def _read(stack: LocalStack, bucket: str, key: str) -> str:
    body = stack.container.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body.decode()


def test_a_streaming_only_bot_ends_with_a_transcript_from_its_final_segments(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory(
        transcript_provider="deepgram_streaming",
        time_scale=0.02,  # the assembly waits for in-flight deliveries: 30 s, scaled down
        simulator_overrides={"live_segments": SEGMENTS, "faults": Faults(duplicate_webhook=1.0)},
    )
    session = stack.session_for(_run(stack, "https://meet.google.com/liv-abcd-efg"))
    assert session.outcome is Outcome.TRANSCRIPT_STORED, session.outcome_reason
    assert session.transcript["source"] == "live" and session.transcript["turns"] == SEGMENTS

    live = [d for d in stack.simulator.deliveries() if d["name"] == "live_transcript"]
    finals = [d for d in live if d["body"]["is_final"]]
    assert len(finals) == 2 * SEGMENTS  # each final result arrived twice
    assert len(live) == 4 * SEGMENTS  # and each interim one too
    assert all(d["status"] == 200 for d in live)
    assert all("/webhooks/meetstream/live/" in d["url"] for d in live)

    bucket = session.transcript["bucket"]
    text = _read(stack, bucket, session.transcript["keys"]["txt"])
    spoken = list(dict.fromkeys(d["body"]["new_text"] for d in finals))
    assert [line.split(": ", 1)[1] for line in text.splitlines()] == spoken  # once each, in order
    document = json.loads(_read(stack, bucket, session.transcript["keys"]["json"]))
    assert document["summary"]["turns"] == SEGMENTS and document["metadata"]["source"] == "live"
    assert _read(stack, bucket, session.transcript["keys"]["vtt"]).startswith("WEBVTT")

    segments = stack.published_events("LiveTranscriptSegment")
    assert sorted(e["detail"]["text"] for e in segments) == sorted(spoken)  # duplicates not announced
    for event in stack.published_events():
        validate(event)
    (ready,) = stack.published_events("TranscriptReady")
    assert ready["detail"]["source"] == "live" and ready["detail"]["partial"] is False
    assert ready["detail"]["word_count"] == session.transcript["words"] > 0


def test_without_final_segments_a_streaming_only_bot_is_flagged_streaming_only(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory(
        transcript_provider="deepgram_streaming", time_scale=0.02, simulator_overrides={"live_segments": 0}
    )
    session = stack.session_for(_run(stack, "https://meet.google.com/liv-none-efg"))
    assert session.outcome is Outcome.STREAMING_ONLY
    assert "no final live segment" in (session.outcome_reason or "")
    assert stack.published_events("TranscriptReady") == []


def test_a_failed_post_call_transcription_keeps_the_live_one_as_partial(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory(live_transcripts="true", simulator_overrides={"live_segments": SEGMENTS})
    key = _run(stack, "https://meet.google.com/liv-fail-efg", Scenario.TRANSCRIPTION_FAILED, until="partial")
    session = stack.session_for(key)
    assert session.outcome is Outcome.TRANSCRIPTION_FAILED  # the verdict stands
    assert session.transcript["partial"] is True and session.transcript["turns"] == SEGMENTS
    assert "/live/" in session.transcript["keys"]["json"]
    (ready,) = stack.published_events("TranscriptReady")
    validate(ready)
    assert ready["detail"]["partial"] is True and ready["detail"]["outcome"] == "transcription_failed"


def test_the_live_route_takes_only_its_own_token(stack_factory: Callable[..., LocalStack]) -> None:
    stack = stack_factory(
        transcript_provider="deepgram_streaming",
        time_scale=0.02,  # the assembly's 30 s wait for in-flight deliveries, scaled down
        simulator_overrides={"live_segments": 0},
    )
    session = stack.session_for(_run(stack, "https://meet.google.com/liv-tokn-efg"))
    sid = session.session_id
    final = {"bot_id": session.bot_id, "timestamp": "2026-01-01T10:00:00Z", "new_text": "hello", "is_final": True}
    body = json.dumps(final)
    base = f"{stack.gateway.url}/webhooks/meetstream"
    lifecycle_token = capability_token(stack.webhook_secret, sid)
    live_token = capability_token(stack.webhook_secret, sid, live=True)
    answers = [
        httpx.post(f"{base}/live/{sid}/{lifecycle_token}", content=body).status_code,  # the other route's token
        httpx.post(f"{base}/{sid}/{live_token}", content=json.dumps({"event": "bot.joining"})).status_code,
        httpx.post(f"{base}/live/{sid}/{capability_token('another secret', sid, live=True)}", content=body).status_code,
        httpx.post(f"{base}/live/{sid}/{live_token}", content=b"{not json").status_code,
        httpx.post(f"{base}/live/{sid}/{live_token}", content=json.dumps({**final, "bot_id": "other"})).status_code,
    ]
    assert answers == [401, 401, 401, 400, 409]
    assert list(stack.container.live_segments.segments(sid)) == []
    assert stack.published_events("LiveTranscriptSegment") == []

    kept = [httpx.post(f"{base}/live/{sid}/{live_token}", content=body).json() for _ in range(2)]
    assert kept == [{"received": True, "kept": True}, {"received": True, "kept": False}]
    assert [s.text for s in stack.container.live_segments.segments(sid)] == ["hello"]
    assert len(stack.published_events("LiveTranscriptSegment")) == 1
