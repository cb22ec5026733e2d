"""MeetStreamProvider against a running simulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import meetstream
import pytest

from meetpilot.adapters.meetstream import (
    MeetStreamProvider,
    create_bot_body,
    error_for_status,
    find_transcript_id_in,
    parse_retry_after,
)
from meetpilot.app.ports import BotProvider, BotRequest
from meetpilot.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    TranscriptNotReady,
)
from meetpilot_dev.simulator import Faults, Scenario, Simulator, SimulatorConfig
from tests.support.simulator_support import Receiver

SECRET_KEY = "ms_live_7f3c9a1b2d4e6f8091a2b3c4d5e6f708"
MEETING = "https://meet.google.com/abc-defg-hij"
FAST: dict[str, Any] = {"speed": 3600.0, "meeting_seconds": 600.0, "step_seconds": 5.0, "processing_seconds": 30.0}

MakeSim = Callable[..., Simulator]


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    started: list[Simulator] = []

    def make(**overrides: Any) -> Simulator:
        sim = Simulator(SimulatorConfig(**{"api_keys": (SECRET_KEY,), **FAST, **overrides}))
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: MakeSim) -> Simulator:
    return make_sim()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


def provider_for(sim: Simulator, key: str = SECRET_KEY, timeout: float = 5.0) -> MeetStreamProvider:
    return MeetStreamProvider(lambda: key, base_url=sim.base_url, timeout=timeout)


@pytest.fixture
def provider(sim: Simulator) -> Iterator[MeetStreamProvider]:
    p = provider_for(sim)
    yield p
    p.close()


def request(callback_url: str = "http://127.0.0.1:9/hook", **changes: Any) -> BotRequest:
    values: dict[str, Any] = {
        "meeting_url": MEETING,
        "bot_name": "meetpilot",
        "callback_url": callback_url,
        "deduplication_key": "meet.google.com/abc-defg-hij@2026-07-01T10:00Z",
        "custom_attributes": {"session_id": "s-1"},
        "transcript_provider": "deepgram",
    }
    values.update(changes)
    return BotRequest(**values)


def wait_for_status(provider: MeetStreamProvider, bot_id: str, status: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while provider.bot_status(bot_id) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"bot never reached {status}")
        time.sleep(0.01)


# --- construction --------------------------------------------------------------------------------


def test_provider_satisfies_the_port_and_reads_the_key_lazily(sim: Simulator) -> None:
    calls: list[int] = []

    def key() -> str:
        calls.append(1)
        return SECRET_KEY

    provider: BotProvider = MeetStreamProvider(key, base_url=sim.base_url)
    assert calls == []
    provider.create_bot(request(), idempotency_key="k")
    assert calls


def test_key_rotation_is_picked_up(make_sim: MakeSim) -> None:
    sim = make_sim(api_keys=(SECRET_KEY, "ms_second_key"))
    current = {"key": SECRET_KEY}
    provider = MeetStreamProvider(lambda: current["key"], base_url=sim.base_url)
    bot_id = provider.create_bot(request(), idempotency_key="k").bot_id
    current["key"] = "ms_revoked"
    with pytest.raises(ProviderAuthError):
        provider.bot_status(bot_id)
    current["key"] = "ms_second_key"
    assert provider.bot_status(bot_id)


def test_empty_key_is_an_auth_error_without_a_request(sim: Simulator) -> None:
    provider = MeetStreamProvider(lambda: "  ", base_url=sim.base_url)
    with pytest.raises(ProviderAuthError, match="empty"):
        provider.bot_status("x")


# --- create_bot ----------------------------------------------------------------------------------


def test_create_bot_sends_the_documented_body(sim: Simulator, provider: MeetStreamProvider) -> None:
    join_at = datetime.now(UTC) + timedelta(hours=2)
    created = provider.create_bot(
        request(
            join_at=join_at,
            automatic_leave={"waiting_room_timeout": 600, "in_call_recording_timeout": 7200},
            live_transcription_url="https://example.test/live",
        ),
        idempotency_key="idem-create",
    )
    assert created.replayed is False
    assert created.status == "Scheduled"
    assert created.transcript_id
    sent = provider.bot_detail(created.bot_id)["RequestPayload"]
    assert sent == {
        "meeting_link": MEETING,
        "bot_name": "meetpilot",
        "video_required": False,
        "callback_url": "http://127.0.0.1:9/hook",
        "deduplication_key": "meet.google.com/abc-defg-hij@2026-07-01T10:00Z",
        "custom_attributes": {"session_id": "s-1"},
        "join_at": sent["join_at"],
        "automatic_leave": {"waiting_room_timeout": 600, "in_call_recording_timeout": 7200},
        "recording_config": {"transcript": {"provider": {"deepgram": {"model": "nova-3", "language": "en"}}}},
        "live_transcription_required": {"webhook_url": "https://example.test/live"},
    }
    assert sent["join_at"].endswith("Z")
    assert datetime.fromisoformat(sent["join_at"].replace("Z", "+00:00")) == join_at.replace(
        microsecond=join_at.microsecond // 1000 * 1000
    )
    assert sim.bots()[0]["idempotency_key"] == "idem-create"


def test_create_bot_without_transcription_omits_recording_config() -> None:
    body = create_bot_body(request(transcript_provider=None))
    assert "recording_config" not in body and "join_at" not in body and "live_transcription_required" not in body
    assert body["video_required"] is False


def test_idempotent_replay_is_flagged_and_makes_no_second_bot(sim: Simulator, provider: MeetStreamProvider) -> None:
    first = provider.create_bot(request(), idempotency_key="idem-1")
    again = provider.create_bot(request(), idempotency_key="idem-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.bot_id == first.bot_id and again.transcript_id == first.transcript_id
    assert sim.create_calls == 1


def test_dedup_hit_is_flagged_as_a_replay(sim: Simulator, provider: MeetStreamProvider) -> None:
    first = provider.create_bot(request(), idempotency_key="a")
    again = provider.create_bot(request(), idempotency_key="b")
    assert again.replayed and again.bot_id == first.bot_id
    assert sim.create_calls == 1


def test_replay_without_transcript_id_is_resolved_from_detail(make_sim: MakeSim) -> None:
    sim = make_sim(replay_omits_transcript_id=True)
    provider = provider_for(sim)
    first = provider.create_bot(request(), idempotency_key="idem")
    again = provider.create_bot(request(), idempotency_key="idem")
    assert again.replayed and first.transcript_id
    assert again.transcript_id == first.transcript_id


def test_replay_detection_works_with_a_caller_supplied_client(sim: Simulator) -> None:
    seen: list[int] = []
    with httpx.Client(event_hooks={"response": [lambda r: seen.append(r.status_code)]}) as http:
        provider = MeetStreamProvider(lambda: SECRET_KEY, base_url=sim.base_url, http_client=http)
        assert provider.create_bot(request(), idempotency_key="x").replayed is False
        assert provider.create_bot(request(), idempotency_key="x").replayed is True
    assert seen == [201, 507]


# --- errors --------------------------------------------------------------------------------------


def test_400_is_rejected_with_the_provider_message(provider: MeetStreamProvider) -> None:
    with pytest.raises(ProviderRejected) as caught:
        provider.create_bot(request(automatic_leave={"in_call_recording_timeout": 60}), idempotency_key="k")
    assert type(caught.value) is ProviderRejected
    assert caught.value.status == 400
    assert "in_call_recording_timeout must be at least 600 seconds." in str(caught.value)


def test_wrong_key_is_an_auth_error(sim: Simulator) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        provider_for(sim, key="ms_wrong_key_123").create_bot(request(), idempotency_key="k")
    assert caught.value.status == 403
    assert "Invalid token." in str(caught.value)


def test_unknown_bot_is_not_found(provider: MeetStreamProvider) -> None:
    for call in (provider.bot_status, provider.bot_detail, provider.remove_bot, provider.cancel_scheduled_bot):
        with pytest.raises(ProviderNotFound):
            call("0b8f6a8e-0000-4000-8000-000000000000")


def test_dedup_key_for_another_meeting_is_a_conflict(provider: MeetStreamProvider) -> None:
    provider.create_bot(request(), idempotency_key="a")
    with pytest.raises(ProviderConflict) as caught:
        provider.create_bot(request(meeting_url="https://zoom.us/j/1"), idempotency_key="b")
    assert caught.value.status == 409


def test_429_with_delta_seconds(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(rate_limit=1.0, retry_after_seconds=7))
    with pytest.raises(ProviderRateLimited) as caught:
        provider_for(sim).create_bot(request(), idempotency_key="k")
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429
    assert "Request was throttled." in str(caught.value)


def test_429_with_http_date(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(rate_limit=1.0, retry_after_seconds=30, retry_after_http_date=1.0))
    with pytest.raises(ProviderRateLimited) as caught:
        provider_for(sim).bot_status("any")
    assert caught.value.retry_after is not None
    assert 28.0 <= caught.value.retry_after <= 32.0


def test_429_on_transcript_download_with_http_date(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(rate_limit=1.0, retry_after_seconds=20, retry_after_http_date=1.0))
    with pytest.raises(ProviderRateLimited) as caught:
        provider_for(sim).download_transcript("t-1", io.BytesIO())
    assert caught.value.retry_after is not None and 18.0 <= caught.value.retry_after <= 22.0


def test_5xx_is_unavailable_and_the_sdk_does_not_retry(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(server_error=1.0))
    with pytest.raises(ProviderUnavailable) as caught:
        provider_for(sim).create_bot(request(), idempotency_key="k")
    assert caught.value.status in (500, 502, 503)
    assert sim.fault_counts()["server_error"] == 1  # one request: retries belong to meetpilot


def test_timeout_is_unavailable(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(timeout=1.0, timeout_seconds=3.0))
    provider = provider_for(sim, timeout=0.3)
    with pytest.raises(ProviderUnavailable, match="timed out"):
        provider.bot_status("x")
    with pytest.raises(ProviderUnavailable, match="timed out"):
        provider.download_transcript("t", io.BytesIO())


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = MeetStreamProvider(lambda: SECRET_KEY, base_url=f"http://127.0.0.1:{port}/api/v1", timeout=1.0)
    with pytest.raises(ProviderUnavailable):
        provider.bot_status("x")
    with pytest.raises(ProviderUnavailable):
        provider.download_transcript("t", io.BytesIO())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderRejected),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (404, ProviderNotFound),
        (409, ProviderConflict),
        (422, ProviderRejected),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderUnavailable),
        (202, TranscriptNotReady),
    ],
)
def test_status_to_error_class(status: int, error: type[ProviderError]) -> None:
    raised = error_for_status("op", status, "provider says no", 3.0)
    assert type(raised) is error
    assert raised.status == status
    assert "provider says no" in str(raised)


def test_retry_after_parsing() -> None:
    now = datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("Wed, 01 Jul 2026 10:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jul 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


# --- transcripts ---------------------------------------------------------------------------------


def test_transcript_before_processing_is_not_ready(provider: MeetStreamProvider) -> None:
    created = provider.create_bot(request(), idempotency_key="k")
    assert created.transcript_id
    sink = io.BytesIO()
    with pytest.raises(TranscriptNotReady) as caught:
        provider.download_transcript(created.transcript_id, sink)
    assert caught.value.status == 202
    assert "still being processed" in str(caught.value)
    assert sink.getvalue() == b""


def test_unknown_transcript_is_not_found(provider: MeetStreamProvider) -> None:
    with pytest.raises(ProviderNotFound):
        provider.download_transcript("no-such-transcript", io.BytesIO())


def test_download_transcript_writes_the_whole_document(sim: Simulator, provider: MeetStreamProvider) -> None:
    created = provider.create_bot(request(), idempotency_key="k")
    assert created.transcript_id
    wait_for_status(provider, created.bot_id, "Done")
    sink = io.BytesIO()
    written = provider.download_transcript(created.transcript_id, sink)
    assert written == len(sink.getvalue()) > 0
    segments = json.loads(sink.getvalue())
    assert len(segments) == sim.config.transcript_segments
    assert provider.find_transcript_id(created.bot_id) == created.transcript_id


class _CountingSink(io.RawIOBase):
    """Counts bytes and keeps only the first and last few, so the test itself stays small."""

    def __init__(self) -> None:
        self.size = 0
        self.head = b""
        self.tail = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if len(self.head) < 16:
            self.head = (self.head + chunk)[:16]
        self.tail = (self.tail + chunk)[-16:]
        self.size += len(chunk)
        return len(chunk)


def test_long_transcript_download_keeps_memory_bounded(make_sim: MakeSim) -> None:
    sim = make_sim(long_transcript_segments=2500)  # about 5 MB
    sim.set_scenario(MEETING, Scenario.LONG_TRANSCRIPT)
    provider = provider_for(sim, timeout=30.0)
    created = provider.create_bot(request(), idempotency_key="k")
    assert created.transcript_id
    wait_for_status(provider, created.bot_id, "Done")
    sink = _CountingSink()
    tracemalloc.start()
    try:
        written = provider.download_transcript(created.transcript_id, sink)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == sink.size > 4_000_000
    assert sink.head.startswith(b"[{") and sink.tail.endswith(b"}]")
    # server and client run in this process; both together stay far below the body size
    assert peak < 2_000_000, f"peak {peak} bytes for a {written}-byte transcript"


def test_find_transcript_id_searches_any_layout() -> None:
    assert find_transcript_id_in({"transcript_id": "top"}) == "top"
    assert find_transcript_id_in({"Transcription": {"TranscriptId": "nested"}}) == "nested"
    assert find_transcript_id_in({"runs": [{"x": 1}, {"transcript_id": "listed"}]}) == "listed"
    assert find_transcript_id_in({"transcript_id": None, "a": {"transcript_id": "deeper"}}) == "deeper"
    assert find_transcript_id_in({"RequestPayload": {"transcript_id": "echo"}}) is None
    assert find_transcript_id_in({}) is None


def test_no_transcript_id_for_a_streaming_provider(provider: MeetStreamProvider) -> None:
    created = provider.create_bot(request(transcript_provider="deepgram_streaming"), idempotency_key="k")
    assert created.transcript_id is None
    assert provider.find_transcript_id(created.bot_id) is None


# --- bot control ---------------------------------------------------------------------------------


def test_remove_bot_makes_it_leave(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(meeting_seconds=36000.0)
    provider = provider_for(sim)
    created = provider.create_bot(request(receiver.url()), idempotency_key="k")
    receiver.wait_for_event(created.bot_id, "bot.recording")
    provider.remove_bot(created.bot_id)
    receiver.wait_for_event(created.bot_id, "bot.done")
    assert provider.bot_status(created.bot_id) == "Done"
    with pytest.raises(ProviderNotFound):
        provider.remove_bot(created.bot_id)


def test_reschedule_and_cancel_a_scheduled_bot(sim: Simulator, provider: MeetStreamProvider) -> None:
    join_at = datetime.now(UTC) + timedelta(hours=1)
    created = provider.create_bot(request(join_at=join_at), idempotency_key="k")
    later = join_at + timedelta(minutes=30)
    provider.reschedule_bot(created.bot_id, later)
    assert datetime.fromisoformat(sim.bots()[0]["join_at"]) == later.replace(
        microsecond=later.microsecond // 1000 * 1000
    )
    provider.cancel_scheduled_bot(created.bot_id)
    with pytest.raises(ProviderNotFound):
        provider.bot_status(created.bot_id)


def test_reschedule_after_join_is_rejected(provider: MeetStreamProvider) -> None:
    created = provider.create_bot(request(), idempotency_key="k")
    with pytest.raises(ProviderRejected) as caught:
        provider.reschedule_bot(created.bot_id, datetime.now(UTC) + timedelta(hours=1))
    assert caught.value.status == 400


# --- the key never leaks ---------------------------------------------------------------------------


def test_api_key_never_appears_in_errors_reprs_or_logs(make_sim: MakeSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    def collect(action: Callable[[], object]) -> None:
        try:
            action()
        except ProviderError as exc:
            errors.append(exc)

    sim = make_sim()
    provider = provider_for(sim)
    collect(lambda: provider.create_bot(request(automatic_leave={"in_call_recording_timeout": 1}), idempotency_key="k"))
    collect(lambda: provider.bot_status("missing"))
    collect(lambda: provider.download_transcript("missing", io.BytesIO()))
    created = provider.create_bot(request(), idempotency_key="k2")
    assert created.transcript_id
    collect(lambda: provider.download_transcript(created.transcript_id or "", io.BytesIO()))
    provider.create_bot(request(), idempotency_key="d1")
    collect(lambda: provider.create_bot(request(meeting_url="https://zoom.us/j/5"), idempotency_key="d2"))
    wrong = MeetStreamProvider(lambda: SECRET_KEY + "x", base_url=sim.base_url)
    collect(lambda: wrong.bot_status("x"))
    collect(lambda: wrong.download_transcript("x", io.BytesIO()))
    for faults in (
        Faults(rate_limit=1.0),
        Faults(rate_limit=1.0, retry_after_http_date=1.0),
        Faults(server_error=1.0),
        Faults(timeout=1.0, timeout_seconds=2.0),
    ):
        sim.set_faults(faults)
        slow = provider_for(sim, timeout=0.3)
        collect(lambda p=slow: p.bot_status("x"))  # type: ignore[misc]
        collect(lambda p=slow: p.download_transcript("x", io.BytesIO()))  # type: ignore[misc]
    unreachable = MeetStreamProvider(lambda: SECRET_KEY, base_url="http://127.0.0.1:9/api/v1", timeout=0.5)
    collect(lambda: unreachable.bot_status("x"))
    collect(lambda: unreachable.download_transcript("x", io.BytesIO()))

    kinds = {type(e) for e in errors}
    assert kinds >= {
        ProviderRejected, ProviderNotFound, TranscriptNotReady, ProviderConflict, ProviderAuthError,
        ProviderRateLimited, ProviderUnavailable,
    }  # fmt: skip
    assert len(errors) == 17
    for error in errors:
        for text in (str(error), repr(error), *map(str, error.args)):
            assert SECRET_KEY not in text
            assert SECRET_KEY[:12] not in text
        # nothing from the SDK or httpx (which hold the request and its headers) is chained
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
    for text in (repr(provider), str(provider), caplog.text):
        assert SECRET_KEY not in text


def test_provider_message_with_the_key_echoed_is_redacted() -> None:
    provider = MeetStreamProvider(lambda: SECRET_KEY, base_url="http://127.0.0.1:9/api/v1")
    # the API does not echo keys today; if it ever did, the message must not repeat it
    echoed = meetstream.BadRequestError(f"bad key {SECRET_KEY}", status=400)
    error = provider._translate("status", echoed, SECRET_KEY)
    assert SECRET_KEY not in str(error) and "[redacted]" in str(error)
