"""A local stack for the management API tests: the template's routes behind the SigV4-checking
gateway, the emulator and the simulator. No background pollers: a test drains the queues it needs,
and nothing it registers (calendar feeds included) is ever fetched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meetpilot.composition import use_container
from meetpilot_dev.client import ManagementClient
from meetpilot_dev.stack.embedded import LocalStack, StackOptions


@pytest.fixture(scope="session")
def api_stack() -> Iterator[LocalStack]:
    stack = LocalStack(StackOptions(background_pollers=False, speed=600.0, google_fake=True))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _api_stack_serves(request: pytest.FixtureRequest) -> None:
    """The handlers behind the gateway find their composition root in one process-wide slot. Run in
    parallel, a worker may have started and stopped another file's stack since this session's
    stack started, and stopping one empties that slot: point it back before each test."""
    if "api_stack" in request.fixturenames:
        use_container(request.getfixturevalue("api_stack").container)


@pytest.fixture(scope="session")
def api(api_stack: LocalStack) -> Iterator[ManagementClient]:
    assert api_stack.gateway is not None
    client = ManagementClient.for_dev({"gateway": api_stack.gateway.url, "environment": api_stack.environment()})
    yield client
    client.close()


def dispatch_now(stack: LocalStack) -> int:
    """Run the dispatcher over everything queued for it (and nothing else)."""
    return stack.feeders["DispatchFunction"].drain()
