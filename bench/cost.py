"""Benchmark 4: AWS cost per 1,000 meetings.

A full local run (meetings submitted, scheduled, dispatched, every webhook taken in and applied,
every transcript fetched and stored) with every AWS request counted through botocore's
``before-call`` / ``after-call`` hooks on the stack's clients, and every handler invocation timed.
Who made each request decides whether it is billed:

* a handler (Lambda): billed; the thread carries the function's name while it runs;
* the SQS pollers outside a handler play Lambda's event source mapping: its ReceiveMessage and
  DeleteMessageBatch calls are billed to the account too (empty receives are idle polling, a fixed
  monthly cost, not a per-meeting one);
* the scheduler runner plays EventBridge Scheduler: each delivery is one scheduler invocation
  plus the SendMessage it makes; its List/Get/DeleteSchedule calls are the emulation's own;
* the submissions (one SendMessage per meeting) stand for whatever brings a meeting in.

DynamoDB request units are computed from item sizes: an unmetered client reads the item before
and after each write (the emulator reports no real consumed capacity), and index writes follow the
template's GSIs. Prices come from ``bench/prices.json``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent / "prices.json"
S3_PUT_CLASS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject",
                "ListObjects", "ListObjectsV2", "ListObjectVersions", "PostObject"}  # fmt: skip
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
EMULATION_ONLY = {("scheduler", "ListSchedules"), ("scheduler", "GetSchedule"), ("scheduler", "DeleteSchedule"),
                  ("sqs", "GetQueueUrl")}  # fmt: skip


@dataclass(frozen=True)
class CostConfig:
    meetings: int = 40
    timeout_seconds: float = 240.0
    # Slow enough that webhooks are further apart than a handler takes to apply one (as at the
    # real provider, where they come seconds apart): compressed further, concurrent deliveries for
    # one session race and duplicate work that production would not see.
    speed: float = 30.0
    meeting_seconds: float = 300.0  # simulated


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


# --- DynamoDB item sizes ------------------------------------------------------------------------


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed attribute value (its documented size rules)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


class DynamoMeter:
    """Request units of each DynamoDB call, from the items themselves."""

    def __init__(self, side_client: Any, indexes: list[Index]) -> None:
        self._side = side_client
        self._indexes = indexes
        self._local = threading.local()
        self.rru = 0.0
        self.wru = 0.0
        self.index_wru = 0.0
        self.writes_by_index: Counter[str] = Counter()
        # What the same writes would cost if every index projected ALL attributes (the template's
        # choice before the projections were narrowed): the figure the projections save.
        self.all_projection_index_wru = 0.0
        self.largest_item = 0
        self._lock = threading.Lock()

    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._side.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def before(self, operation: str, params: dict[str, Any]) -> None:
        if operation not in DDB_WRITES:
            return
        key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk") if k in params.get("Item", {})}
        self._local.write = (params["TableName"], key, self._image(params["TableName"], key))

    def after(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        failed = "Error" in parsed
        if operation in DDB_WRITES:
            table, key, before = self._local.write
            after = before if failed else self._image(table, key)
            table_units = units(max(item_size(before), item_size(after)), 1024)
            index_units = 0 if failed else self._index_writes(before, after)
            with self._lock:
                self.largest_item = max(self.largest_item, item_size(before), item_size(after))
                self.wru += table_units
                self.index_wru += index_units
            return
        strong = bool(params.get("ConsistentRead")) and "IndexName" not in params
        factor = 1.0 if strong else 0.5
        if operation == "GetItem":
            size = item_size(parsed.get("Item"))
        elif operation in ("Query", "Scan"):
            size = sum(item_size(i) for i in parsed.get("Items", []))
        else:
            return
        with self._lock:
            self.rru += units(size, 4096) * factor

    def _index_writes(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        total = 0
        for index in self._indexes:
            units_here = index.writes(before, after)
            everything = Index(index.name, index.keys, "ALL", ()).writes(before, after)
            total += units_here
            with self._lock:
                self.writes_by_index[index.name] += units_here
                self.all_projection_index_wru += everything
        return total


@dataclass(frozen=True)
class Index:
    """A global secondary index as the template declares it, and what a table write costs it.

    DynamoDB writes an index entry when an item enters or leaves the index, twice when its index
    key changes (delete and put), and once when an attribute the index projects changes; the units
    follow the size of the projected entry (keys plus projected attributes), not the whole item.
    """

    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...]

    @classmethod
    def of(cls, definition: dict[str, Any]) -> Index:
        projection = definition.get("Projection", {})
        return cls(
            definition["IndexName"],
            tuple(k["AttributeName"] for k in definition["KeySchema"]),
            projection.get("ProjectionType", "ALL"),
            tuple(projection.get("NonKeyAttributes", ())),
        )

    def entry(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None or not all(k in item for k in self.keys):
            return None
        if self.projection == "ALL":
            return item
        names = {*self.keys, "pk", "sk", *(self.included if self.projection == "INCLUDE" else ())}
        return {k: v for k, v in item.items() if k in names}

    def writes(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        was, now = self.entry(before), self.entry(after)
        if was is not None and now is not None:
            if any(was[k] != now[k] for k in self.keys):
                return units(item_size(was), 1024) + units(item_size(now), 1024)
            return units(item_size(now), 1024) if was != now else 0
        if now is not None:
            return units(item_size(now), 1024)
        if was is not None:
            return units(item_size(was), 1024)
        return 0


# --- the meter ----------------------------------------------------------------------------------


class Meter:
    """Counts requests by (role, service, operation); roles come from the thread doing the call."""

    def __init__(self, dynamo: DynamoMeter) -> None:
        self.dynamo = dynamo
        self.on = False
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.sqs_chunks: Counter[str] = Counter()  # role -> billed SQS requests (64 KB chunks)
        self.event_chunks: Counter[str] = Counter()  # role -> billed EventBridge events (64 KB chunks)
        # Per function: wall time the meter itself took inside invocations (left out of the
        # durations), time the handler's thread waited for the emulator's answers, and its CPU time.
        self.overhead: Counter[str] = Counter()
        self.aws_wait: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()
        self.received_messages = 0
        self.empty_receives = 0
        self.invocations: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.log_bytes = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def role(self) -> str:
        explicit = getattr(self._local, "role", None)
        if explicit:
            return str(explicit)
        name = threading.current_thread().name
        if name.startswith("poller-"):
            return "event source mapping"
        if name.startswith("scheduler"):
            return "scheduler"
        return "other"  # e.g. the upload threads of an S3 transfer, inside a handler's work

    def set_role(self, role: str | None) -> None:
        self._local.role = role

    def hook(self, client: Any) -> Any:
        if getattr(client, "_bench_metered", False):
            return client
        client._bench_metered = True
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)
        return client

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if not self.on:
            return
        begun = time.perf_counter()
        self._local.params = params
        if model.service_model.service_name == "dynamodb":
            self.dynamo.before(model.name, params)
        now = time.perf_counter()
        self._local.overhead = getattr(self._local, "overhead", 0.0) + now - begun
        self._local.call_started = now

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self.on:
            return
        begun = time.perf_counter()
        started = getattr(self._local, "call_started", None)
        if started is not None:
            self._local.aws_wait = getattr(self._local, "aws_wait", 0.0) + begun - started
            self._local.call_started = None
        service, operation = model.service_model.service_name, model.name
        role = self.role()
        request = getattr(self._local, "params", None) or {}
        with self._lock:
            self.calls[(role, service, operation)] += 1
        if service == "dynamodb":
            self.dynamo.after(operation, request, parsed)
        elif service == "sqs":
            self._sqs(role, operation, request, parsed)
        elif service == "events" and operation == "PutEvents":
            # EventBridge bills each 64 KB chunk of each entry as one event.
            chunks = sum(units(len(json.dumps(e, default=str).encode()), 65536) for e in request.get("Entries", []))
            with self._lock:
                self.event_chunks[role] += chunks
        # The meter's own work (the item images it reads around every write) is not the handler's.
        self._local.overhead = getattr(self._local, "overhead", 0.0) + time.perf_counter() - begun

    def _sqs(self, role: str, operation: str, request: dict[str, Any], parsed: dict[str, Any]) -> None:
        size = 0
        if operation == "SendMessage":
            size = len(str(request.get("MessageBody", "")).encode())
        elif operation == "ReceiveMessage":
            messages = parsed.get("Messages", [])
            size = sum(len(m.get("Body", "").encode()) for m in messages)
            with self._lock:
                self.received_messages += len(messages)
                if not messages:
                    self.empty_receives += 1
                    return  # idle polling: priced separately, not per meeting
        with self._lock:
            self.sqs_chunks[role] += units(size, 65536)

    def metered(self, handler: Any) -> Any:
        """Wrap a handler: its calls carry its function's name, and each invocation is timed."""

        def run(event: dict[str, Any], context: Any) -> Any:
            name = getattr(context, "function_name", "unknown")
            previous = getattr(self._local, "role", None)
            self._local.role = name
            self._local.overhead = self._local.aws_wait = 0.0
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                return handler(event, context)
            finally:
                overhead = self._local.overhead
                elapsed = time.perf_counter() - started - overhead
                cpu = time.thread_time() - cpu_started  # includes the meter's own, small, CPU
                self._local.role = previous
                if self.on:
                    with self._lock:
                        self.invocations[name] += 1
                        self.records[name] += len(event.get("Records", [])) if isinstance(event, dict) else 0
                        self.durations[name].append(elapsed)
                        self.overhead[name] += overhead
                        self.aws_wait[name] += self._local.aws_wait
                        self.cpu[name] += cpu

        return run


