"""The simulator's REST surface, driven with the official MeetStream SDK over real HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import meetstream
import pytest

from meetpilot.domain.clock import FixedClock
from meetpilot_dev.simulator import Scenario, Simulator
from tests.support.simulator_support import MEETING, MakeSim, Receiver, bot_body, client_for, wait_until

# --- auth --------------------------------------------------------------------------------------


def test_missing_authorization_is_401(sim: Simulator) -> None:
    response = httpx.get(f"{sim.base_url}/bots/x/status")
    assert response.status_code == 401
    assert response.json() == {"message": "Authentication credentials were not provided."}


def test_bearer_scheme_is_401(sim: Simulator) -> None:
    response = httpx.get(f"{sim.base_url}/bots/x/status", headers={"Authorization": f"Bearer {sim.api_key}"})
    assert response.status_code == 401


def test_unknown_key_is_403_through_the_sdk(sim: Simulator) -> None:
    with client_for(sim, key="ms_wrong") as wrong, pytest.raises(meetstream.PermissionError) as caught:
        wrong.bots.create(bot_body())
    assert caught.value.status == 403
    assert caught.value.message == "Invalid token."
    assert sim.create_calls == 0


# --- create_bot --------------------------------------------------------------------------------


def test_create_bot_answers_201_with_uuid_and_transcript_id(sim: Simulator) -> None:
    response = httpx.post(
        f"{sim.base_url}/bots/create_bot", json=bot_body(), headers={"Authorization": f"Token {sim.api_key}"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"bot_id", "transcript_id", "meeting_url", "status"}
    assert uuid.UUID(body["bot_id"]).version == 4
    assert body["transcript_id"]
    assert body["meeting_url"] == MEETING
    assert sim.create_calls == 1


@pytest.mark.parametrize(
    ("provider", "has_transcript_id"),
    [
        ({"deepgram": {}}, True),
        ({"assemblyai": {}}, True),
        ({"meeting_captions": {}}, False),
        ({"deepgram_streaming": {}}, False),
        (None, False),
    ],
)
def test_transcript_id_only_for_post_call_providers(
    client: meetstream.MeetStream, provider: dict[str, object] | None, has_transcript_id: bool
) -> None:
    body = bot_body()
    if provider is None:
        del body["recording_config"]
    else:
        body["recording_config"] = {"transcript": {"provider": provider}}
    created = client.bots.create(body)
    assert (created["transcript_id"] is not None) is has_transcript_id


def test_idempotency_key_replay_answers_507_with_the_original_bot(
    sim: Simulator, client: meetstream.MeetStream
) -> None:
    first = client.bots.create(bot_body(), idempotency_key="idem-1")
    # a different body is ignored on replay
    again = client.bots.create(bot_body(meeting_link="https://zoom.us/j/1"), idempotency_key="idem-1")
    assert {k: again[k] for k in ("bot_id", "transcript_id", "meeting_url")} == {
        k: first[k] for k in ("bot_id", "transcript_id", "meeting_url")
    }
    assert "message" in again
    assert sim.create_calls == 1
    assert len(sim.bots()) == 1
    assert sim.bots()[0]["idempotency_key"] == "idem-1"


def test_replay_status_code_is_507_and_header_name_is_case_insensitive(sim: Simulator) -> None:
    headers = {"Authorization": f"Token {sim.api_key}", "idempotency-key": "idem-2"}
    url = f"{sim.base_url}/bots/create_bot"
    assert httpx.post(url, json=bot_body(), headers=headers).status_code == 201
    replay = httpx.post(url, json=bot_body(), headers={**headers, "IDEMPOTENCY-KEY": "idem-2"})
    assert replay.status_code == 507
    assert sim.create_calls == 1


def test_replay_status_reflects_the_current_state(sim: Simulator, client: meetstream.MeetStream) -> None:
    first = client.bots.create(bot_body(), idempotency_key="idem-3")
    wait_until(lambda: sim.bots()[0]["status"] == "Done")
    again = client.bots.create(bot_body(), idempotency_key="idem-3")
    assert first["status"] == "Joining"
    assert again["status"] == "Done"


def test_replay_can_omit_transcript_id_when_configured(make_sim: MakeSim) -> None:
    sim = make_sim(replay_omits_transcript_id=True)
    with client_for(sim) as client:
        first = client.bots.create(bot_body(), idempotency_key="k")
        again = client.bots.create(bot_body(), idempotency_key="k")
        assert first["transcript_id"] and again["transcript_id"] is None
        assert client.bots.detail(first["bot_id"])["bot_details"]["transcript_id"] == first["transcript_id"]


def test_deduplication_key_same_meeting_answers_200_with_the_original_bot(sim: Simulator) -> None:
    headers = {"Authorization": f"Token {sim.api_key}"}
    url = f"{sim.base_url}/bots/create_bot"
    first = httpx.post(url, json=bot_body(deduplication_key="meet-1"), headers=headers)
    again = httpx.post(url, json=bot_body(deduplication_key="meet-1"), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["bot_id"] == first.json()["bot_id"]
    assert sim.create_calls == 1


def test_deduplication_key_for_another_meeting_is_409(client: meetstream.MeetStream) -> None:
    client.bots.create(bot_body(deduplication_key="meet-1"))
    with pytest.raises(meetstream.ConflictError) as caught:
        client.bots.create(bot_body(deduplication_key="meet-1", meeting_link="https://zoom.us/j/99"))
    assert caught.value.status == 409


def test_idempotency_key_wins_over_deduplication_key(sim: Simulator) -> None:
    headers = {"Authorization": f"Token {sim.api_key}", "Idempotency-Key": "both"}
    url = f"{sim.base_url}/bots/create_bot"
    httpx.post(url, json=bot_body(deduplication_key="d"), headers=headers)
    # same header, dedup key now pointing at another meeting: the header replay answers first
    replay = httpx.post(url, json=bot_body(deduplication_key="d", meeting_link="https://zoom.us/j/2"), headers=headers)
    assert replay.status_code == 507


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"meeting_link": None}, "meeting_link is required."),
        ({"meeting_link": "not a url"}, "meeting_link must be a valid http(s) meeting URL."),
        ({"bot_name": ""}, "bot_name is required."),
        ({"automatic_leave": {"in_call_recording_timeout": 599}}, "in_call_recording_timeout must be at least 600"),
        ({"automatic_leave": {"recording_permission_denied_timeout": 59}}, "between 60 and 300"),
        ({"automatic_leave": {"recording_permission_denied_timeout": 301}}, "between 60 and 300"),
        ({"join_at": "2030-01-01T10:00:00"}, "join_at must be an ISO-8601 date-time with a timezone"),
        ({"join_at": "tomorrow"}, "join_at must be an ISO-8601"),
        ({"recording_config": {"transcript": {"provider": {"deepgram": {}, "assemblyai": {}}}}}, "exactly one"),
        ({"recording_config": {"transcript": {"provider": {"whisper": {}}}}}, "Unknown transcript provider"),
        ({"deduplication_key": ""}, "deduplication_key must be 1 to 2000 printable ASCII"),
        ({"callback_url": "ftp://x"}, "callback_url must be a valid http(s) URL."),
    ],
)
def test_invalid_create_is_400_with_a_message(
    sim: Simulator, client: meetstream.MeetStream, change: dict[str, object], message: str
) -> None:
    body = {k: v for k, v in {**bot_body(), **change}.items() if v is not None}
    with pytest.raises(meetstream.BadRequestError) as caught:
        client.bots.create(body)
    assert message in caught.value.message
    assert sim.create_calls == 0


def test_valid_automatic_leave_bounds_are_accepted(client: meetstream.MeetStream) -> None:
    leave = {"in_call_recording_timeout": 600, "recording_permission_denied_timeout": 300}
    assert client.bots.create(bot_body(automatic_leave=leave))["bot_id"]


def test_non_json_body_is_400(sim: Simulator) -> None:
    response = httpx.post(
        f"{sim.base_url}/bots/create_bot", content=b"{nope", headers={"Authorization": f"Token {sim.api_key}"}
    )
    assert response.status_code == 400
    assert "message" in response.json()


def test_past_join_at_joins_now_by_default(sim: Simulator, client: meetstream.MeetStream) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    created = client.bots.create(bot_body(join_at=past))
    assert created["status"] == "Joining"


def test_past_join_at_can_be_rejected(make_sim: MakeSim) -> None:
    sim = make_sim(past_join_at="reject")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with client_for(sim) as client, pytest.raises(meetstream.BadRequestError, match="future"):
        client.bots.create(bot_body(join_at=past))


# --- reading bots ------------------------------------------------------------------------------


def test_status_and_detail_shapes(client: meetstream.MeetStream, sim: Simulator) -> None:
    created = client.bots.create(bot_body(bot_name="Scribe"))
    wait_until(lambda: sim.bots()[0]["status"] == "Done")
    status = client.bots.status(created["bot_id"])
    assert status == {"bot_id": created["bot_id"], "status": "Done", "custom_attributes": {"session": "s-1"}}
    details = client.bots.detail(created["bot_id"])["bot_details"]
    assert details["BotID"] == created["bot_id"]
    assert details["MeetingLink"] == MEETING
    assert details["Platform"] == "GMeet"
    assert details["Status"] == "Done"
    assert details["transcript_id"] == created["transcript_id"]
    assert details["custom_attributes"] == {"session": "s-1"}
    assert details["RequestPayload"]["bot_name"] == "Scribe"
    timeline = details["StatusTimeline"]
    for key in ("Joining", "WaitingRoom", "InMeeting", "Recording", "Leaving", "Stopped", "Done"):
        assert timeline[key]["status"] is True
        assert datetime.fromisoformat(timeline[key]["timestamp"]).tzinfo is not None
    assert datetime.fromisoformat(details["CreatedAt"]).tzinfo is not None


def test_unknown_bot_is_404(client: meetstream.MeetStream) -> None:
    for call in (client.bots.status, client.bots.detail, client.bots.remove):
        with pytest.raises(meetstream.NotFoundError):
            call(str(uuid.uuid4()))


# --- remove_bot, delete ------------------------------------------------------------------------


def test_remove_bot_is_a_get_that_makes_the_bot_leave(make_sim, receiver: Receiver) -> None:
    sim = make_sim(meeting_seconds=36000.0)  # ten simulated hours: it would not end by itself
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
        receiver.wait_for_event(created["bot_id"], "bot.recording")
        assert client.bots.remove(created["bot_id"]) == {"message": "Bot is leaving the meeting."}
        events = receiver.wait_for_event(created["bot_id"], "bot.done")
        names = [r.name for r in events]
        assert names[names.index("bot.recording") + 1 :][:2] == ["bot.leaving", "bot.stopped"]
        stopped = next(r.body for r in events if r.body["event"] == "bot.stopped")
        assert stopped["status_code"] == 200
        with pytest.raises(meetstream.NotFoundError):
            client.bots.remove(created["bot_id"])  # already stopped


def test_remove_bot_with_post_is_405(sim: Simulator, client: meetstream.MeetStream) -> None:
    bot_id = client.bots.create(bot_body())["bot_id"]
    response = httpx.post(f"{sim.base_url}/bots/{bot_id}/remove_bot", headers={"Authorization": f"Token {sim.api_key}"})
    assert response.status_code == 405


def test_delete_data_sends_data_deletion_and_then_transcript_is_404(
    sim: Simulator, client: meetstream.MeetStream, receiver: Receiver
) -> None:
    created = client.bots.create(bot_body(receiver.url()))
    receiver.wait_for_event(created["bot_id"], "bot.done")
    assert client.transcripts.get(created["transcript_id"])
    deleted = client.bots.delete_data(created["bot_id"])
    assert deleted["bot_id"] == created["bot_id"]
    assert deleted["deleted_objects"] >= 1
    events = receiver.wait_for_event(created["bot_id"], "data_deletion")
    deletion = events[-1].body
    assert deletion["event"] == "data_deletion"
    assert "custom_attributes" not in deletion
    with pytest.raises(meetstream.NotFoundError):
        client.transcripts.get(created["transcript_id"])


def test_delete_data_of_an_active_bot_is_400(make_sim: MakeSim) -> None:
    sim = make_sim(meeting_seconds=36000.0)
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body())["bot_id"]
        with pytest.raises(meetstream.BadRequestError):
            client.bots.delete_data(bot_id)


# --- scheduled bots ----------------------------------------------------------------------------


def _clocked(make_sim: MakeSim) -> tuple[FixedClock, Simulator]:
    clock = FixedClock(datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    return clock, make_sim(clock=clock)


def test_scheduled_bot_waits_for_join_at_on_the_clock(make_sim: MakeSim, receiver: Receiver) -> None:
    clock, sim = _clocked(make_sim)
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url(), join_at="2026-07-01T10:00:00Z"))
        assert created["status"] == "Scheduled"
        events = receiver.wait_for_event(created["bot_id"], "bot.scheduled")
        assert events[0].body["bot_status"] == "Scheduled"
        listed = client.calendar.list_scheduled_bots()["scheduled_bots"]
        assert [b["bot_id"] for b in listed] == [created["bot_id"]]
        assert listed[0]["scheduled_join_time"].startswith("2026-07-01T10:00:00")
        # time does not move: the bot stays scheduled
        with pytest.raises(AssertionError):
            receiver.wait_for_event(created["bot_id"], "bot.joining", timeout=0.3)
        clock.set(datetime(2026, 7, 1, 10, 0, 1, tzinfo=UTC))
        receiver.wait_for_event(created["bot_id"], "bot.done")
        assert client.calendar.list_scheduled_bots()["scheduled_bots"] == []


def test_reschedule_and_cancel_before_join(make_sim: MakeSim) -> None:
    clock, sim = _clocked(make_sim)
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body(join_at="2026-07-01T10:00:00Z"))["bot_id"]
        answer = client.calendar.reschedule_bot(bot_id, "2026-07-01T11:30:00+00:00")
        assert answer["updated_fields"] == ["scheduled_join_time"]
        assert sim.bots()[0]["join_at"].startswith("2026-07-01T11:30:00")
        clock.set(datetime(2026, 7, 1, 10, 30, tzinfo=UTC))  # the old time has passed: still waiting
        assert client.bots.status(bot_id)["status"] == "Scheduled"
        with pytest.raises(meetstream.BadRequestError):
            client.calendar.reschedule_bot(bot_id, "2026-07-01T10:00:00Z")  # in the past now
        with pytest.raises(meetstream.BadRequestError):
            client.calendar.reschedule_bot(bot_id, "2026-07-01T12:00:00")  # no timezone
        assert client.calendar.delete_scheduled_bot(bot_id)["bot_id"] == bot_id
        with pytest.raises(meetstream.NotFoundError):
            client.bots.status(bot_id)
        with pytest.raises(meetstream.NotFoundError):
            client.calendar.delete_scheduled_bot(bot_id)
        assert sim.bots()[0]["status"] == "Cancelled"


def test_reschedule_and_cancel_after_join_are_400(client: meetstream.MeetStream) -> None:
    bot_id = client.bots.create(bot_body())["bot_id"]
    with pytest.raises(meetstream.BadRequestError):
        client.calendar.reschedule_bot(bot_id, "2099-01-01T00:00:00Z")
    with pytest.raises(meetstream.BadRequestError):
        client.calendar.delete_scheduled_bot(bot_id)
    with pytest.raises(meetstream.NotFoundError):
        client.calendar.delete_scheduled_bot(str(uuid.uuid4()))


# --- transcripts -------------------------------------------------------------------------------


def test_transcript_is_202_until_processed_then_a_segment_array(
    sim: Simulator, client: meetstream.MeetStream, receiver: Receiver
) -> None:
    created = client.bots.create(bot_body(receiver.url()))
    with pytest.raises(meetstream.NotReadyError) as caught:
        client.transcripts.get(created["transcript_id"])
    assert caught.value.message == "Transcript is still being processed."
    receiver.wait_for_event(created["bot_id"], "transcription.processed")
    segments = client.transcripts.get(created["transcript_id"])
    assert isinstance(segments, list)
    assert len(segments) == sim.config.transcript_segments
    first = segments[0]
    assert set(first) == {
        "speaker", "transcript", "start_time", "end_time", "absolute_start_time", "absolute_end_time", "words",
    }  # fmt: skip
    assert set(first["words"][0]) >= {"word", "punctuated_word", "start", "end", "confidence", "speaker"}
    assert datetime.fromisoformat(first["absolute_start_time"]).tzinfo is not None
    assert first["transcript"] == " ".join(w["punctuated_word"] for w in first["words"])


def test_transcript_is_deterministic_for_a_bot(client: meetstream.MeetStream, receiver: Receiver) -> None:
    created = client.bots.create(bot_body(receiver.url()))
    receiver.wait_for_event(created["bot_id"], "transcription.processed")
    assert client.transcripts.get(created["transcript_id"]) == client.transcripts.get(created["transcript_id"])


@pytest.mark.parametrize("envelope", ["transcript", "message"])
def test_transcript_envelope_can_wrap_the_array(make_sim: MakeSim, receiver: Receiver, envelope: str) -> None:
    sim = make_sim(transcript_envelope=envelope, transcript_segments=3)
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
        receiver.wait_for_event(created["bot_id"], "transcription.processed")
        body = client.transcripts.get(created["transcript_id"])
        assert list(body) == [envelope]
        assert len(body[envelope]) == 3


def test_unknown_transcript_is_404(client: meetstream.MeetStream) -> None:
    with pytest.raises(meetstream.NotFoundError):
        client.transcripts.get("nope")


def test_long_transcript_is_streamed_in_chunks(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(long_transcript_segments=2500)
    sim.set_scenario(MEETING, Scenario.LONG_TRANSCRIPT)
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
    receiver.wait_for_event(created["bot_id"], "transcription.processed")
    url = f"{sim.base_url}/transcript/{created['transcript_id']}/get_transcript"
    pieces = 0
    raw = bytearray()
    with httpx.stream("GET", url, headers={"Authorization": f"Token {sim.api_key}"}) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        for chunk in response.iter_raw():
            pieces += 1
            raw += chunk
    assert len(raw) > 3_000_000
    assert pieces > 10
    assert len(json.loads(raw)) == 2500
