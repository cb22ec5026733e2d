"""``meetpilot dev``: the embedded stack, long-running, for developing against meetpilot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.credentials import Credentials

from meetpilot.composition import Container
from meetpilot.settings import Settings
from meetpilot_dev.client import ManagementClient
from meetpilot_dev.dashboard import DashboardServer
from meetpilot_dev.dev_state import STATE_FILE, read_state, write_state
from meetpilot_dev.stack.embedded import LocalStack, StackOptions

__all__ = ["STATE_FILE", "container_from_state", "describe", "read_state", "run_dev", "write_state"]


def describe(stack: LocalStack, dashboard_url: str | None = None) -> list[str]:
    assert stack.gateway is not None and stack.simulator is not None
    lines = [
        "meetpilot dev is running (Ctrl-C stops it)",
        *([f"  dashboard       : {dashboard_url}"] if dashboard_url else []),
        f"  webhook gateway : {stack.gateway.url}/webhooks/meetstream",
        f"  management API  : {stack.gateway.url}/v1  (SigV4-signed; the meetpilot commands sign for you)",
        f"  simulator       : {stack.simulator.base_url}  (API key in {STATE_FILE})",
        f"  AWS emulator    : {stack.aws_endpoint}",
        "",
        "Point the AWS CLI or boto3 at the local stack:",
    ]
    lines += [f"  export {name}={value}" for name, value in sorted(stack.environment().items())]
    lines += [
        "",
        "Add a meeting from another terminal, then follow it:",
        "  meetpilot meetings add https://meet.google.com/abc-defg-hij --in 60",
        "  meetpilot sessions watch",
    ]
    return lines


def run_dev(
    stop: threading.Event,
    *,
    options: StackOptions | None = None,
    say: Callable[[str], None] = print,
    state_path: Path = STATE_FILE,
    dashboard_port: int | None = 0,
) -> None:
    """Run the stack until ``stop`` is set, then stop every thread and server.

    ``dashboard_port`` 0 picks a free port for the dashboard; None runs without it.
    """
    stack = LocalStack(options or StackOptions(speed=60.0))
    dashboard: DashboardServer | None = None
    try:
        stack.start()
        if dashboard_port is not None:
            dashboard = DashboardServer(dev_api_client(stack), port=dashboard_port).start()
        url = dashboard.url if dashboard else None
        write_state(stack, state_path, dashboard_url=url)
        for line in describe(stack, url):
            say(line)
        while not stop.wait(0.5):
            pass
    finally:
        if dashboard is not None:
            dashboard.stop()
            dashboard.api.close()
        stack.stop()
        state_path.unlink(missing_ok=True)
        say("meetpilot dev stopped")


def dev_api_client(stack: LocalStack) -> ManagementClient:
    """A management API client for this stack, signing with its local credentials."""
    assert stack.gateway is not None
    env = stack.environment()
    credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    return ManagementClient(stack.gateway.url, credentials, env["AWS_DEFAULT_REGION"])


def container_from_state(state: dict[str, Any]) -> Any:
    """A composition root pointed at a running 'meetpilot dev' (for CLI commands)."""
    env = dict(state["environment"])
    env.setdefault("MEETSTREAM_BASE_URL", state["simulator"])
    env.setdefault("PUBLIC_BASE_URL", state["gateway"])
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    return Container(Settings.from_env(env), boto_session=session, endpoint_url=env["AWS_ENDPOINT_URL"])