class CountingStream:
    """Stands in for the log handler's stdout: counts the bytes Lambda would ship to CloudWatch."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def write(self, text: str) -> int:
        if self._meter.on:
            self._meter.log_bytes += len(text.encode())
        return len(text)

    def flush(self) -> None:
        return


# --- pricing ------------------------------------------------------------------------------------


def stream_functions() -> list[str]:
    """Functions the template triggers from a DynamoDB stream (a publisher of the table's changes):
    Lambda bills one invocation per stream batch, and reading the stream itself is free."""
    from meetpilot_dev.stack.template import load_template

    found = []
    for name, resource in (load_template().get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        events = (resource.get("Properties") or {}).get("Events") or {}
        if any(isinstance(e, dict) and e.get("Type") == "DynamoDB" for e in events.values()):
            found.append(name)
    return sorted(found)


def memory_sizes() -> dict[str, int]:
    from meetpilot_dev.stack.template import load_template

    template = load_template()
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    sizes = {}
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            sizes[name] = int((resource.get("Properties") or {}).get("MemorySize", default))
    return sizes


def price_lines(usage: dict[str, float], prices: dict[str, Any]) -> dict[str, float]:
    """Dollars per service for the given usage (all figures for the same number of meetings)."""
    lam, ddb, sqs, s3 = prices["lambda"], prices["dynamodb"], prices["sqs"], prices["s3"]
    return {
        "Lambda requests": usage["lambda_invocations"] * lam["per_million_requests"] / 1e6,
        "Lambda duration (GB-s)": usage["lambda_gb_seconds"] * lam["per_gb_second"],
        "DynamoDB writes (WRU)": usage["wru"] * ddb["per_million_write_request_units"] / 1e6,
        "DynamoDB reads (RRU)": usage["rru"] * ddb["per_million_read_request_units"] / 1e6,
        "SQS requests": usage["sqs_requests"] * sqs["per_million_requests"] / 1e6,
        "S3 PUT-class": usage["s3_put"] * s3["per_thousand_put_class"] / 1e3,
        "S3 GET-class": usage["s3_get"] * s3["per_thousand_get_class"] / 1e3,
        "Scheduler invocations": usage["scheduler_invocations"] * prices["scheduler"]["per_million_invocations"] / 1e6,
        "API Gateway HTTP API": usage["api_requests"] * prices["api_gateway_http"]["per_million_requests"] / 1e6,
        "SSM GetParameter": usage["ssm_gets"] * prices["ssm"]["per_10k_get_parameter_standard"] / 1e4,
        "KMS (SecureString decrypts)": usage["kms_decrypts"] * prices["kms"]["per_10k_requests"] / 1e4,
        "CloudWatch Logs ingestion": usage["log_bytes"] / 2**30 * prices["cloudwatch_logs"]["per_gb_ingested"],
        "EventBridge events": usage.get("events", 0.0) * prices["eventbridge"]["per_million_events"] / 1e6,
    }


USAGE_KEYS = ("lambda_invocations", "lambda_gb_seconds", "wru", "rru", "sqs_requests", "s3_put", "s3_get",
              "scheduler_invocations", "api_requests", "ssm_gets", "kms_decrypts", "log_bytes", "events")  # fmt: skip


def meetpilot_usage(meter: Meter, memory: dict[str, int]) -> dict[str, float]:
    """Billed usage of the whole run, from what the meter saw."""
    usage: dict[str, float] = dict.fromkeys(USAGE_KEYS, 0.0)
    for (role, service, operation), n in meter.calls.items():
        if (service, operation) in EMULATION_ONLY or role == "bench":
            continue
        if service == "s3" and operation not in S3_FREE:
            usage["s3_put" if operation in S3_PUT_CLASS else "s3_get"] += n
        elif service == "ssm" and operation == "GetParameter":
            usage["ssm_gets"] += n
            usage["kms_decrypts"] += n
        elif service == "sqs" and role == "scheduler" and operation == "SendMessage":
            usage["scheduler_invocations"] += n
    usage["sqs_requests"] = sum(n for role, n in meter.sqs_chunks.items() if role != "bench")
    usage["events"] = sum(n for role, n in meter.event_chunks.items() if role != "bench")
    usage["wru"] = meter.dynamo.wru + meter.dynamo.index_wru
    usage["rru"] = meter.dynamo.rru
    for name, durations in meter.durations.items():
        usage["lambda_invocations"] += len(durations)
        gb = memory.get(name, 512) / 1024
        usage["lambda_gb_seconds"] += sum(math.ceil(d * 1000) / 1000 * gb for d in durations)
    usage["log_bytes"] = meter.log_bytes
    return dict(usage)


def original_usage(per_meeting: dict[str, float], meter: Meter, memory: dict[str, int]) -> dict[str, float]:
    """The original design's request pattern for one meeting, priced with our measured durations.

    Per meeting: one create invocation fired by a schedule 2 minutes ahead; every webhook through
    API Gateway into a Lambda that reads the secret from SSM without a cache... as the brief of
    the original design says: 1 SSM read per meeting, 1 PutItem, 3 UpdateItem per webhook status,
    1 Lambda invocation for the transcript. Durations are ours for the same jobs (webhook = ingest
    + applying the event), 1 WRU per write (items under 1 KB, no index): a lower bound.
    """

    def mean(name: str, per_record: bool = True) -> float:
        durations = meter.durations.get(name, [])
        if not durations:
            return 0.0
        count = meter.records[name] if per_record and meter.records[name] else len(durations)
        return sum(durations) / count

    webhooks = per_meeting["webhooks"]
    webhook_s = mean("IngestFunction", per_record=False) + mean("BotEventsFunction")
    invocations = webhooks + 2
    gb_seconds = (
        webhooks * webhook_s * memory.get("IngestFunction", 512) / 1024
        + mean("DispatchFunction") * memory.get("DispatchFunction", 512) / 1024
        + mean("TranscriptFetchFunction") * memory.get("TranscriptFetchFunction", 512) / 1024
    )
    log_per_invocation = meter.log_bytes / max(1, sum(meter.invocations.values()))
    return {
        "lambda_invocations": invocations,
        "lambda_gb_seconds": gb_seconds,
        "wru": 1 + 3 * webhooks,
        "rru": 0.0,
        "sqs_requests": 0.0,
        "s3_put": 1.0,
        "s3_get": 0.0,
        "scheduler_invocations": 1.0,
        "api_requests": webhooks,
        "ssm_gets": 1.0,
        "kms_decrypts": 1.0,
        "log_bytes": log_per_invocation * invocations,
    }


# --- the run ------------------------------------------------------------------------------------


def run(cfg: CostConfig | None = None) -> dict[str, Any]:
    import meetpilot_dev.stack.gateway as gateway_module
    from meetpilot.handlers.observability import logger
    from meetpilot_dev.demo import ProgressWatch
    from meetpilot_dev.stack.embedded import LocalStack, StackOptions
    from meetpilot_dev.stack.invoke import LambdaContext, load_handler
    from meetpilot_dev.stack.template import load_template, table_definition

    cfg = cfg or CostConfig()
    prices = load_prices()
    memory = memory_sizes()
    started = time.monotonic()
    options = StackOptions(
        speed=cfg.speed,
        lead_time_seconds=10,  # through a real schedule, 10 s before the start
        schedule_margin_seconds=0,
        scheduler_interval_seconds=0.25,
        simulator_overrides={"meeting_seconds": cfg.meeting_seconds},
    )
    original_loader = gateway_module.load_handler
    stack = LocalStack(options)
    try:
        stack.start()
        assert stack.container is not None and stack.simulator is not None and stack.gateway is not None
        c = stack.container
        definition = table_definition(load_template())
        indexes = [Index.of(g) for g in definition.get("GlobalSecondaryIndexes", [])]
        side = stack.boto_session.client("dynamodb", endpoint_url=stack.aws_endpoint)
        idle_call_ms = calibrate(side, c.settings.table_name)
        meter = Meter(DynamoMeter(side, indexes))
        for client in list(c._clients.values()):  # the clients made while the stack started
            meter.hook(client)
        make_client = c.client
        c.client = lambda service: meter.hook(make_client(service))  # type: ignore[method-assign]
        for feeder in stack.feeders.values():
            feeder.wrap_handler(meter.metered)
        # The stream publisher is billed per invocation (one per batch); Lambda's stream reads are free.
        for stream_feeder in stack.stream_feeders.values():
            stream_feeder.wrap_handler(meter.metered)
        gateway_module.load_handler = lambda dotted: meter.metered(original_loader(dotted))  # type: ignore[assignment]
        handler = logger.registered_handler
        saved_stream, saved_level = handler.stream, logger.log_level
        handler.stream = CountingStream(meter)  # type: ignore[assignment]
        logger.setLevel("INFO")  # the template's ApplicationLogLevel
        requests_before = stack.gateway.requests

        load_started = _machine_busy()
        meter.on = True
        now = c.clock.now()
        keys = []
        meter.set_role("submit")
        for i in range(cfg.meetings):
            url = f"https://meet.google.com/cst-{i:04d}-run"
            start = now + timedelta(seconds=20 + i * 0.5)
            keys.append(stack.submit_meeting(url, start, title=f"cost {i}", user_id=f"user{i % 7}"))
        meter.set_role(None)
        # Waits while anything moves (as the demo does), so a slow machine only takes longer;
        # timeout_seconds is how long nothing may move before the run stops waiting.
        watch = ProgressWatch(cfg.timeout_seconds)
        outcomes: Counter[str] = Counter()
        meter.set_role("bench")  # the bench's own looks at the table are not billed
        while True:
            time.sleep(1.0)
            sessions = [stack.session_for(k) for k in keys]
            if all(s is not None and s.outcome is not None for s in sessions):
                break
            counts = stack.queue_counts()
            look = (tuple((s.status, s.transcript_tries) if s else None for s in sessions), tuple(counts.items()))
            if not watch.moving(look, job_queued=any(c.total for c in counts.values())):
                break
        time.sleep(2.0)  # let the last deliveries and deletes land
        meter.on = False
        cpu_busy = _machine_busy(load_started)
        sessions = [stack.session_for(k) for k in keys]
        unfinished = [
            f"{s.status.value}/{s.transcript_state.value}" if s else "no session"
            for s in sessions
            if not s or not s.outcome
        ]
        outcomes = Counter(s.outcome.value if s and s.outcome else "none" for s in sessions)
        api_requests = stack.gateway.requests - requests_before
        deliveries = len([d for d in stack.simulator.deliveries() if not d.get("dropped")])
        bots = len(stack.simulator.bots())
        run_seconds = time.monotonic() - started

        # The fixed, not per-meeting, part: one reconcile and one calendar poll, each metered on
        # its own, as their rate schedules run them (every 5 and 10 minutes).
        fixed_runs: dict[str, Meter] = {}
        for function, dotted in (("ReconcileFunction", "meetpilot.handlers.reconcile.handler"),
                                 ("CalendarPollFunction", "meetpilot.handlers.calendar_poll.handler")):  # fmt: skip
            own = Meter(DynamoMeter(side, indexes))
            for client in list(c._clients.values()):
                client._bench_metered = False
                own.hook(client)
            own.on = True
            own.metered(load_handler(dotted))({}, LambdaContext(function))
            own.on = False
            fixed_runs[function] = own
        handler.stream = saved_stream
        logger.setLevel(saved_level)
    finally:
        gateway_module.load_handler = original_loader
        stack.stop()

    usage = meetpilot_usage(meter, memory)
    idle_gb_seconds = idle_emulator_gb_seconds(meter, memory, idle_call_ms / 1000)
    usage["api_requests"] = api_requests
    per_meeting = {k: v / cfg.meetings for k, v in usage.items()}
    per_meeting["webhooks"] = deliveries / max(1, bots)
    ours = {k: v * 1000 for k, v in price_lines(per_meeting, prices).items()}
    # A bound: every SQS-triggered invocation carrying a single record (low traffic in AWS).
    unbatched = dict(per_meeting)
    sqs_functions = ("DispatchFunction", "BotEventsFunction", "TranscriptFetchFunction", "CalendarSyncFunction")
    extra = sum(meter.records[f] - meter.invocations[f] for f in sqs_functions) / cfg.meetings
    unbatched["lambda_invocations"] += extra
    unbatched["sqs_requests"] += 2 * extra  # a receive and a delete for each extra batch
    # A stream publisher sees one change per batch when traffic is quiet: one invocation each (its
    # PutEvents are billed per event, so their cost does not change with the batching).
    streams = stream_functions()
    unbatched["lambda_invocations"] += sum(meter.records[f] - meter.invocations[f] for f in streams) / cfg.meetings
    ours_unbatched = sum(price_lines(unbatched, prices).values()) * 1000
    at_idle = {**per_meeting, "lambda_gb_seconds": idle_gb_seconds / cfg.meetings}
    ours_at_idle = sum(price_lines(at_idle, prices).values()) * 1000
    all_projected = dict(per_meeting)
    all_projected["wru"] = (meter.dynamo.wru + meter.dynamo.all_projection_index_wru) / cfg.meetings
    ours_all_projected = sum(price_lines(all_projected, prices).values()) * 1000
    original = {k: v * 1000 for k, v in price_lines(original_usage(per_meeting, meter, memory), prices).items()}

    runs_per_month = {"ReconcileFunction": 30 * 24 * 12, "CalendarPollFunction": 30 * 24 * 6}
    fixed_month = 0.0
    for function, own in fixed_runs.items():
        one_run = {**meetpilot_usage(own, memory), "scheduler_invocations": 1.0, "api_requests": 0.0}
        for key in ("s3_put", "s3_get", "ssm_gets", "kms_decrypts"):
            one_run.setdefault(key, 0.0)
        fixed_month += runs_per_month[function] * sum(price_lines(one_run, prices).values())

    calls_per_meeting = Counter[str]()
    for (role, service, operation), n in meter.calls.items():
        if (service, operation) not in EMULATION_ONLY and role != "bench":
            calls_per_meeting[f"{service}.{operation}"] += n
    per_job = calls_per_job(meter, deliveries)
    return {
        "baseline": baseline(),
        "config": asdict(cfg),
        "prices": {k: v.get("source") for k, v in prices.items() if isinstance(v, dict)},
        "prices_compiled": prices["compiled"],
        "meetings": cfg.meetings,
        "bots": bots,
        "outcomes": dict(outcomes),
        "unfinished": unfinished,
        "webhooks_per_meeting": per_meeting["webhooks"],
        "per_meeting_usage": per_meeting,
        "requests_per_meeting": {k: n / cfg.meetings for k, n in sorted(calls_per_meeting.items())},
        "calls_per_job": per_job,
        "commit": source_commit(),
        "invocations": dict(meter.invocations),
        "records": dict(meter.records),
        "mean_duration_ms": {k: 1000 * sum(v) / len(v) for k, v in meter.durations.items()},
        "stream_functions": streams,
        "idle_emulator_call_ms": idle_call_ms,
        "lambda_gb_seconds_per_meeting_idle_emulator": idle_gb_seconds / cfg.meetings,
        "meetpilot_total_per_1000_idle_emulator": ours_at_idle,
        "time_split_ms_per_invocation": {
            k: {
                "billed wall": 1000 * sum(v) / len(v),
                "waiting for the emulator": 1000 * meter.aws_wait[k] / len(v),
                "handler thread CPU": 1000 * meter.cpu[k] / len(v),
                "meter (left out)": 1000 * meter.overhead[k] / len(v),
                "records": meter.records[k] / len(v),
            }
            for k, v in meter.durations.items()
        },
        "cpu_busy_during_run": cpu_busy,
        "idle_empty_receives": meter.empty_receives,
        "dynamodb_wru_per_meeting": {
            "table": meter.dynamo.wru / cfg.meetings,
            **{f"index {k}": v / cfg.meetings for k, v in meter.dynamo.writes_by_index.items()},
        },
        "largest_item_bytes": meter.dynamo.largest_item,
        "transcript_jobs_per_meeting": meter.records["TranscriptFetchFunction"] / cfg.meetings,
        "meetpilot_per_1000": ours,
        "meetpilot_total_per_1000": sum(ours.values()),
        "meetpilot_total_per_1000_unbatched": ours_unbatched,
        "meetpilot_total_per_1000_all_projected_indexes": ours_all_projected,
        "all_projected_wru_per_meeting": all_projected["wru"],
        "index_projections": {i.name: i.projection for i in indexes},
        "original_per_1000": original,
        "original_total_per_1000": sum(original.values()),
        "fixed_per_month": fixed_month,
        "run_seconds": round(run_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def calibrate(client: Any, table: str, rounds: int = 40) -> float:
    """The emulator's answer time with nothing else running (median ms of a write and a read of one
    small item, one after another): what one call costs a handler that has the service to itself."""
    key = {"pk": {"S": "BENCH#calibration"}, "sk": {"S": "BENCH"}}
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        client.update_item(TableName=table, Key=key, UpdateExpression="SET n = :n",
                           ExpressionAttributeValues={":n": {"N": str(i)}})  # fmt: skip
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get_item(TableName=table, Key=key, ConsistentRead=True)
        times.append(time.perf_counter() - started)
    client.delete_item(TableName=table, Key=key)
    return 1000 * sorted(times)[len(times) // 2]


def idle_emulator_gb_seconds(meter: Meter, memory: dict[str, int], call_seconds: float) -> float:
    """GB-s had each handler's AWS calls taken the idle emulator's time: its own wall time (all but
    the waits for answers on its thread) plus, per call, the calibrated answer time."""
    total = 0.0
    for name, durations in meter.durations.items():
        calls = sum(n for (role, _, _), n in meter.calls.items() if role == name)
        own = max(0.0, sum(durations) - meter.aws_wait[name])
        total += (own + calls * call_seconds) * memory.get(name, 512) / 1024
    return total


BASELINE = Path(__file__).resolve().parent / "baseline" / "cost-main.json"


def baseline(path: Path = BASELINE) -> dict[str, Any] | None:
    """The figures of the run kept as the baseline: ``results.json`` of ``python -m bench --only cost``
    on the code before the lean writes (its commit is in it), copied to ``bench/baseline/``."""
    if not path.is_file():
        return None
    r = json.loads(path.read_text())["results"]["cost"]
    keys = ("commit", "meetings", "per_meeting_usage", "requests_per_meeting", "calls_per_job",
            "dynamodb_wru_per_meeting", "largest_item_bytes", "meetpilot_per_1000", "meetpilot_total_per_1000",
            "meetpilot_total_per_1000_unbatched", "mean_duration_ms", "meetpilot_total_per_1000_idle_emulator",
            "lambda_gb_seconds_per_meeting_idle_emulator")  # fmt: skip
    return {k: r.get(k) for k in keys}


def _machine_busy(since: tuple[float, float] | None = None) -> Any:
    """Without ``since``: a mark (busy and total CPU jiffies from /proc/stat). With it: the share of
    the machine's CPU that was busy since the mark (every process, other users' included), or None."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields)
    if since is None:
        return (total - idle, total)
    busy, whole = total - idle - since[0], total - since[1]
    return round(busy / whole, 3) if whole > 0 else None


