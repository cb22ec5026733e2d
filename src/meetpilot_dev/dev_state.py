"""Where a running ``meetpilot dev`` says how to reach it: a state file the other commands read.

The management client reads it and the dev command writes it; keeping it apart from both keeps
the client free of the dev command's imports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meetpilot_dev.stack.embedded import LocalStack

STATE_FILE = Path(".meetpilot") / "dev.json"


def write_state(stack: LocalStack, path: Path = STATE_FILE, *, dashboard_url: str | None = None) -> None:
    assert stack.gateway is not None and stack.simulator is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "dashboard": dashboard_url,
        "gateway": stack.gateway.url,
        "simulator": stack.simulator.base_url,
        "simulator_api_key": stack.api_key,
        "environment": stack.environment(),
    }
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)  # it holds the local simulator's API key


def read_state(path: Path = STATE_FILE) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no running 'meetpilot dev' found ({path} is missing); start one first") from None
    return data
