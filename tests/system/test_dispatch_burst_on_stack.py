"""A burst that cannot fit the lead time, end to end on the embedded stack: every bot is created
before its join time and before start minus lead, and the provider's rate is never exceeded.

Small figures so it runs in about a minute of real time: 8 meetings at one create every 2 s need
16 s, twice the 4 s lead. The rate is low so that the emulator, on a busy machine, keeps up with
the plan with room to spare: what is measured is the plan and the dispatcher's keeping to it, not
the emulator's pace. The provider (the simulator's token bucket, a burst of one) admits twice the
planned rate: a create that is a little late and the next one on time are then still within its
limit, so it never answers 429. The stack's own pollers drive the queues, as in ``meetpilot dev``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise

import pytest

from meetpilot.domain.clock import parse_iso
from meetpilot_dev.simulator import Faults
from meetpilot_dev.stack.embedded import LocalStack, StackOptions
from tests.support.stacks import FAST_SIMULATOR

RATE = 0.5
PROVIDER_RATE = 2 * RATE
LEAD = 4
MEETINGS = 8


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        lead_time_seconds=LEAD,
        provider_create_rate=RATE,
        pollers_per_queue=3,
        # Long meetings: the bots' later lifecycle is not what this test is about.
        simulator_overrides={
            **FAST_SIMULATOR,
            "meeting_seconds": 3600.0,
            "faults": Faults(create_rate_per_second=PROVIDER_RATE),
        },
    )
    with LocalStack(options) as running:
        yield running


@pytest.mark.slow
def test_a_burst_bigger_than_rate_times_lead_is_created_in_time_and_never_above_the_rate(stack: LocalStack) -> None:
    assert stack.container is not None and stack.simulator is not None
    start = (stack.clock.now() + timedelta(seconds=60)).replace(microsecond=0)
    keys = {
        stack.submit_meeting(f"https://meet.google.com/brs-{i:04d}-one", start, user_id=f"u{i}")
        for i in range(MEETINGS)
    }

    deadline_wall = time.monotonic() + 90
    while len(stack.simulator.bots()) < MEETINGS and time.monotonic() < deadline_wall:
        time.sleep(0.2)
    assert len(stack.simulator.bots()) == MEETINGS

    bots = stack.simulator.bots()
    assert Counter(str((b.get("custom_attributes") or {}).get("meeting_key")) for b in bots) == dict.fromkeys(keys, 1)
    deadline = start - timedelta(seconds=LEAD)
    created = {str(b["custom_attributes"]["meeting_key"]): parse_iso(b["created_at"]) for b in bots}
    planned = {key: stack.container.repository.get_meeting(key).dispatch_at for key in keys}  # type: ignore[union-attr]
    # The plan: every slot over by start - lead, spread earlier than the lead, never two in a slot.
    assert all(at is not None and at <= deadline for at in planned.values())
    assert min(at for at in planned.values() if at) <= deadline - timedelta(seconds=MEETINGS / RATE - 1)
    # At a rate under one a second a slot is 1 / rate seconds long and holds one create.
    slots = sorted(at for at in planned.values() if at)
    assert all((b - a).total_seconds() >= 1 / RATE - 0.01 for a, b in pairwise(slots))
    # The creates: none before its slot, all before the join time, and the provider never said 429.
    assert all(created[key] >= at for key, at in planned.items() if at)
    assert max(created.values()) < start
    assert stack.simulator.fault_counts().get("create_rate_limit", 0) == 0
    # The creates kept to the plan's spacing, within the slack the provider's limit leaves.
    ordered = sorted(created.values())
    assert all((b - a).total_seconds() >= 1 / PROVIDER_RATE - 0.1 for a, b in pairwise(ordered))