# What one unit of work costs in AWS requests, by the function doing it: a dispatch record, a
# webhook (taken in by IngestFunction, applied by BotEventsFunction), a transcript job.
JOBS = {
    "dispatch": ("DispatchFunction",),
    "webhook": ("IngestFunction", "BotEventsFunction"),
    "transcript": ("TranscriptFetchFunction",),
}


def calls_per_job(meter: Meter, webhooks: int) -> dict[str, dict[str, float]]:
    """AWS requests per dispatch, per webhook and per transcript job, by service.operation."""
    out: dict[str, dict[str, float]] = {}
    for job, functions in JOBS.items():
        count = webhooks if job == "webhook" else sum(meter.records[f] or meter.invocations[f] for f in functions)
        calls: Counter[str] = Counter()
        for (role, service, operation), n in meter.calls.items():
            if role in functions and (service, operation) not in EMULATION_ONLY:
                calls[f"{service}.{operation}"] += n
        per = {k: n / max(1, count) for k, n in sorted(calls.items())}
        out[job] = {"total": sum(per.values()), **per}
    return out


def source_commit() -> str:
    """The commit the measured code came from (with ``+dirty`` when the worktree had changes)."""
    import shutil
    import subprocess

    import meetpilot

    root = Path(meetpilot.__file__).resolve().parents[2]  # the checkout the measured code came from
    git = shutil.which("git")
    if git is None:
        return "unknown"

    def git_out(*args: str) -> str:
        run = subprocess.run  # our own repository, a fixed command
        return run([git, *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git_out("rev-parse", "--short", "HEAD")
        dirty = git_out("status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    total = result["meetpilot_total_per_1000"]
    bound = result["meetpilot_total_per_1000_unbatched"]
    return [
        ("<= $0.10 per 1,000 meetings (as measured)", f"${total:.4f}", total <= 0.10),
        ("<= $0.10 per 1,000 meetings (every SQS batch one record)", f"${bound:.4f}", bound <= 0.10),
    ]
