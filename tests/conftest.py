"""Settings every test shares."""

from __future__ import annotations

import os
from pathlib import Path

from meetpilot_dev.stack.template import TEMPLATE_ENV

# Tests that change directory (a CLI run in a temporary folder) still build the stack from the
# checkout's template.
os.environ.setdefault(TEMPLATE_ENV, str(Path(__file__).resolve().parents[1] / "template.yaml"))

# Fixtures every folder may use: stacks (the embedded stack per test), the management API's stack,
# the simulator on its own.
pytest_plugins = ["tests.support.stacks", "tests.support.api_stack", "tests.support.simulators"]
