from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import meetstream
import pytest

from meetpilot_dev.simulator import Simulator, SimulatorConfig
from tests.support.simulator_support import FAST, Receiver, client_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def make(clock: Any = None, **overrides: Any) -> Simulator:
        sim = Simulator(SimulatorConfig(**{**FAST, **overrides}), clock=clock)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture
def client(sim: Simulator) -> Iterator[meetstream.MeetStream]:
    with client_for(sim) as c:
        yield c
