"""``meetpilot chaos``: many meetings through the local stack while everything misbehaves.

The simulator duplicates, reorders and drops webhooks, answers 429 and 5xx, times out, delays
transcripts and refuses bots; our own side crashes handlers mid-batch and has DynamoDB writes
throttled. At the end every invariant is checked from DynamoDB, S3 and the simulator's records:
one bot per meeting, no meeting lost, the right final state, every transcript stored exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.app.ports import TranscriptStore
from meetpilot.app.reconcile import ReconcileConfig, reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import meeting_key
from meetpilot.domain.status import Outcome
from meetpilot_dev.simulator import Faults, Scenario
from meetpilot_dev.stack.embedded import LocalStack, StackOptions
from meetpilot_dev.stack.invoke import acting_as

EXPECTED = {
    Scenario.NORMAL: Outcome.TRANSCRIPT_STORED,
    Scenario.NOT_ADMITTED: Outcome.NOT_ADMITTED,
    Scenario.DENIED: Outcome.DENIED,
}


@dataclass(frozen=True)
class ChaosRates:
    duplicate_webhook: float = 0.10
    reorder_webhook: float = 0.10
    drop_webhook: float = 0.05
    rate_limit: float = 0.10
    server_error: float = 0.05
    timeout: float = 0.02
    slow_transcript_seconds: float = 120.0  # simulated
    not_admitted: float = 0.05
    denied: float = 0.05
    handler_crash: float = 0.03  # per invocation of an SQS handler, after part of the batch
    ddb_throttle: float = 0.02  # per repository write


class InjectedCrash(RuntimeError):
    """A handler dying mid-batch (out of memory, timeout): the whole batch is retried."""


class FaultCounter:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def draw(self, rate: float, kind: str) -> bool:
        with self._lock:
            hit = self._rng.random() < rate
            if hit:
                self.counts[kind] += 1
            return hit

    def choice(self, n: int) -> int:
        with self._lock:
            return self._rng.randrange(n)


_WRITES = ("add_meeting", "claim_meeting", "release_claim", "finish_dispatch", "create_session", "save_session",
           "set_dispatch_schedule")  # fmt: skip


class ThrottlingRepository:
    """Our repository, with a share of its writes failing as DynamoDB throttling does."""

    def __init__(self, inner: Any, faults: FaultCounter, rate: float) -> None:
        self._inner = inner
        self._faults = faults
        self._rate = rate

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name not in _WRITES:
            return target

        def throttled(*args: Any, **kwargs: Any) -> Any:
            if self._faults.draw(self._rate, "ddb_throttle"):
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}},
                    name,
                )
            return target(*args, **kwargs)

        return throttled


def crashing(handler: Any, faults: FaultCounter, rate: float) -> Any:
    """Wrap an SQS handler: sometimes it processes only part of the batch, then dies."""

    def run(event: dict[str, Any], context: Any) -> Any:
        records = event.get("Records", [])
        if records and faults.draw(rate, "handler_crash"):
            done = faults.choice(len(records) + 1)
            if done:
                handler({"Records": records[:done]}, context)
            raise InjectedCrash(f"injected crash after {done} of {len(records)} records")
        return handler(event, context)

    return run


class CountingStore:
    """Counts uploads per key, to prove every transcript object was written exactly once."""

    def __init__(self, inner: TranscriptStore) -> None:
        self._inner = inner
        self.bucket = inner.bucket
        self.puts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def put_file(
        self, key: str, path: str, *, content_type: str, content_encoding: str | None = None, **tagged: Any
    ) -> None:
        self._inner.put_file(key, path, content_type=content_type, content_encoding=content_encoding, **tagged)
        with self._lock:
            self.puts[key] += 1

    def delete_prefix(self, prefix: str) -> int:
        return self._inner.delete_prefix(prefix)

    def __getattr__(self, name: str) -> Any:
        # The rest of the store's interface (reads, links, deletes) passes through uncounted.
        return getattr(self._inner, name)


@dataclass
class ChaosReport:
    meetings: int
    to_record: int
    bots_created: int
    duplicate_bots: int
    transcripts_stored: int
    transcripts_rewritten: int
    wrong_final_state: list[str]
    flagged: Counter[str]
    lost: list[str]
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    transcript_sets_ok: bool = True  # every stored session has exactly one raw/json/txt/vtt in S3

    @property
    def ok(self) -> bool:
        return (
            self.bots_created == self.to_record
            and self.duplicate_bots == 0
            and not self.wrong_final_state
            and not self.lost
            and self.transcript_sets_ok
        )

    def rows(self) -> list[tuple[str, str, str]]:
        def mark(good: bool) -> str:
            return "ok" if good else "FAIL"

        rows = [
            ("meetings", str(self.meetings), ""),
            ("bots created (= meetings to record)", f"{self.bots_created} / {self.to_record}",
             mark(self.bots_created == self.to_record)),
            ("duplicate bots", str(self.duplicate_bots), mark(self.duplicate_bots == 0)),
            ("transcripts stored (each exactly once)", str(self.transcripts_stored), mark(self.transcript_sets_ok)),
            ("transcript objects uploaded again after a retry", str(self.transcripts_rewritten), ""),
            ("sessions in a wrong final state", str(len(self.wrong_final_state)), mark(not self.wrong_final_state)),
            ("lost meetings", str(len(self.lost)), mark(not self.lost)),
        ]  # fmt: skip
        for reason, n in sorted(self.flagged.items()):
            rows.append((f"flagged: {reason}", str(n), ""))
        for kind, n in sorted(self.faults.items()):
            rows.append((f"fault injected: {kind}", str(n), ""))
        return rows


def run_chaos(
    meetings: int = 300,
    *,
    rates: ChaosRates | None = None,
    seed: int = 7,
    timeout: float = 600.0,
    speed: float = 1200.0,
    progress: Any = None,
) -> ChaosReport:
    rates = rates or ChaosRates()
    started = time.monotonic()
    ours = FaultCounter(seed)
    options = StackOptions(
        speed=speed,
        lead_time_seconds=10,
        schedule_margin_seconds=0,
        scheduler_interval_seconds=0.25,
        queue_visibility_seconds=3,  # failed records come back in seconds, not minutes
        time_scale=0.05,  # retry delays and leases: a 90 s lease lasts 4.5 s
        simulator_overrides={"meeting_seconds": 600.0, "joining_attempts": 2},
    )
    with LocalStack(options) as stack:
        assert stack.container is not None and stack.simulator is not None
        stack.container.repository = ThrottlingRepository(stack.container.repository, ours, rates.ddb_throttle)
        store = CountingStore(stack.container.transcript_store)
        stack.container.transcript_store = store
        for feeder in stack.feeders.values():
            feeder.wrap_handler(lambda h: crashing(h, ours, rates.handler_crash))
        stack.simulator.set_faults(
            Faults(
                rate_limit=rates.rate_limit,
                server_error=rates.server_error,
                timeout=rates.timeout,
                timeout_seconds=8.0,
                duplicate_webhook=rates.duplicate_webhook,
                reorder_webhook=rates.reorder_webhook,
                drop_webhook=rates.drop_webhook,
                slow_transcript_seconds=rates.slow_transcript_seconds,
                seed=seed,
            )
        )
        rng = random.Random(seed)
        now = stack.clock.now()
        plan: list[tuple[str, Scenario]] = []
        for i in range(meetings):
            roll = rng.random()
            scenario = Scenario.NORMAL
            if roll < rates.not_admitted:
                scenario = Scenario.NOT_ADMITTED
            elif roll < rates.not_admitted + rates.denied:
                scenario = Scenario.DENIED
            url = f"https://zoom.us/j/{9_000_000_000 + i}?pwd=chaos{i}"
            start = now + timedelta(seconds=12 + (i % 60) * 0.5)
            stack.simulator.set_scenario(url, scenario)
            stack.submit_meeting(url, start, title=f"chaos {i}", user_id=f"user{i % 17}")
            plan.append((meeting_key(url, start), scenario))

        deadline = time.monotonic() + timeout
        reconcile_clock = FixedClock(stack.clock.now())
        container = stack.container

        def reconcile_round() -> None:
            with acting_as("ReconcileFunction"):  # what its schedule would run, with its role
                reconcile(
                    repo=container.repository,
                    provider=container.provider,
                    dispatch_queue=container.dispatch_queue,
                    transcript_queue=container.transcript_queue,
                    clock=reconcile_clock,
                    config=ReconcileConfig(max_attempts=8),
                )

        mark: object = None
        moved_at = time.monotonic()
        while time.monotonic() < deadline:
            sessions = [stack.session_for(k) for k, _ in plan]
            pending = [s for s in sessions if s is None or s.outcome is None]
            if progress:
                progress(len(plan) - len(pending), len(plan))
            if not pending and stack.quiet():
                break  # every meeting final and nothing in flight that could still change one
            look = tuple((s.status, s.outcome, s.transcript_tries) if s else None for s in sessions)
            if look != mark:
                mark, moved_at = look, time.monotonic()
            time.sleep(2.0)
            # Meetings last seconds here; once the sessions stop moving (briefly with nothing queued,
            # or for 15 s while transcript retries keep the queues busy) let the reconciler's 40
            # minutes pass. Rounds follow the run's progress, not the wall clock, so a slow machine
            # does not spend the reconciler's checks on sessions that are still getting on.
            idle = time.monotonic() - moved_at
            if (idle > 4 and stack.quiet()) or idle > 15:
                moved_at = time.monotonic()
                reconcile_clock.set(max(reconcile_clock.now(), stack.clock.now()) + timedelta(minutes=40))
                reconcile_round()
        # One last round over the settled run, as the schedule would run it: the reconciler must
        # leave every final session as it is (and its calls are part of what the IAM replay sees).
        reconcile_round()
        report = _evaluate(stack, plan, store)
        report.faults = {**{k: v for k, v in stack.simulator.fault_counts().items() if v}, **ours.counts}
    report.seconds = time.monotonic() - started
    return report


def _evaluate(stack: LocalStack, plan: list[tuple[str, Scenario]], store: CountingStore) -> ChaosReport:
    assert stack.container is not None and stack.simulator is not None
    bots = stack.simulator.bots()
    per_meeting = Counter(str((b.get("custom_attributes") or {}).get("meeting_key")) for b in bots)
    wrong: list[str] = []
    lost: list[str] = []
    flagged: Counter[str] = Counter()
    stored = 0
    for key, scenario in plan:
        session = stack.session_for(key)
        if session is None or session.outcome is None:
            meeting = stack.container.repository.get_meeting(key)
            where = f"meeting {meeting.dispatch_state.value}" if meeting else "no meeting"
            if session is not None:
                where += (f", session {session.status.value}, transcript {session.transcript_state.value}, "
                          f"{session.reconcile_attempts} reconciler checks")  # fmt: skip
            lost.append(f"{key}: {where}")
            continue
        if session.outcome is not EXPECTED[scenario]:
            wrong.append(f"{key}: expected {EXPECTED[scenario].value}, got {session.outcome.value} "
                         f"({session.outcome_reason})")  # fmt: skip
        if session.outcome is Outcome.TRANSCRIPT_STORED:
            stored += 1
        else:
            flagged[f"{session.outcome.value}: {(session.outcome_reason or '')[:60]}"] += 1
    rewritten = sum(1 for n in store.puts.values() if n > 1)
    # In S3: exactly one set of four objects per stored session, and nothing else.
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    per_bot: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="transcripts/"):
        for obj in page.get("Contents", []):
            per_bot[obj["Key"].rsplit("/", 2)[-2]] += 1
    sets_ok = len(per_bot) == stored + sum(
        1 for k, _ in plan if (s := stack.session_for(k)) is not None and s.outcome is Outcome.EMPTY
    ) and all(n == 4 for n in per_bot.values())
    return ChaosReport(
        meetings=len(plan),
        to_record=len({k for k, _ in plan}),
        bots_created=len(bots),
        duplicate_bots=sum(n - 1 for n in per_meeting.values() if n > 1),
        transcripts_stored=stored,
        transcripts_rewritten=rewritten,
        wrong_final_state=wrong,
        flagged=flagged,
        lost=lost,
        transcript_sets_ok=sets_ok,
    )
