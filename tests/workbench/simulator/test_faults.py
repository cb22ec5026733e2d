"""Every fault switch has an effect a client can observe, and is counted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import meetstream
import pytest

from meetpilot_dev.simulator import Faults, Scenario, Simulator
from tests.support.simulator_support import MEETING, MakeSim, Receiver, bot_body, client_for, wait_until


def _auth(sim: Simulator) -> dict[str, str]:
    return {"Authorization": f"Token {sim.api_key}"}


def test_rate_limit_answers_429_with_retry_after_seconds(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(rate_limit=1.0, retry_after_seconds=7))
    with client_for(sim) as client, pytest.raises(meetstream.RateLimitError) as caught:
        client.bots.create(bot_body())
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert sim.create_calls == 0
    assert sim.fault_counts()["rate_limit"] == 1


def test_rate_limit_can_send_retry_after_as_an_http_date(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(rate_limit=1.0, retry_after_seconds=30, retry_after_http_date=1.0))
    response = httpx.get(f"{sim.base_url}/bots/x/status", headers=_auth(sim))
    assert response.status_code == 429
    when = parsedate_to_datetime(response.headers["retry-after"])
    assert 28 <= (when - datetime.now(UTC)).total_seconds() <= 32


def test_server_error_answers_5xx_and_does_nothing(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(server_error=1.0, seed=3))
    statuses = set()
    with client_for(sim) as client:
        for _ in range(12):
            with pytest.raises(meetstream.ServerError) as caught:
                client.bots.create(bot_body())
            statuses.add(caught.value.status)
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert sim.create_calls == 0
    assert sim.fault_counts()["server_error"] == 12


def test_timeout_holds_the_answer_but_the_bot_is_created(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(timeout=1.0, timeout_seconds=2.0, paths=("create_bot",)))
    with client_for(sim, timeout=0.3) as client:
        with pytest.raises(meetstream.TimeoutError):
            client.bots.create(bot_body(), idempotency_key="retry-me")
        assert sim.create_calls == 1  # the crash-between case: created, but the caller never heard
        sim.set_faults(Faults())
        replay = client.bots.create(bot_body(), idempotency_key="retry-me")
    assert replay["bot_id"] == sim.bots()[0]["bot_id"]
    assert sim.create_calls == 1
    assert sim.fault_counts()["timeout"] == 1


def test_paths_limit_request_faults(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(server_error=1.0, paths=("/status",)))
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body())["bot_id"]
        client.bots.detail(bot_id)
        with pytest.raises(meetstream.ServerError):
            client.bots.status(bot_id)


def test_faults_are_reproducible_from_the_seed(make_sim: MakeSim) -> None:
    def pattern(sim: Simulator) -> list[int]:
        with httpx.Client(headers=_auth(sim)) as http:
            return [http.get(f"{sim.base_url}/bots/none/status").status_code for _ in range(30)]

    first = pattern(make_sim(faults=Faults(rate_limit=0.3, server_error=0.3, seed=42)))
    second = pattern(make_sim(faults=Faults(rate_limit=0.3, server_error=0.3, seed=42)))
    other = pattern(make_sim(faults=Faults(rate_limit=0.3, server_error=0.3, seed=7)))
    assert first == second
    assert first != other
    assert {429, 404} <= set(first)


def test_create_rate_token_bucket(make_sim: MakeSim) -> None:
    sim = make_sim(faults=Faults(create_rate_per_second=4.0))
    url = f"{sim.base_url}/bots/create_bot"
    with httpx.Client(headers=_auth(sim)) as http:
        answers = [http.post(url, json=bot_body()) for _ in range(8)]
        statuses = [a.status_code for a in answers]
        assert statuses[:4] == [201] * 4  # a burst of one second's worth
        assert 429 in statuses[4:]
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["retry-after"] == "1"
        # other endpoints are not limited by the bucket
        assert http.get(f"{sim.base_url}/calendar/scheduled_bots").status_code == 200
        time.sleep(0.3)  # a token comes back every 0.25 s
        assert http.post(url, json=bot_body()).status_code == 201
    assert sim.fault_counts()["create_rate_limit"] == statuses.count(429)


def test_duplicate_webhook_delivers_identical_bodies_twice(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(faults=Faults(duplicate_webhook=1.0))
    sim.set_scenario(MEETING, Scenario.DENIED)
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body(receiver.url()))["bot_id"]
    receiver.wait_for(lambda _: [r.name for r in receiver.for_bot(bot_id)].count("bot.done") == 2)
    raws = [r.raw for r in receiver.for_bot(bot_id)]
    assert raws[0::2] == raws[1::2]
    assert sim.fault_counts()["duplicate_webhook"] == len(raws) // 2
    # The simulator records a delivery once the receiver has answered it: the last one may be
    # received here a moment before it is recorded there (seen on a busy machine).
    wait_until(lambda: len(sim.deliveries()) == len(raws))
    assert sum(d["duplicate"] for d in sim.deliveries()) == len(raws) // 2


def test_drop_webhook_never_delivers(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(faults=Faults(drop_webhook=1.0))
    sim.set_scenario(MEETING, Scenario.DENIED)
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body(receiver.url()))["bot_id"]
        deadline = time.monotonic() + 5
        while client.bots.status(bot_id)["status"] != "Done" and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(0.1)
    assert receiver.for_bot(bot_id) == []
    deliveries = sim.deliveries()
    assert len(deliveries) == 5 and all(d["dropped"] for d in deliveries)
    assert sim.fault_counts()["drop_webhook"] == 5


def test_reorder_webhook_swaps_neighbours(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim(faults=Faults(reorder_webhook=1.0))
    sim.set_scenario(MEETING, Scenario.DENIED)
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body(receiver.url()))["bot_id"]
    receiver.wait_for(lambda _: len(receiver.for_bot(bot_id)) == 5)
    names = [r.name for r in receiver.for_bot(bot_id)]
    emitted = sim.bots()[0]["events_sent"]
    assert sorted(names) == sorted(emitted)
    assert names[:2] == [emitted[1], emitted[0]]
    assert sim.fault_counts()["reorder_webhook"] >= 2


def test_slow_transcript_delays_transcription(make_sim: MakeSim, receiver: Receiver) -> None:
    # 3600 simulated seconds at speed 3600: one real second more
    sim = make_sim(faults=Faults(slow_transcript_seconds=3600.0))
    with client_for(sim) as client:
        created = client.bots.create(bot_body(receiver.url()))
        receiver.wait_for_event(created["bot_id"], "audio.processed")
        audio_at = time.monotonic()
        with pytest.raises(meetstream.NotReadyError):
            client.transcripts.get(created["transcript_id"])
        receiver.wait_for_event(created["bot_id"], "transcription.processed", timeout=5)
        assert time.monotonic() - audio_at >= 0.9
        assert client.transcripts.get(created["transcript_id"])
    assert sim.fault_counts()["slow_transcript"] == 1


def test_set_faults_at_runtime_and_through_the_admin_endpoint(sim: Simulator) -> None:
    url = f"{sim.base_url}/bots/x/status"
    assert httpx.get(url, headers=_auth(sim)).status_code == 404
    sim.set_faults(Faults(rate_limit=1.0))
    assert httpx.get(url, headers=_auth(sim)).status_code == 429
    admin = f"{sim.root_url}/_sim/faults"
    answer = httpx.post(admin, json={"server_error": 1.0, "paths": ["/status"]})
    assert answer.status_code == 200 and answer.json()["faults"]["server_error"] == 1.0
    assert httpx.get(url, headers=_auth(sim)).status_code in (500, 502, 503)
    assert httpx.post(admin, json={"no_such_fault": 1}).status_code == 400
    assert httpx.post(admin, json={"rate_limit": 2}).status_code == 400
    counts = httpx.get(admin).json()["counts"]
    assert counts["rate_limit"] == 1 and counts["server_error"] == 1


def test_fault_counts_start_at_zero_for_every_kind(sim: Simulator) -> None:
    assert set(sim.fault_counts()) == {
        "rate_limit", "create_rate_limit", "server_error", "timeout",
        "duplicate_webhook", "reorder_webhook", "drop_webhook", "slow_transcript",
    }  # fmt: skip
    assert not any(sim.fault_counts().values())


def test_faults_reject_rates_outside_0_to_1() -> None:
    with pytest.raises(ValueError):
        Faults(drop_webhook=1.5)
    with pytest.raises(ValueError):
        Faults(create_rate_per_second=0)


def test_concurrent_creates_with_one_key_make_one_bot(sim: Simulator) -> None:
    results: list[int] = []

    def create() -> None:
        with httpx.Client(headers={**_auth(sim), "Idempotency-Key": "same"}) as http:
            results.append(http.post(f"{sim.base_url}/bots/create_bot", json=bot_body()).status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [507] * 7
    assert sim.create_calls == 1
