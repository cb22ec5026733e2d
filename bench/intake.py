"""Benchmark 2: webhook intake.

* **Warm overhead** of the ``ingest`` handler: N deliveries (per-bot callbacks with their capability
  token, the bodies MeetStream posts) served one after the other by one warm process, each timed
  from event in to response out. Twice: with the SQS client stubbed (what our own code costs) and
  with the real client sending to the emulator's queue (end to end on this machine).
* **Cold start** of each handler: a fresh process that imports the handler module and serves one
  real event against the local stack, beside a fresh process that only imports boto3 and creates
  one client. Each is repeated and the median taken; runs are interleaved so that background load
  hits every kind alike. ``python -X importtime`` then names what the imports cost.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHILDREN = Path(__file__).resolve().parent / "children"
HANDLERS = {
    "dispatch": ("meetpilot.handlers.dispatch", "DispatchFunction"),
    "ingest": ("meetpilot.handlers.ingest", "IngestFunction"),
    "bot_events": ("meetpilot.handlers.bot_events", "BotEventsFunction"),
    "transcript_fetch": ("meetpilot.handlers.transcript_fetch", "TranscriptFetchFunction"),
    "reconcile": ("meetpilot.handlers.reconcile", "ReconcileFunction"),
}
CALLBACK_ROUTE = "/webhooks/meetstream/{session_id}/{token}"
_EVENT_NAMES = ("bot.joining", "bot.inmeeting", "bot.recording", "bot.leaving", "bot.stopped", "bot.done")


@dataclass(frozen=True)
class IntakeConfig:
    deliveries: int = 10_000
    warmup: int = 200
    cold_repeats: int = 7
    sessions: int = 50  # distinct callback URLs the deliveries are spread over
    importtime: bool = True


def lambda_environment(stack: Any) -> dict[str, str]:
    """What Lambda would give the functions, pointed at the local stack's emulator and simulator."""
    from meetpilot_dev.stack.template import load_template

    settings = stack.container.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "MEETPILOT_"))}
    template = load_template()
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    env.update({k: str(v) for k, v in globals_env.items() if isinstance(v, str | int)})
    env.update(
        stack.resources.environment(
            MEETSTREAM_BASE_URL=stack.simulator.base_url,
            PUBLIC_BASE_URL=stack.gateway.url,
            TRANSCRIPT_PROVIDER=settings.transcript_provider or "none",
            LEAD_TIME_SECONDS=settings.lead_time_seconds,
            SCHEDULE_MARGIN_SECONDS=settings.schedule_margin_seconds,
            MEETSTREAM_TIMEOUT_SECONDS=5,
            MEETPILOT_TIME_SCALE=settings.time_scale,
            MEETSTREAM_API_KEY_PARAM=settings.api_key_param,
            WEBHOOK_SECRET_PARAM=settings.webhook_secret_param,
        )
    )
    env.update(stack.environment())
    return env


def webhook_body(name: str, bot_id: str, session_id: str, meeting_key: str, when: datetime) -> dict[str, Any]:
    """A MeetStream lifecycle webhook as it is posted to a per-bot callback URL."""
    status = {"bot.joining": "Joining", "bot.inmeeting": "InMeeting", "bot.recording": "Recording",
              "bot.leaving": "Leaving", "bot.stopped": "Stopped", "bot.done": "Done"}[name]  # fmt: skip
    return {
        "event": "bot.stopped" if name == "bot.stopped" else name,
        "bot_event": name,
        "bot_id": bot_id,
        "bot_status": status,
        "message": f"Bot status: {status}",
        "status_code": 200,
        "timestamp": when.isoformat(),
        "custom_attributes": {"meeting_key": meeting_key, "session_id": session_id},
    }


