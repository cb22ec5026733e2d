"""A burst that cannot fit the lead time, end to end on the embedded stack: every bot is created
before its join time and before start minus lead, and the provider's rate is never exceeded.

Small figures so it runs in about a minute of real time: 20 meetings at 2
creates a second need 10 s, more than twice the 3 s lead; the provider (the simulator's token
bucket) admits 2 a second. The stack's own pollers drive the queues, as in ``meetpilot dev``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from meetpilot.domain.clock import parse_iso
from meetpilot_dev.simulator import Faults
from meetpilot_dev.stack.embedded import LocalStack, StackOptions
from tests.support.stacks import FAST_SIMULATOR

RATE = 2.0
LEAD = 3
MEETINGS = 20


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
            "faults": Faults(create_rate_per_second=RATE),
        },
    )
    with LocalStack(options) as running:
        yield running


@pytest.mark.slow
def test_a_burst_bigger_than_rate_times_lead_is_created_in_time_and_never_above_the_rate(stack: LocalStack) -> None:
    assert stack.container is not None and stack.simulator is not None
    start = (stack.clock.now() + timedelta(seconds=50)).replace(microsecond=0)
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
    assert max(Counter(at.replace(microsecond=0) for at in planned.values() if at).values()) <= RATE
    # The creates: none before its slot, all before the join time, and the provider never said 429.
    assert all(created[key] >= at for key, at in planned.items() if at)
    assert max(created.values()) < start
    assert stack.simulator.fault_counts().get("create_rate_limit", 0) == 0
    per_second = Counter(t.replace(microsecond=0) for t in created.values())
    assert max(per_second.values()) <= RATE
