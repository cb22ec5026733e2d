"""Integration fixtures: the embedded stack (moto server, template resources, gateway, simulator)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meetpilot_dev.stack.embedded import LocalStack, StackOptions

FAST_SIMULATOR = {"meeting_seconds": 60.0, "step_seconds": 2.0, "processing_seconds": 5.0, "waiting_room_seconds": 20.0}


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., LocalStack]]:
    started: list[LocalStack] = []

    def make(**overrides: Any) -> LocalStack:
        sim = {**FAST_SIMULATOR, **overrides.pop("simulator_overrides", {})}
        options = StackOptions(background_pollers=False, simulator_overrides=sim, **overrides)
        stack = LocalStack(options).start()
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture
def stack(stack_factory: Callable[..., LocalStack]) -> LocalStack:
    return stack_factory()


def run_until(stack: LocalStack, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Drive the queues by hand until ``predicate`` holds (webhooks arrive on their own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.drain()
        if predicate():
            return True
        time.sleep(0.05)
    stack.drain()
    return predicate()
