"""Each Lambda handler imports only what its first event needs: checked in a fresh interpreter, since
the test process itself has everything loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# handler module -> heavy packages its import must not load. The workbench never; the CLI's
# terminal stack (which httpx pulls in whenever it is installed) never; Powertools' batch utility,
# replaced by our own loop, never; boto3's S3 transfer manager and the provider's HTTP client come
# with the first event that uses them, not with the import.
ALWAYS = ("meetpilot_dev", "rich", "click", "pygments", "aws_lambda_powertools.utilities.batch", "moto")
AT_IMPORT = ("boto3", "s3transfer", "httpx", "meetstream")
HANDLERS = {
    "meetpilot.handlers.dispatch": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.ingest": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.bot_events": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.transcript_fetch": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.reconcile": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.calendar_sync": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.calendar_push": (*ALWAYS, *AT_IMPORT),
    "meetpilot.handlers.graph_notify": (*ALWAYS, *AT_IMPORT, "pydantic"),
    "meetpilot.handlers.management": ALWAYS,
}

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))
"""


def _loaded(module: str, *then: str) -> set[str]:
    code = _PROBE + "".join(f"\n{line}" for line in then)
    out = subprocess.run(
        [sys.executable, "-c", code, module], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(json.loads(out.splitlines()[0]))


def _hits(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f for f in forbidden if any(m == f or m.startswith(f + ".") for m in loaded))


@pytest.mark.parametrize("module", sorted(HANDLERS))
def test_handler_import_loads_no_heavy_module_its_first_event_does_not_need(module: str) -> None:
    assert _hits(_loaded(module), HANDLERS[module]) == []


def test_an_unused_adapter_client_is_never_created() -> None:
    code = """
import json, os, sys
os.environ.update(AWS_DEFAULT_REGION="us-east-1", DISPATCH_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/q",
                  EVENT_BUS_NAME="bus")
from meetpilot.composition import Container
c = Container()
c.dispatch_queue, c.event_publisher, c.secrets
print(json.dumps({"clients": sorted(c._clients), "boto3": "boto3" in sys.modules}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert json.loads(out) == {"clients": [], "boto3": False}


def test_the_provider_client_comes_without_the_httpx_command_line_tool() -> None:
    # rich and click are installed here beside the CLI (they are not in Lambda); the provider's
    # httpx client, loaded by the dispatch path's first event, must not pull them in.
    code = """
import json, sys
import meetpilot.handlers.dispatch
import meetpilot.adapters.meetstream
print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    loaded = set(json.loads(out))
    assert "httpx" in loaded
    assert _hits(loaded, ("rich", "click", "pygments")) == []