def callback_event(session_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway v2 event the HTTP API hands ``ingest`` for one callback delivery."""
    from meetpilot_dev.stack.gateway import GatewayRoute, build_event

    route = GatewayRoute("POST", CALLBACK_ROUTE, HANDLERS["ingest"][0] + ".handler", "IngestFunction")
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "MeetStream-Webhooks/1.0",
               "Content-Length": str(len(raw)), "Host": "abc123.execute-api.us-east-1.amazonaws.com"}  # fmt: skip
    path = f"/webhooks/meetstream/{session_id}/{token}"
    return build_event(route, "POST", path, "", headers, raw, {"session_id": session_id, "token": token}, "3.1.2.3")


def sqs_event(bodies: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    from meetpilot_dev.stack.sqs_runner import sqs_event as build

    messages = [
        {"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex, "Body": json.dumps(b)} for b in bodies
    ]
    return build(messages, queue_arn)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
    }


# --- warm --------------------------------------------------------------------------------------


def _delivery_events(stack: Any, count: int, sessions: int) -> list[dict[str, Any]]:
    from meetpilot.domain.webhook_auth import capability_token

    secret = stack.webhook_secret.split(",")[0].strip()
    now = datetime.now(UTC)
    ids = [uuid.uuid4().hex for _ in range(sessions)]
    events = []
    for i in range(count):
        session_id = ids[i % sessions]
        body = webhook_body(
            _EVENT_NAMES[(i // sessions) % len(_EVENT_NAMES)],
            f"bot-{session_id[:12]}",
            session_id,
            f"https://meet.google.com/abc-defg-{i % sessions:03d}|2026-12-01T15:00Z",
            now + timedelta(milliseconds=i),
        )
        events.append(callback_event(session_id, capability_token(secret, session_id), body))
    return events


def run_warm(stack: Any, cfg: IntakeConfig, workdir: Path) -> dict[str, Any]:
    env = lambda_environment(stack)
    events_path = workdir / "deliveries.json"
    events_path.write_text(json.dumps(_delivery_events(stack, cfg.deliveries, cfg.sessions)))
    results: dict[str, Any] = {}
    for mode in ("stub", "sqs"):
        config = {
            "mode": mode,
            "events": str(events_path),
            "warmup": cfg.warmup,
            "out": str(workdir / f"{mode}.json"),
            "purge_every": 200,
        }
        config_path = workdir / f"warm-{mode}.json"
        config_path.write_text(json.dumps(config))
        started = time.monotonic()
        proc = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(CHILDREN / "warm_ingest.py"), str(config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"warm ingest ({mode}) failed: {proc.stderr[-2000:]}")
        results[mode] = json.loads(Path(config["out"]).read_text())
        results[mode]["seconds"] = round(time.monotonic() - started, 1)
    # The end-to-end run left its deliveries (for sessions that do not exist) in the queue.
    sqs, url = stack.container.client("sqs"), stack.resources.queue_urls["BotEventsQueue"]
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )
    return results


# --- cold --------------------------------------------------------------------------------------


def _prepare_cold_events(stack: Any, repeats: int) -> dict[str, list[dict[str, Any]]]:
    """Real events for each handler, against state prepared in the local stack."""
    from meetpilot.app.dispatch import MeetingRequest, submit_meeting
    from meetpilot.domain.webhook_auth import capability_token

    c = stack.container
    arns = stack.resources.queue_arns
    now = c.clock.now()
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)

    # dispatch: meetings an hour ahead, pending; the child claims one and creates its bot.
    for i in range(repeats):
        request = MeetingRequest(f"https://meet.google.com/cld-disp-{i:03d}", now + timedelta(hours=1), title="cold")
        meeting = submit_meeting(request, repo=c.repository, clock=c.clock)
        events["dispatch"].append(sqs_event([{"meeting_key": meeting.meeting_key}], arns["DispatchQueue"]))

    # Sessions with a bot, for ingest and bot_events: due for dispatch at once (inside the lead
    # time), dispatched here, their bots scheduled to join in five minutes.
    tracked = []
    for i in range(repeats):
        start = now + timedelta(minutes=5)
        key = stack.submit_meeting(f"https://meet.google.com/cld-trak-{i:03d}", start, title="cold")
        tracked.append(key)
    stack.feeders["DispatchFunction"].drain()
    secret = stack.webhook_secret.split(",")[0].strip()
    for key in tracked:
        session = stack.session_for(key)
        if session is None or session.bot_id is None:
            raise RuntimeError(f"no bot for prepared meeting {key}")
        body = webhook_body("bot.joining", session.bot_id, session.session_id, key, c.clock.now())
        events["ingest"].append(callback_event(session.session_id, capability_token(secret, session.session_id), body))
        delivery = {
            "received_at": c.clock.now().isoformat(),
            "auth": "token",
            "session_id": session.session_id,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(body, separators=(",", ":")),
        }
        events["bot_events"].append(sqs_event([delivery], arns["BotEventsQueue"]))

    # transcript_fetch: bots that joined at once and finished; their transcript jobs are taken
    # from the queue here and handed to the children.
    fetch_keys = [
        stack.submit_meeting(f"https://meet.google.com/cld-ftch-{i:03d}", now + timedelta(seconds=2), title="cold")
        for i in range(repeats)
    ]
    stack.feeders["DispatchFunction"].drain()
    sqs = c.client("sqs")
    queue = stack.resources.queue_urls["TranscriptQueue"]
    jobs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(jobs) < repeats and time.monotonic() < deadline:
        stack.feeders["BotEventsFunction"].drain()
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=3600)
        jobs.extend(json.loads(m["Body"]) for m in got.get("Messages", []))
        time.sleep(0.1)
    if len(jobs) < repeats:
        raise RuntimeError(f"only {len(jobs)} of {repeats} transcript jobs were ready ({fetch_keys[:2]} ...)")
    events["transcript_fetch"] = [sqs_event([job], arns["TranscriptQueue"]) for job in jobs[:repeats]]

    # reconcile: the scheduled event (its input is empty).
    events["reconcile"] = [{} for _ in range(repeats)]
    return events


def _child(script: str, args: list[str], env: dict[str, str], what: str, importtime: bool = False) -> float:
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    flags = ["-X", "importtime"] if importtime else []
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, *flags, str(CHILDREN / script), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    wall = (time.perf_counter() - started) * 1000
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # One child at a time, so the difference is this child's CPU: its work without the time it
    # waited for a core, which on a busy machine swamps the wall time.
    _child.cpu_ms = (  # type: ignore[attr-defined]
        cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    ) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed: {proc.stderr[-2000:]}")
    _child.stderr = proc.stderr  # type: ignore[attr-defined]
    return wall


def _run_cold(env: dict[str, str], target: str, event: Any, workdir: Path, calls: Path | None = None) -> dict[str, Any]:
    """One timed cold start: the handler module ``target``, or (``calls`` given) its baseline."""
    tag = uuid.uuid4().hex[:8]
    event_path = workdir / f"event-{tag}.json"
    out_path = workdir / f"cold-{tag}.json"
    event_path.write_text(json.dumps(event))
    if calls is None:
        args = ["handler", target, str(event_path), str(out_path)]
        wall = _child("cold_start.py", args, env, f"cold start of {target}")
    else:
        wall = _child("boto3_baseline.py", [str(calls), str(event_path), str(out_path)], env, f"baseline of {target}")
    result = json.loads(out_path.read_text())
    result["process_ms"] = wall
    result["cpu_ms"] = _child.cpu_ms  # type: ignore[attr-defined]
    return result


def _interpreter_ms(env: dict[str, str], repeats: int) -> float:
    """A fresh interpreter that does nothing: the floor every process pays."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


_STARTUP_PACKAGES = {"encodings", "codecs", "site", "io", "abc", "os", "stat", "posixpath", "genericpath",
                     "_collections_abc", "_sitebuiltins", "_distutils_hack", "zipimport", "time", "sys",
                     "_frozen_importlib_external", "_io", "marshal", "posix", "_signal", "_abc", "_codecs"}  # fmt: skip


def diagnose(
    env: dict[str, str], target: str, event: Any, workdir: Path, calls: Path | None = None, top: int = 6
) -> dict[str, Any]:
    """One extra cold start under ``-X importtime`` with client creation, AWS calls and provider
    calls timed and recorded: where the cold start goes, which packages' imports cost most, and
    the calls made (for the handler: the script its baseline replays)."""
    tag = uuid.uuid4().hex[:8]
    event_path, out_path = workdir / f"diag-event-{tag}.json", workdir / f"diag-{tag}.json"
    event_path.write_text(json.dumps(event))
    if calls is None:
        args = ["handler", target, str(event_path), str(out_path), "diagnose"]
        _child("cold_start.py", args, env, f"diagnosing {target}", importtime=True)
    else:
        args = [str(calls), str(event_path), str(out_path), "diagnose"]
        _child("boto3_baseline.py", args, env, f"diagnosing the baseline of {target}", importtime=True)
    stderr: str = _child.stderr  # type: ignore[attr-defined]
    result = json.loads(out_path.read_text())
    by_package: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_us, _cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        except ValueError:
            continue
        package = name.split(".")[0]
        if package not in _STARTUP_PACKAGES:
            by_package[package] += int(self_us) / 1000
    total = sum(by_package.values())
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
    spent = result.get("spent") or {}
    recorded = result.get("calls") or []
    return {
        "imports_ms": round(total, 1),
        "top_imports": [{"package": n, "ms": round(ms, 1)} for n, ms in ranked],
        "clients": spent.get("clients", 0),
        "client_ms": round(spent.get("client_ms", 0.0), 1),
        "aws_calls": spent.get("aws_calls", 0),
        "aws_call_ms": round(spent.get("aws_call_ms", 0.0), 1),
        "http_calls": spent.get("http_calls", 0),
        "http_ms": round(spent.get("http_ms", 0.0), 1),
        "total_ms": round(float(result["total_ms"]), 1),
        "calls": recorded,
        "call_list": call_list(recorded),
    }


def call_list(calls: list[dict[str, Any]]) -> list[str]:
    """A recorded run's calls as comparable names: clients made, AWS operations, HTTP requests (the
    path with ids left out)."""
    names = []
    for c in calls:
        if c["kind"] == "client":
            names.append(f"client {c['service']}")
        elif c["kind"] == "aws":
            names.append(f"{c['service']}.{c['operation']}")
        else:
            path = urlsplit(c["url"]).path
            names.append(f"{c['method']} {_ID.sub('{id}', path)}")
    return names


_ID = re.compile(r"(?<=/)[^/]*\d[^/]*(?=/|$)")


def run_cold(stack: Any, cfg: IntakeConfig, workdir: Path) -> dict[str, Any]:
    """Each handler beside its own hand-written baseline: first one recorded run of the handler
    (its calls become the baseline's script), then the timed runs, handler and baseline
    interleaved, then one recorded run of each baseline to show it made the same calls."""
    env = lambda_environment(stack)
    events = _prepare_cold_events(stack, cfg.cold_repeats + 1)
    diagnosis: dict[str, Any] = {}
    scripts: dict[str, Path] = {}
    for name, (module, _) in HANDLERS.items():
        diagnosis[name] = diagnose(env, module, events[name][cfg.cold_repeats], workdir)
        scripts[name] = workdir / f"calls-{name}.json"
        scripts[name].write_text(json.dumps(diagnosis[name]["calls"]))
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in range(cfg.cold_repeats):
        for name, (module, _) in HANDLERS.items():
            samples[name].append(_run_cold(env, module, events[name][i], workdir))
            samples[f"{name} baseline"].append(_run_cold(env, module, events[name][i], workdir, scripts[name]))
    rows: dict[str, Any] = {}
    for name, runs in samples.items():
        rows[name] = {
            "runs": len(runs),
            "process_ms": _percentiles([r["process_ms"] for r in runs])["median"],
            "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
            "import_ms": statistics.median(r["import_ms"] for r in runs),
            "first_event_ms": statistics.median(r["first_event_ms"] for r in runs),
            "init_and_event_ms": statistics.median(r["total_ms"] for r in runs),
        }
        if "response" in runs[0]:
            rows[name]["responses"] = [_short(runs[0].get("response"))]
        if "errors" in runs[0]:
            rows[name]["replay_errors"] = sorted({e for e in runs[0]["errors"] if e})
    for name, (module, _) in HANDLERS.items():
        base = rows[f"{name} baseline"]
        rows[name]["ratio_process"] = rows[name]["process_ms"] / base["process_ms"]
        rows[name]["ratio_in_process"] = rows[name]["init_and_event_ms"] / base["init_and_event_ms"]
        rows[name]["ratio_cpu"] = rows[name]["cpu_ms"] / base["cpu_ms"]
        replay = diagnose(env, module, events[name][cfg.cold_repeats], workdir, scripts[name])
        diagnosis[f"{name} baseline"] = replay
        diagnosis[name]["baseline_calls_match"] = replay["call_list"] == diagnosis[name]["call_list"]
    for entry in diagnosis.values():
        entry.pop("calls", None)  # the parameters stay out of results.json
    return {
        "baseline": "each handler's own: plain boto3 + httpx replaying the calls a recorded run of it made",
        "interpreter_ms": _interpreter_ms(env, cfg.cold_repeats),
        "rows": rows,
        "diagnosis": diagnosis,
    }


def _short(response: Any) -> str:
    text = json.dumps(response, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def run(cfg: IntakeConfig | None = None) -> dict[str, Any]:
    from meetpilot_dev.stack.embedded import LocalStack, StackOptions

    cfg = cfg or IntakeConfig()
    started = time.monotonic()
    options = StackOptions(
        background_pollers=False,
        speed=2000.0,
        simulator_overrides={"meeting_seconds": 60.0, "step_seconds": 2.0, "processing_seconds": 5.0},
    )
    with tempfile.TemporaryDirectory(prefix="meetpilot-bench-") as tmp, LocalStack(options) as stack:
        workdir = Path(tmp)
        warm = run_warm(stack, cfg, workdir)
        cold = run_cold(stack, cfg, workdir)
    return {"config": asdict(cfg), "warm": warm, "cold": cold, "seconds": round(time.monotonic() - started, 1)}


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    warm = result["warm"]["stub"]
    rows = [("warm ingest overhead p99 < 1 ms (SQS stubbed)", f"{warm['p99_ms']:.3f} ms", warm["p99_ms"] < 1.0)]
    for name in HANDLERS:
        row = result["cold"]["rows"][name]
        rows.append(
            (
                f"{name} cold start <= 1.3x its hand-written boto3 baseline",
                f"{row['ratio_process']:.2f}x",
                row["ratio_process"] <= 1.3,
            )
        )
    return rows
