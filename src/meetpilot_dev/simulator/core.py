"""The public face of the simulator: build it, start it, point a MeetStream client at ``base_url``,
steer it (scenarios, faults) and look inside (bots, deliveries, fault counts)."""

from __future__ import annotations

import threading
from typing import Any

from meetpilot.domain.clock import Clock, SystemClock
from meetpilot_dev.simulator.api import API_PREFIX, MeetStreamAPI
from meetpilot_dev.simulator.config import Faults, Scenario, SimulatorConfig
from meetpilot_dev.simulator.faults import FaultInjector
from meetpilot_dev.simulator.server import SimulatorHTTPServer
from meetpilot_dev.simulator.timers import Timers
from meetpilot_dev.simulator.webhooks import WebhookDispatcher

LOOPBACK = "127.0.0.1"  # never reachable from another machine


class Simulator:
    """A MeetStream-compatible API on 127.0.0.1, for offline runs and tests.

    >>> sim = Simulator(SimulatorConfig(api_keys=("ms_sim_key",), speed=600.0))
    >>> base_url = sim.start()          # "http://127.0.0.1:<port>/api/v1"
    >>> sim.set_scenario("https://meet.google.com/abc-defg-hij", Scenario.NOT_ADMITTED)
    >>> sim.stop()

    Also usable as a context manager (``with Simulator() as sim: ...``).
    """

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.clock: Clock = clock or SystemClock()
        self._faults = FaultInjector(self.config.faults)
        self._timers = Timers()
        self._webhooks = WebhookDispatcher(
            self._faults, retries=self.config.webhook_retries, timeout=self.config.webhook_timeout_seconds
        )
        self._api = MeetStreamAPI(self.config, self.clock, self._faults, self._timers, self._webhooks)
        self._server: SimulatorHTTPServer | None = None
        self._state_lock = threading.Lock()
        self._stopped = False
        self._base_url: str | None = None

    # --- running ----------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving (idempotent) and return the base URL, ``http://127.0.0.1:<port>/api/v1``."""
        with self._state_lock:
            if self._stopped:
                raise RuntimeError("this simulator was stopped; create a new one")
            if self._base_url is not None:
                return self._base_url
            server = SimulatorHTTPServer((LOOPBACK, self.config.port), self._api)
            self._timers.start()
            self._webhooks.start()
            server.start()
            self._server = server
            port = server.server_address[1]
            self._base_url = f"http://{LOOPBACK}:{port}{API_PREFIX}"
            return self._base_url

    def stop(self) -> None:
        """Stop the server, the lifecycle timers and the webhook workers, and join every thread."""
        with self._state_lock:
            if self._stopped:
                return
            self._stopped = True
            self._api.stopping.set()  # releases requests held by the timeout fault
            if self._server is not None:
                self._server.stop()
                self._server = None
            self._timers.stop()
            self._webhooks.stop()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return self._base_url

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>``, where the ``/_sim`` admin endpoints live."""
        return self.base_url[: -len(API_PREFIX)]

    @property
    def api_key(self) -> str:
        """The first configured API key (the one to hand to a client)."""
        return self.config.api_keys[0]

    # --- steering ---------------------------------------------------------------------------

    def set_scenario(self, meeting_link: str, scenario: Scenario | str) -> None:
        """Decide what happens to bots created from now on for ``meeting_link``."""
        self._api.set_scenario(meeting_link, scenario)

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings at runtime; the random stream restarts from ``faults.seed``."""
        self._faults.set(faults)

    # --- looking inside ---------------------------------------------------------------------

    def bots(self) -> list[dict[str, Any]]:
        """A snapshot of every bot ever created, in creation order."""
        return self._api.bots()

    @property
    def create_calls(self) -> int:
        """How many create_bot requests created a new bot (replays and dedup hits excluded)."""
        return self._api.create_calls

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempted (or dropped), in the order they were made."""
        return self._webhooks.deliveries()

    def fault_counts(self) -> dict[str, int]:
        """How many faults of each kind were injected."""
        return self._faults.counts()
