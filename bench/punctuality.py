"""Benchmark 1: punctuality under a burst.

Many meetings start in the same minute and the provider admits only so many ``create_bot`` calls
per second (the simulator's token bucket answers the rest 429 with Retry-After). Two runs, side by
side, against the same simulator settings:

* **meetpilot**: the whole local stack, planning at the provider's rate. Every meeting is
  submitted and gets a slot of the dispatch plan (at or before start minus lead, a burst spread
  earlier) and its one-time schedule a minute ahead of the slot; the schedules fire, and the dispatch
  function (as many pollers as the template's MaximumConcurrency) holds each message to its slot and
  creates the bot, re-enqueueing a throttled meeting with an SQS delay that honours Retry-After.

Before the bursts, the bench measures what the embedded emulator sustains on this machine:
dispatch-shaped chains of AWS calls (the meeting read, claim, session write, session update,
finish, one SQS send) a second, from as many threads as the dispatch pollers. Where that is below
twice the provider's rate, the burst runs at a provider rate the emulator sustains with room to
spare (half of it, whole creates a second) and with a minute's worth of meetings at that rate, and
the result says so: otherwise the figure measures moto, not meetpilot. A second burst cannot fit
the lead time: N meetings where N / rate is 2.5 times a short lead (30 s, so the run stays short).
* **original design**: each create fired once, 2 minutes before the start, by its own invocation
  (all at once, as a thousand schedules in one minute do), no retry, no rate awareness: a 429 is a
  lost bot.

Time is not scaled. The provider's rate, Retry-After values and SQS delays are real seconds. The
only shortcut is the clock's jump over the idle wait between "every meeting is scheduled" and
"their dispatch is due" (the stack clock moves forward by that much at once, for every
component). From the due moment on, everything runs in real time.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from meetpilot.domain.clock import parse_iso


class ShiftableClock:
    """Wall-clock UTC plus an offset that only moves forward (see the module docstring)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def jump_to(self, when: datetime) -> None:
        with self._lock:
            ahead = (when - self.now()).total_seconds()
            if ahead > 0:
                self._offset += ahead


@dataclass(frozen=True)
class BurstConfig:
    meetings: int = 1000
    rate_per_second: float = 10.0  # the provider's create_bot admission rate
    lead_seconds: int = 600  # meetpilot's default lead time
    original_lead_seconds: int = 120  # the original design fired each create 2 minutes ahead
    # Pollers of the dispatch queue; None: the template's MaximumConcurrency for DispatchFunction.
    dispatch_concurrency: int | None = None
    # Concurrent create calls of the original design (one invocation per meeting, all at once;
    # more than this and the simulator's HTTP server starts refusing connections).
    original_concurrency: int = 16
    # Threads that deliver the due schedules (EventBridge Scheduler fires a minute's worth together).
    firing_threads: int = 8
    # How long after the due moment the run waits for the last bot (wall seconds).
    window_seconds: float = 400.0
    setup_timeout_seconds: float = 300.0
    # Measure what the local stack sustains first and lower the rate (and the meetings) to it.
    measure_emulator: bool = True
    calibration_meetings: int = 100
    # The burst that cannot fit the lead: N / rate = overfill x lead.
    overfill_lead_seconds: int = 30
    overfill: float = 2.5


# The burst runs at the provider's rate when the stack sustains this many times it.
SPARE = 2.0
# A provider rate no burst reaches: the simulator admits every create.
UNLIMITED_RATE = 10_000.0


