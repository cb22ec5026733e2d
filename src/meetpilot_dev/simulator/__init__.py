"""A MeetStream-compatible API for offline runs and tests: Token auth, create_bot with
Idempotency-Key replays (507) and deduplication keys, status and detail, remove_bot, data deletion,
scheduled bots, transcripts (202 until processed), a per-bot lifecycle that posts webhooks, and
fault injection. See README.md in this package for what is and is not faithful.

It stands alone: nothing of meetpilot is imported except the clock.

    from meetpilot_dev.simulator import Simulator, SimulatorConfig, Scenario

    with Simulator(SimulatorConfig(speed=600.0)) as sim:
        client = meetstream.MeetStream(api_key=sim.api_key, base_url=sim.base_url)
"""

from meetpilot_dev.simulator.config import Faults, Scenario, SimulatorConfig
from meetpilot_dev.simulator.core import Simulator

__all__ = ["Faults", "Scenario", "Simulator", "SimulatorConfig"]
