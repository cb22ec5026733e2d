"""Per-bot lifecycles: the webhook sequence of every scenario, the envelope, legacy mode, signing,
and the speed factor."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import meetstream
import pytest

from meetpilot_dev.simulator import Scenario, Simulator
from tests.support.simulator_support import MEETING, MakeSim, Receiver, bot_body, client_for

# (bot_event or event, event, status_code) per scenario, for a deepgram bot without video
_ADMITTED = [
    ("bot.joining", "bot.joining", 200),
    ("bot.in_waiting_room", "bot.in_waiting_room", 200),
    ("bot.inmeeting", "bot.inmeeting", 200),
    ("bot.recording", "bot.recording", 200),
    ("bot.leaving", "bot.leaving", 200),
]
_POST_CALL = [
    ("manifest.completed", "manifest.completed", 200),
    ("audio.processed", "audio.processed", 200),
]
_DONE = [("bot.done", "bot.done", 200)]
_TRANSCRIBED = [("transcription.processed", "transcription.processed", 200)]
_LOBBY = [("bot.joining", "bot.joining", 200), ("bot.in_waiting_room", "bot.in_waiting_room", 200)]

STOPPED = ("bot.stopped", "bot.stopped", 200)


def _seq(*parts: list[tuple[str, str, int]] | tuple[str, str, int]) -> list[tuple[str, str, int]]:
    flat: list[tuple[str, str, int]] = []
    for part in parts:
        flat.extend(part if isinstance(part, list) else [part])
    return flat


SEQUENCES: dict[Scenario, list[tuple[str, str, int]]] = {
    Scenario.NORMAL: _seq(_ADMITTED, STOPPED, _POST_CALL, _TRANSCRIBED, _DONE),
    Scenario.LONG_TRANSCRIPT: _seq(_ADMITTED, STOPPED, _POST_CALL, _TRANSCRIBED, _DONE),
    Scenario.EMPTY_TRANSCRIPT: _seq(_ADMITTED, STOPPED, _POST_CALL, _TRANSCRIBED, _DONE),
    Scenario.KICKED: _seq(_ADMITTED, ("bot.kicked", "bot.stopped", 200), _POST_CALL, _TRANSCRIBED, _DONE),
    Scenario.NOT_ADMITTED: _seq(
        _LOBBY, ("bot.leaving", "bot.leaving", 200), ("bot.notallowed", "bot.stopped", 500), _DONE
    ),
    Scenario.DENIED: _seq(_LOBBY, ("bot.leaving", "bot.leaving", 200), ("bot.denied", "bot.stopped", 500), _DONE),
    Scenario.BOT_FAILED: _seq(_ADMITTED[:4], ("bot.failed", "bot.stopped", 500), _DONE),
    Scenario.TRANSCRIPTION_FAILED: _seq(
        _ADMITTED, STOPPED, _POST_CALL, ("transcription.failed", "transcription.failed", 500), _DONE
    ),
    Scenario.STREAMING_ONLY: _seq(_ADMITTED, STOPPED, _POST_CALL, _DONE),
}

FINAL_STATUS = {
    Scenario.NOT_ADMITTED: "NotAllowed",
    Scenario.DENIED: "Denied",
    Scenario.BOT_FAILED: "Error",
}


def _run(sim: Simulator, receiver: Receiver, **body: Any) -> tuple[dict[str, Any], list[Any]]:
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url(), **body))
    events = receiver.wait_for_event(created["bot_id"], "bot.done")
    return created, events


@pytest.mark.parametrize("scenario", list(SEQUENCES), ids=lambda s: s.value)
def test_scenario_webhook_sequence(make_sim: MakeSim, receiver: Receiver, scenario: Scenario) -> None:
    sim = make_sim(long_transcript_segments=50)
    sim.set_scenario(MEETING, scenario)
    created, events = _run(sim, receiver, custom_attributes={"meeting": "m-1", "n": "2"})
    assert [(r.name, r.body["event"], r.body["status_code"]) for r in events] == SEQUENCES[scenario]
    for received in events:
        body = received.body
        assert body["bot_id"] == created["bot_id"]
        assert body["custom_attributes"] == {"meeting": "m-1", "n": "2"}
        assert isinstance(body["message"], str) and body["message"]
        assert "bot_status" in body
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        # June-2026 rule: bot_event on every event but manifest.*
        assert ("bot_event" in body) is (body["event"] != "manifest.completed")
        assert "x-meetstream-signature" not in received.headers  # per-bot callbacks are unsigned
    timestamps = [datetime.fromisoformat(r.body["timestamp"]) for r in events]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
    terminal = [r.body for r in events if r.body["event"] == "bot.stopped"]
    assert len(terminal) == 1
    assert terminal[0]["bot_status"] == FINAL_STATUS.get(scenario, "Stopped")
    assert events[-1].body["bot_status"] == "Done"
    assert sim.bots()[0]["events_sent"] == [name for name, _, _ in SEQUENCES[scenario]]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (Scenario.NORMAL, 200),
        (Scenario.EMPTY_TRANSCRIPT, 200),
        (Scenario.TRANSCRIPTION_FAILED, 202),
        (Scenario.STREAMING_ONLY, 202),
        (Scenario.NOT_ADMITTED, 202),
    ],
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_transcript_answer_after_each_scenario(
    make_sim: MakeSim, receiver: Receiver, scenario: Scenario, expected: int
) -> None:
    sim = make_sim()
    sim.set_scenario(MEETING, scenario)
    created, _ = _run(sim, receiver)
    with client_for(sim) as client:
        if expected == 202:
            with pytest.raises(meetstream.NotReadyError):
                client.transcripts.get(created["transcript_id"])
        else:
            segments = client.transcripts.get(created["transcript_id"])
            assert (segments == []) is (scenario is Scenario.EMPTY_TRANSCRIPT)


def test_video_processed_only_when_video_is_recorded(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim()
    _, events = _run(sim, receiver, video_required=True)
    names = [r.name for r in events]
    assert names[-2:] == ["video.processed", "bot.done"]


def test_streaming_provider_has_no_transcript_id_and_no_transcription_events(
    make_sim: MakeSim, receiver: Receiver
) -> None:
    sim = make_sim()
    created, events = _run(sim, receiver, recording_config={"transcript": {"provider": {"deepgram_streaming": {}}}})
    assert created["transcript_id"] is None
    assert not any(r.name.startswith("transcription.") for r in events)


def test_joining_can_repeat_up_to_three_times(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(joining_attempts=3)
    _, events = _run(sim, receiver)
    assert [r.name for r in events][:4] == ["bot.joining"] * 3 + ["bot.in_waiting_room"]
    assert len({r.body["timestamp"] for r in events[:3]}) == 3


def test_no_show_bot_sends_nothing(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim()
    sim.set_scenario(MEETING, Scenario.NO_SHOW)
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
        time.sleep(0.5)  # several whole meetings at this speed
        assert receiver.for_bot(created["bot_id"]) == []
        assert client.bots.status(created["bot_id"])["status"] == "Joining"
    assert sim.bots()[0]["events_sent"] == []


def test_scenario_is_per_meeting_link(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim()
    sim.set_scenario("https://zoom.us/j/42", "denied")
    _, normal = _run(sim, receiver)
    _, denied = _run(sim, receiver, meeting_link="https://zoom.us/j/42")
    assert "bot.stopped" in [r.name for r in normal]
    assert "bot.denied" in [r.name for r in denied]


def test_legacy_webhooks_have_only_event_and_no_lifecycle_timestamps(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(legacy_webhooks=True)
    sim.set_scenario(MEETING, Scenario.NOT_ADMITTED)
    _, events = _run(sim, receiver)
    bodies = [r.body for r in events]
    expected = ["bot.joining", "bot.in_waiting_room", "bot.leaving", "bot.stopped", "bot.done"]
    assert [b["event"] for b in bodies] == expected
    assert all("bot_event" not in b for b in bodies)
    assert all("timestamp" not in b for b in bodies)
    assert bodies[3]["bot_status"] == "NotAllowed"


def test_legacy_webhooks_keep_timestamps_on_post_call_events(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(legacy_webhooks=True)
    _, events = _run(sim, receiver)
    processed = next(r.body for r in events if r.body["event"] == "transcription.processed")
    assert "timestamp" in processed and "bot_event" not in processed


def test_workspace_deliveries_are_signed_and_verify_with_the_sdk(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(workspace_url=receiver.url("/workspace"), workspace_secret="whsec_test")
    created, callback_events = _run(sim, receiver)
    receiver.wait_for(lambda _: any(r.name == "bot.done" for r in receiver.for_bot(created["bot_id"], "/workspace")))
    signed = receiver.for_bot(created["bot_id"], "/workspace")
    assert [r.raw for r in signed] == [r.raw for r in callback_events]
    for received in signed:
        signature = received.headers["x-meetstream-signature"]
        assert signature.startswith("sha256=")
        assert meetstream.verify_webhook_signature(received.raw, signature, "whsec_test")
        assert not meetstream.verify_webhook_signature(received.raw, signature, "whsec_other")
        assert not meetstream.verify_webhook_signature(received.raw + b" ", signature, "whsec_test")
        assert datetime.fromisoformat(received.headers["x-meetstream-timestamp"]).tzinfo is not None


def test_speed_factor_makes_a_half_hour_meeting_last_about_a_second_and_a_half(
    make_sim: MakeSim, receiver: Receiver
) -> None:
    sim = make_sim(speed=1200.0, meeting_seconds=1800.0, step_seconds=5.0, processing_seconds=10.0)
    started = time.monotonic()
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
    receiver.wait_for_event(created["bot_id"], "bot.done", timeout=10.0)
    elapsed = time.monotonic() - started
    # 1800 s of meeting + 5 steps of 5 s + 4 post-call events of 10 s = 1865 s simulated
    assert 1865 / 1200 - 0.05 <= elapsed < 4.0


def test_webhooks_are_not_retried_by_default(make_sim: MakeSim, receiver: Receiver) -> None:
    receiver.status = 500
    sim = make_sim()
    created, events = _run(sim, receiver)
    assert len(events) == len(SEQUENCES[Scenario.NORMAL])
    mine = [d for d in sim.deliveries() if d["bot_id"] == created["bot_id"]]
    assert len(mine) == len(events)
    assert {d["status"] for d in mine} == {500}


def test_webhook_retries_can_be_switched_on(make_sim: MakeSim, receiver: Receiver) -> None:
    receiver.status = 503
    sim = make_sim(webhook_retries=2)
    sim.set_scenario(MEETING, Scenario.DENIED)
    created, _ = _run(sim, receiver)
    time.sleep(0.5)  # let the last retries land
    joining = [d for d in sim.deliveries() if d["bot_id"] == created["bot_id"] and d["name"] == "bot.joining"]
    assert [d["attempt"] for d in joining] == [0, 1, 2]


def test_unreachable_callback_is_recorded_as_an_error(make_sim: MakeSim) -> None:
    sim = make_sim()
    sim.set_scenario(MEETING, Scenario.DENIED)
    with client_for(sim) as client:
        created = client.bots.create(bot_body("http://127.0.0.1:9/hook"))
    deliveries = _wait_deliveries(sim, created["bot_id"], "bot.done")
    assert all(d["error"] and d["status"] is None for d in deliveries)


def _wait_deliveries(sim: Simulator, bot_id: str, last: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mine = [d for d in sim.deliveries() if d["bot_id"] == bot_id]
        if any(d["name"] == last for d in mine):
            return mine
        time.sleep(0.01)
    raise AssertionError("deliveries did not arrive")