def _meeting_url(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    a, b, c = letters[i % 26], letters[(i // 26) % 26], letters[(i // 676) % 26]
    return f"https://meet.google.com/{a}{b}{c}-{i:04d}-brs"


def _top_of_minute(when: datetime) -> datetime:
    return (when + timedelta(seconds=59)).replace(second=0, microsecond=0)


def _summarise(
    *,
    meetings: int,
    rate: float,
    join_at: datetime,
    due: datetime,
    created_at: list[datetime],
    lost: int,
    rate_limited: int,
    duplicates: int,
) -> dict[str, Any]:
    """The figures of one run, from the provider's record of when each bot was created."""
    offsets = sorted((t - due).total_seconds() for t in created_at)
    lateness = [(t - join_at).total_seconds() for t in created_at]
    on_time = sum(1 for late in lateness if late < 0)
    last = offsets[-1] if offsets else 0.0
    throughput = len(offsets) / last if last > 0 else 0.0
    return {
        "meetings": meetings,
        "bots_created": len(offsets),
        "on_time": on_time,
        "on_time_share": on_time / meetings if meetings else 0.0,
        "lost": lost,
        "duplicate_bots": duplicates,
        "rate_limited_429": rate_limited,
        "create_attempts": len(offsets) + rate_limited,
        # Positive: created after the join time. Negative: the smallest margin before it.
        "worst_lateness_seconds": max(lateness) if lateness else None,
        "first_create_after_due_seconds": offsets[0] if offsets else None,
        "last_create_after_due_seconds": last if offsets else None,
        "throughput_per_second": throughput,
        "throughput_share_of_limit": throughput / rate if rate else 0.0,
        "created_offsets_seconds": offsets,
    }


# --- meetpilot ------------------------------------------------------------------------------


def _count_schedules(scheduler: Any, group: str) -> int:
    count, kwargs = 0, {"GroupName": group}
    while True:
        page = scheduler.list_schedules(**kwargs)
        count += len(page.get("Schedules", []))
        token = page.get("NextToken")
        if not token:
            return count
        kwargs["NextToken"] = token


def _wait(predicate: Any, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def fire_due_schedules(scheduler: Any, sqs: Any, group: str, now: datetime, *, threads: int) -> int:
    """Deliver every due one-time schedule of ``group``, several at a time.

    EventBridge Scheduler fires all the ``at()`` schedules of one minute together; the local
    runner fires them one by one, which would make its own pace (not the dispatcher's) the limit
    of this benchmark. The same steps, in parallel: read the schedule, send its input to its SQS
    target, delete it (``ActionAfterCompletion: DELETE``).
    """
    from meetpilot_dev.stack.scheduler_runner import at_time

    names: list[str] = []
    kwargs: dict[str, Any] = {"GroupName": group}
    while True:
        page = scheduler.list_schedules(**kwargs)
        names.extend(s["Name"] for s in page.get("Schedules", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    urls: dict[str, str] = {}
    lock = threading.Lock()

    def queue_url(arn: str) -> str:
        with lock:
            if arn not in urls:
                _, _, _, _, account, name = arn.split(":", 5)
                urls[arn] = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            return urls[arn]

    def fire(name: str) -> int:
        schedule = scheduler.get_schedule(Name=name, GroupName=group)
        due = at_time(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone"))
        if due is None or due > now:
            return 0
        target = schedule["Target"]
        sqs.send_message(QueueUrl=queue_url(target["Arn"]), MessageBody=target.get("Input") or "{}")
        if schedule.get("ActionAfterCompletion") == "DELETE":
            scheduler.delete_schedule(Name=name, GroupName=group)
        return 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(fire, names))


def template_dispatch_concurrency() -> int:
    """MaximumConcurrency of the dispatch function's SQS event source in template.yaml."""
    from meetpilot_dev.stack.template import load_template

    events = load_template()["Resources"]["DispatchFunction"]["Properties"]["Events"]
    for event in events.values():
        if event.get("Type") == "SQS":
            return int(event["Properties"]["ScalingConfig"]["MaximumConcurrency"])
    raise RuntimeError("the dispatch function has no SQS event source in template.yaml")


class CallCounter:
    """AWS calls made by one function (its handler and its event source's polling), by operation."""

    def __init__(self, function_name: str) -> None:
        from meetpilot_dev.stack.invoke import running_function

        self._function, self._running = function_name, running_function
        self.calls = Counter[str]()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        if self._running() == self._function:
            with self._lock:
                self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def run_meetpilot(cfg: BurstConfig) -> dict[str, Any]:
    from meetpilot.domain.meeting import DispatchState
    from meetpilot_dev.simulator import Faults
    from meetpilot_dev.stack.embedded import LocalStack, StackOptions

    clock = ShiftableClock()
    pollers = cfg.dispatch_concurrency or template_dispatch_concurrency()
    options = StackOptions(
        lead_time_seconds=cfg.lead_seconds,
        provider_create_rate=cfg.rate_per_second,
        schedule_margin_seconds=60,
        # Schedules are fired once, right after the due moment (below), not by the timer thread.
        scheduler_interval_seconds=3600,
        pollers_per_queue=pollers,
        simulator_overrides={"faults": Faults(create_rate_per_second=cfg.rate_per_second)},
    )
    setup_started = time.monotonic()
    with LocalStack(options, clock=clock) as stack:
        assert stack.container is not None and stack.simulator is not None
        assert stack.scheduler_runner is not None
        c = stack.container
        dispatch_feeder = stack.feeders["DispatchFunction"]
        records = Counter[str]()

        def counting(handler: Any) -> Any:
            def run(event: dict[str, Any], context: Any) -> Any:
                records["records"] += len(event.get("Records", []))
                return handler(event, context)

            return run

        dispatch_feeder.wrap_handler(counting)
        counter = CallCounter("DispatchFunction")
        # Far enough ahead that every meeting is still scheduled (not dispatched at once) when the
        # last submission is processed; the clock jump skips whatever wait is left.
        spread = cfg.meetings / cfg.rate_per_second
        ahead = cfg.lead_seconds + spread + 120 + options.schedule_margin_seconds + cfg.setup_timeout_seconds
        join_at = _top_of_minute(clock.now() + timedelta(seconds=ahead))
        keys = [
            stack.submit_meeting(_meeting_url(i), join_at, title=f"burst {i}", user_id=f"user{i % 97}")
            for i in range(cfg.meetings)
        ]
        scheduler, group = c.client("scheduler"), c.settings.require("schedule_group")
        if not _wait(lambda: _count_schedules(scheduler, group) >= cfg.meetings, cfg.setup_timeout_seconds):
            raise RuntimeError(f"only {_count_schedules(scheduler, group)} of {cfg.meetings} meetings were scheduled")
        setup_seconds = time.monotonic() - setup_started
        slots = [m.dispatch_at for m in (c.repository.get_meeting(k) for k in keys) if m and m.dispatch_at]
        # The first due moment: the earliest slot of the plan (the burst is spread back from start - lead).
        due = min(slots) if slots else join_at - timedelta(seconds=cfg.lead_seconds)
        latest_slot = max(slots) if slots else due
        records.clear()
        invocations_before = dispatch_feeder.invocations
        for service in ("dynamodb", "sqs", "scheduler", "events", "ssm", "s3"):
            counter.attach(c.client(service))

        # Jump to just before the first slot: every schedule set for up to then is due, and fires
        # below; later ones fire as their minute comes.
        clock.jump_to(due - timedelta(seconds=2))
        burst_started = time.monotonic()
        fired: dict[str, float] = {"count": 0}

        def fire() -> None:
            # EventBridge fires each minute's schedules as it comes; keep firing until all have.
            while fired["count"] < cfg.meetings and time.monotonic() - burst_started < cfg.window_seconds:
                fired["count"] += fire_due_schedules(
                    scheduler, c.client("sqs"), group, clock.now(), threads=cfg.firing_threads
                )
                fired["seconds"] = time.monotonic() - burst_started
                time.sleep(0.5)

        firing = threading.Thread(target=fire, name="bench-fire-schedules", daemon=True)
        firing.start()

        def settled() -> bool:
            return len(stack.simulator.bots()) >= cfg.meetings

        _wait(settled, cfg.window_seconds, interval=0.25)
        window = time.monotonic() - burst_started
        firing.join(timeout=60)

        bots = stack.simulator.bots()
        per_meeting = Counter(str((b.get("custom_attributes") or {}).get("meeting_key")) for b in bots)
        states = Counter[str]()
        for key in keys:
            meeting = c.repository.get_meeting(key)
            states[meeting.dispatch_state.value if meeting else "missing"] += 1
        created = [parse_iso(b["created_at"]) for b in bots]
        lost = cfg.meetings - len(per_meeting)
        deadline = join_at - timedelta(seconds=cfg.lead_seconds)
        result = _summarise(
            meetings=cfg.meetings,
            rate=cfg.rate_per_second,
            join_at=join_at,
            due=due,
            created_at=created,
            lost=lost,
            rate_limited=stack.simulator.fault_counts().get("create_rate_limit", 0),
            duplicates=sum(n - 1 for n in per_meeting.values() if n > 1),
        )
        result.update(
            design="meetpilot",
            rate=cfg.rate_per_second,
            dispatch_pollers=pollers,
            lead_seconds=cfg.lead_seconds,
            setup_seconds=round(setup_seconds, 1),
            burst_window_seconds=round(window, 1),
            schedules_fired=fired.get("count"),
            schedules_fired_within_seconds=fired.get("seconds"),
            dispatch_records=records["records"],
            dispatch_invocations=dispatch_feeder.invocations - invocations_before,
            meeting_states=dict(states),
            handler_errors=len(stack.handler_errors),
            dispatch_failed=states.get(DispatchState.FAILED.value, 0),
            latest_slot_before_deadline_seconds=(deadline - latest_slot).total_seconds(),
            created_after_deadline=sum(1 for t in created if t > deadline),
            dispatch_records_per_meeting=records["records"] / cfg.meetings if cfg.meetings else 0.0,
            calls_per_meeting={k: n / cfg.meetings for k, n in sorted(counter.calls.items())},
        )
        return result


# --- the original design ----------------------------------------------------------------------


def run_original(cfg: BurstConfig) -> dict[str, Any]:
    """Each create fired once, ``original_lead_seconds`` before the start; a 429 loses the bot."""
    from meetpilot.adapters.meetstream import MeetStreamProvider
    from meetpilot.app.ports import BotRequest
    from meetpilot.errors import ProviderError
    from meetpilot_dev.simulator import Faults, Simulator, SimulatorConfig

    api_key = "ms_bench_" + uuid.uuid4().hex[:12]
    clock = ShiftableClock()
    config = SimulatorConfig(api_keys=(api_key,), faults=Faults(create_rate_per_second=cfg.rate_per_second))
    with Simulator(config, clock=clock) as sim:
        base_url = sim.start()
        provider = MeetStreamProvider(lambda: api_key, base_url=base_url, timeout=30.0)
        # Nothing listens here: the original design's webhook endpoint is not part of this figure.
        callback = "http://127.0.0.1:9/webhooks"
        join_at = _top_of_minute(clock.now() + timedelta(seconds=cfg.original_lead_seconds + 5))
        due = join_at - timedelta(seconds=cfg.original_lead_seconds)
        clock.jump_to(due)
        outcomes = Counter[str]()
        lock = threading.Lock()

        def create(i: int) -> None:
            url = _meeting_url(i)
            request = BotRequest(
                meeting_url=url,
                bot_name="original design",
                callback_url=callback,
                deduplication_key=f"original-{i}",
                join_at=join_at,
                custom_attributes={"meeting_key": url},
                transcript_provider="deepgram",
            )
            try:
                provider.create_bot(request, idempotency_key=str(uuid.uuid4()))
                kind = "created"
            except ProviderError as exc:  # no retry: whatever went wrong, this bot is lost
                kind = f"lost (HTTP {exc.status})"
            with lock:
                outcomes[kind] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=cfg.original_concurrency) as pool:
            list(pool.map(create, range(cfg.meetings)))
        window = time.monotonic() - started
        provider.close()
        bots = sim.bots()
        result = _summarise(
            meetings=cfg.meetings,
            rate=cfg.rate_per_second,
            join_at=join_at,
            due=due,
            created_at=[parse_iso(b["created_at"]) for b in bots],
            lost=cfg.meetings - len(bots),
            rate_limited=sim.fault_counts().get("create_rate_limit", 0),
            duplicates=0,
        )
        result.update(
            design="original",
            lead_seconds=cfg.original_lead_seconds,
            burst_window_seconds=round(window, 1),
            outcomes=dict(outcomes),
        )
        return result


def measure_dispatch(cfg: BurstConfig) -> dict[str, Any]:
    """Creates a second the whole local stack sustains on this machine, when nothing else limits it.

    A calibration burst through the same path as the measured ones (schedules fired, dispatch
    pollers, the plan's hold and gate, the dispatch function's every call, the simulator's create),
    planned at a rate no burst reaches and against a provider that admits every create: how fast
    the embedded emulator (one moto process on these cores) lets the dispatch side go. The dispatch
    function's AWS calls are counted on the way.
    """
    probe = replace(
        cfg,
        meetings=cfg.calibration_meetings,
        rate_per_second=UNLIMITED_RATE,
        window_seconds=max(60.0, cfg.calibration_meetings),
    )
    result = run_meetpilot(probe)
    last = result["last_create_after_due_seconds"] or 0.0
    first = result["first_create_after_due_seconds"] or 0.0
    span = max(last - first, 1e-3)
    return {
        "meetings": probe.meetings,
        "pollers": result["dispatch_pollers"],
        "creates_per_second": (result["bots_created"] - 1) / span if result["bots_created"] > 1 else 0.0,
        "seconds": result["burst_window_seconds"],
        "calls_per_meeting": result["calls_per_meeting"],
        "lost": result["lost"],
    }


def sustainable(cfg: BurstConfig, measured: dict[str, Any] | None) -> tuple[BurstConfig, str | None]:
    """The burst at the provider's rate, or at one the stack sustains here with room to spare."""
    if measured is None or measured["creates_per_second"] >= SPARE * cfg.rate_per_second:
        return cfg, None
    rate = max(1.0, float(math.floor(measured["creates_per_second"] / SPARE)))
    meetings = min(cfg.meetings, int(rate * 60))
    note = (
        f"the local stack sustains {measured['creates_per_second']:.1f} creates/s here (one emulator process "
        f"answers every AWS call), below {SPARE:g}x the provider's {cfg.rate_per_second:g}/s: the burst runs at "
        f"{rate:g} creates/s with {meetings} meetings (a minute's worth) instead"
    )
    return replace(cfg, rate_per_second=rate, meetings=meetings), note


def run(cfg: BurstConfig | None = None) -> dict[str, Any]:
    cfg = cfg or BurstConfig()
    started = time.monotonic()
    emulator = measure_dispatch(cfg) if cfg.measure_emulator else None
    if emulator is not None:
        print(
            f"punctuality: the local stack sustains {emulator['creates_per_second']:.1f} creates/s "
            f"({emulator['meetings']} meetings, planned at {UNLIMITED_RATE:g}/s, no provider limit)"
        )
    cfg, note = sustainable(cfg, emulator)
    if note:
        print(f"punctuality: {note}")
    ours = run_meetpilot(cfg)
    # A short lead keeps this run short (N grows with it); never more meetings than the first burst.
    lead = max(2, min(cfg.overfill_lead_seconds, int(cfg.meetings / (cfg.overfill * cfg.rate_per_second))))
    overfill_meetings = max(2, math.ceil(cfg.overfill * cfg.rate_per_second * lead))
    overfill_cfg = replace(cfg, meetings=overfill_meetings, lead_seconds=lead)
    overfill = run_meetpilot(overfill_cfg)
    original = run_original(cfg)
    bucket = max(1.0, cfg.rate_per_second)  # the simulator's burst: one second's worth of tokens
    return {
        "config": asdict(cfg),
        "physical_limit_seconds": cfg.meetings / cfg.rate_per_second,
        # With a full bucket at the start, the last of N creates can come (N - bucket) / rate later.
        "physical_minimum_seconds": max(0.0, (cfg.meetings - bucket) / cfg.rate_per_second),
        "meetpilot": ours,
        "original": original,
        "emulator": emulator,
        "rate_note": note,
        "overfill": overfill,
        "seconds": round(time.monotonic() - started, 1),
    }


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the report."""
    ours = result["meetpilot"]
    return [*_burst_targets(ours), *_overfill_targets(result.get("overfill"))]


def _burst_targets(ours: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [
        (
            f"100% of bots created before their join time (lead {ours['lead_seconds']} s)",
            f"{ours['on_time_share']:.1%}",
            ours["on_time"] == ours["meetings"],
        ),
        (
            "dispatch throughput >= 90% of the provider's limit",
            f"{ours['throughput_share_of_limit']:.1%}",
            ours["throughput_share_of_limit"] >= 0.9,
        ),
        ("0 bots lost", str(ours["lost"]), ours["lost"] == 0),
    ]


def _overfill_targets(over: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    if not over:
        return []
    return [
        (
            f"burst over the lead ({over['meetings']} at {over.get('rate', '?')}/s, lead {over['lead_seconds']} s): "
            "100% before join time",
            f"{over['on_time_share']:.1%}",
            over["on_time"] == over["meetings"],
        ),
        (
            "... none created later than start - lead",
            str(over["created_after_deadline"]),
            over["created_after_deadline"] == 0,
        ),
        ("... the provider's rate never exceeded (429s)", str(over["rate_limited_429"]), over["rate_limited_429"] == 0),
    ]
