"""Command line of the simulator: ``main(argv)`` serves until Ctrl-C (or SIGTERM), then stops cleanly.

Used by ``python -m meetpilot_dev.simulator`` and by the ``meetpilot simulator`` subcommand.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from meetpilot_dev.simulator.config import Faults, Scenario, SimulatorConfig
from meetpilot_dev.simulator.core import Simulator


def build_parser(prog: str = "python -m meetpilot_dev.simulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run a MeetStream-compatible API on 127.0.0.1 for offline development."
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default: 60)")
    parser.add_argument("--api-key", default="ms_sim_key", help="the API key clients must send")
    parser.add_argument(
        "--scenario",
        default=Scenario.NORMAL.value,
        choices=[s.value for s in Scenario],
        help="what happens to bots of meeting links without a scenario of their own",
    )
    parser.add_argument("--meeting-seconds", type=float, default=1800.0, help="simulated meeting length")
    parser.add_argument("--legacy-webhooks", action="store_true", help="send only `event`, no `bot_event`")
    parser.add_argument("--workspace-url", help="also post every event here, signed")
    parser.add_argument("--workspace-secret", help="secret for the workspace signature")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SimulatorConfig(
            api_keys=(args.api_key,),
            speed=args.speed,
            port=args.port,
            default_scenario=Scenario(args.scenario),
            meeting_seconds=args.meeting_seconds,
            legacy_webhooks=args.legacy_webhooks,
            workspace_url=args.workspace_url,
            workspace_secret=args.workspace_secret,
            faults=Faults(seed=args.seed),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    simulator = Simulator(config)
    try:
        base_url = simulator.start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"MeetStream simulator: {base_url}", flush=True)
    print(f"API key: {simulator.api_key}", flush=True)
    print(f"Admin: {simulator.root_url}/_sim/bots  (Ctrl-C stops)", flush=True)

    done = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("MeetStream simulator stopped.", flush=True)
    return 0
