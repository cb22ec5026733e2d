"""Live transcripts end to end on the local stack: the simulator posts interim and final results
(duplicated by a fault) to the live route; final segments are kept once, published as
LiveTranscriptSegment events, and become the stored transcript of a streaming-only bot, or the
partial transcript of a bot whose post-call transcription failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from meetpilot.domain.clock import to_iso
from meetpilot.domain.session import Session, TranscriptMode
from meetpilot.domain.status import Outcome
from meetpilot.domain.transcript import MAX_SPEAKER_CHARS
from meetpilot.domain.webhook_auth import capability_token
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.simulator.config import Faults
from meetpilot_dev.stack.embedded import LocalStack
from tests.support.event_schemas import validate
from tests.support.stacks import run_until

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


def _live_session(stack: LocalStack, sid: str) -> Session:
    session = Session(
        session_id=sid,
        meeting_key=f"https://meet.google.com/liv-{sid}|2026-12-01T15:00Z",
        transcript_mode=TranscriptMode.STREAMING,
        bot_id=f"bot-{sid}",
        live_transcript=True,
    )
    assert stack.container.repository.create_session(session, datetime.now(UTC))
    return session


def _live_url(stack: LocalStack, sid: str) -> str:
    return (
        f"{stack.gateway.url}/webhooks/meetstream/live/{sid}/{capability_token(stack.webhook_secret, sid, live=True)}"
    )


def test_word_times_like_10_pow_400_get_a_400_and_nothing_is_kept(stack_factory: Callable[..., LocalStack]) -> None:
    stack = stack_factory(transcript_provider="deepgram_streaming")
    session = _live_session(stack, "huge-times")
    head = b'{"bot_id": "bot-huge-times", "new_text": "hi", "is_final": true, "words": [{"word": "hi", "start": '
    bodies = [
        head + b"1" + b"0" * 400 + b"}]}",  # 10**400: no float holds it
        head + b"1e400}]}",
        head + b"NaN}]}",
        b'{"bot_id": "bot-huge-times", "new_text": "hi", "is_final": true, "timestamp": 1' + b"0" * 400 + b"}",
    ]
    answers = [httpx.post(_live_url(stack, session.session_id), content=body) for body in bodies]
    assert [a.status_code for a in answers] == [400, 400, 400, 400], [a.text for a in answers]
    assert all("\n" not in a.json()["message"] for a in answers)
    assert list(stack.container.live_segments.segments(session.session_id)) == []


def test_over_long_speaker_names_are_bounded_and_the_session_still_ends(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory(transcript_provider="deepgram_streaming", time_scale=0.02)
    session = _live_session(stack, "long-names")
    sid = session.session_id
    # Three people whose names (as the meeting shows them) are 150,000 characters each, one with a
    # lone surrogate, and words whose times no recording has: none of it may stop the session ending.
    names = [f"{letter * 150_000}" for letter in "abc"]
    names[2] = "\ud800" + names[2]
    for i, name in enumerate(names):
        final = {
            "bot_id": session.bot_id,
            "timestamp": f"2026-12-01T15:00:0{i}Z",
            "speakerName": name,
            "new_text": f"line {i}",
            "is_final": True,
            "words": [{"word": "line", "start": 1e300, "end": 1e300}],
        }
        answer = httpx.post(_live_url(stack, sid), content=json.dumps(final))
        assert answer.status_code == 200, answer.text
    kept = list(stack.container.live_segments.segments(sid))
    assert len(kept) == 3 and all(len(s.speaker) <= MAX_SPEAKER_CHARS for s in kept)

    callback = f"{stack.gateway.url}/webhooks/meetstream/{sid}/{capability_token(stack.webhook_secret, sid)}"
    for name in ("bot.stopped", "bot.done"):
        body = {"event": name, "bot_event": name, "bot_id": session.bot_id, "timestamp": to_iso(datetime.now(UTC))}
        assert httpx.post(callback, content=json.dumps(body)).status_code == 200

    def ended() -> bool:
        current = stack.container.repository.get_session(sid)
        return current is not None and current.outcome is not None

    assert run_until(stack, ended, 60), stack.container.repository.get_session(sid)
    ended_session = stack.container.repository.get_session(sid)
    assert ended_session.outcome is Outcome.TRANSCRIPT_STORED, ended_session.outcome_reason
    assert ended_session.transcript["speaker_count"] == 3
    assert all(len(name) <= MAX_SPEAKER_CHARS for name in ended_session.transcript["speakers"])
    text = _read(stack, ended_session.transcript["bucket"], ended_session.transcript["keys"]["txt"])
    assert len(text.splitlines()) == 3 and "\ufffd" in text
