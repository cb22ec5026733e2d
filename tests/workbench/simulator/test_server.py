"""Running the simulator: start/stop, threads, admin endpoints, and the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import meetstream
import pytest

from meetpilot_dev.simulator import Faults, Scenario, Simulator, SimulatorConfig
from tests.support.simulator_support import MEETING, MakeSim, Receiver, bot_body, client_for


def test_start_returns_a_loopback_base_url_and_is_idempotent() -> None:
    sim = Simulator(SimulatorConfig())
    try:
        url = sim.start()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", url)
        assert sim.start() == url
        assert sim.base_url == url
    finally:
        sim.stop()
    sim.stop()  # twice is fine
    with pytest.raises(RuntimeError):
        sim.start()


def test_stop_leaves_no_thread_alive() -> None:
    nowhere = "http://127.0.0.1:9/hook"  # no receiver: its threads would not be the simulator's
    before = set(threading.enumerate())
    sim = Simulator(SimulatorConfig(speed=3600.0, meeting_seconds=36000.0, faults=Faults(timeout_seconds=30.0)))
    sim.start()
    client = client_for(sim)  # deliberately left open: a keep-alive connection to the server
    created = client.bots.create(bot_body(nowhere, join_at="2099-01-01T00:00:00Z"))
    client.bots.create(bot_body(nowhere))  # a bot in a meeting with pending timers
    client.bots.status(created["bot_id"])
    sim.set_faults(Faults(timeout=1.0, timeout_seconds=30.0))
    auth = {"Authorization": f"Token {sim.api_key}"}
    outcome: list[str] = []

    def held_request() -> None:  # held by the timeout fault until stop() cuts it off
        try:
            httpx.get(f"{sim.base_url}/bots", headers=auth, timeout=60)
            outcome.append("answered")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    held = threading.Thread(target=held_request)
    held.start()
    time.sleep(0.2)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3
    held.join(timeout=5)
    assert outcome == ["RemoteProtocolError"]
    client.close()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []


def test_context_manager_starts_and_stops() -> None:
    with Simulator(SimulatorConfig()) as sim, client_for(sim) as client:
        assert client.calendar.list_scheduled_bots() == {"scheduled_bots": []}
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.base_url)


def test_unknown_path_is_404(sim: Simulator) -> None:
    assert httpx.get(f"{sim.root_url}/elsewhere").status_code == 404
    response = httpx.get(f"{sim.base_url}/nothing/here", headers={"Authorization": f"Token {sim.api_key}"})
    assert response.status_code == 404


def test_admin_endpoints_need_no_auth(sim: Simulator, receiver: Receiver) -> None:
    admin = f"{sim.root_url}/_sim"
    answer = httpx.post(f"{admin}/scenarios", json={"meeting_link": MEETING, "scenario": "not_admitted"})
    assert answer.status_code == 200
    assert httpx.get(f"{admin}/scenarios").json() == {"scenarios": {MEETING: "not_admitted"}}
    assert httpx.post(f"{admin}/scenarios", json={"meeting_link": MEETING, "scenario": "bogus"}).status_code == 400
    with client_for(sim) as client:
        bot_id = client.bots.create(bot_body(receiver.url()), idempotency_key="i-1")["bot_id"]
    receiver.wait_for_event(bot_id, "bot.done")
    bots = httpx.get(f"{admin}/bots").json()["bots"]
    assert [b["bot_id"] for b in bots] == [bot_id]
    snapshot = bots[0]
    assert snapshot["scenario"] == "not_admitted"
    assert snapshot["idempotency_key"] == "i-1"
    assert "bot.notallowed" in snapshot["events_sent"]
    assert set(snapshot) >= {
        "bot_id", "meeting_link", "status", "custom_attributes", "created_at", "idempotency_key",
        "deduplication_key", "transcript_id", "events_sent",
    }  # fmt: skip
    time.sleep(0.05)
    deliveries = httpx.get(f"{admin}/deliveries").json()["deliveries"]
    assert [d["name"] for d in deliveries] == snapshot["events_sent"]
    assert all(d["status"] == 200 and not d["dropped"] for d in deliveries)


def test_set_scenario_accepts_strings_and_rejects_unknown_ones(sim: Simulator) -> None:
    sim.set_scenario(MEETING, "kicked")
    with pytest.raises(ValueError):
        sim.set_scenario(MEETING, "on_fire")
    assert Scenario("kicked") is Scenario.KICKED


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(speed=0)
    with pytest.raises(ValueError):
        SimulatorConfig(joining_attempts=4)
    with pytest.raises(ValueError):
        SimulatorConfig(workspace_url="http://127.0.0.1:1/ws")  # no secret


def test_many_bots_at_once(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = make_sim()
    with client_for(sim) as client:
        links = [f"https://zoom.us/j/{n}" for n in range(20)]
        ids = [client.bots.create(bot_body(receiver.url(), meeting_link=link))["bot_id"] for link in links]
    receiver.wait_for(lambda _: all(any(r.name == "bot.done" for r in receiver.for_bot(i)) for i in ids), timeout=10)
    for bot_id in ids:
        names = [r.name for r in receiver.for_bot(bot_id)]
        assert names[0] == "bot.joining" and names[-1] == "bot.done"


def test_command_line_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "meetpilot_dev.simulator", "--port", "0", "--speed", "600", "--api-key", "ms_cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/api/v1)", first)
        assert match, first
        assert "ms_cli" in process.stdout.readline()
        with meetstream.MeetStream(api_key="ms_cli", base_url=match.group(1), max_retries=0) as client:
            assert client.bots.create(bot_body())["bot_id"]
        process.send_signal(signal.SIGINT)
        # Bounded, not timed: a busy machine may take a while to run the shutdown.
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped" in out
