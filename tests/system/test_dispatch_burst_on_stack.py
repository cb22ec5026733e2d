"""A burst that cannot fit the lead time, end to end on the embedded stack: every bot is created
before its join time and before start minus lead, and the provider's rate is never exceeded.

Small figures so it runs in well under a minute of real time on a busy machine: 12 meetings at 1
create a second need 12 s, more than twice the 3 s lead; the provider (the simulator's token
bucket) admits 1 a second. Only the dispatch queue is driven: the bots' later lifecycle is not
what this test is about.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from meetpilot.domain.clock import parse_iso
from meetpilot_dev.simulator import Faults
from meetpilot_dev.stack.embedded import LocalStack

RATE = 1.0
LEAD = 3
MEETINGS = 12


def test_a_burst_bigger_than_rate_times_lead_is_created_in_time_and_never_above_the_rate(
    stack_factory: Callable[..., LocalStack],
) -> None:
    stack = stack_factory(
        lead_time_seconds=LEAD,
        provider_create_rate=RATE,
        simulator_overrides={"faults": Faults(create_rate_per_second=RATE)},
    )
    assert stack.container is not None and stack.simulator is not None
    start = (stack.clock.now() + timedelta(seconds=45)).replace(microsecond=0)
    keys = {
        stack.submit_meeting(f"https://meet.google.com/brs-{i:04d}-one", start, user_id=f"u{i}")
        for i in range(MEETINGS)
    }

    dispatch = stack.feeders["DispatchFunction"]
    deadline_wall = time.monotonic() + 90
    while len(stack.simulator.bots()) < MEETINGS and time.monotonic() < deadline_wall:
        if not dispatch.drain():
            time.sleep(0.05)
    assert len(stack.simulator.bots()) == MEETINGS

    bots = stack.simulator.bots()
    assert Counter(str((b.get("custom_attributes") or {}).get("meeting_key")) for b in bots) == dict.fromkeys(keys, 1)
    created = sorted(parse_iso(b["created_at"]) for b in bots)
    deadline = start - timedelta(seconds=LEAD)
    assert created[-1] <= deadline, (created, deadline, stack.simulator.fault_counts())  # none later than start - lead, so all before the join time
    assert stack.simulator.fault_counts().get("create_rate_limit", 0) == 0  # the provider never said 429
    per_second = Counter(t.replace(microsecond=0) for t in created)
    assert max(per_second.values()) <= RATE
    # Spread earlier than the lead: the first create is at least MEETINGS / RATE - 1 s before the deadline.
    assert created[0] <= deadline - timedelta(seconds=MEETINGS / RATE - 1)
