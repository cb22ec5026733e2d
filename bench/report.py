"""RESULTS.md and the PNG plots, from the benchmarks' results. Every figure is read from a result."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cost, intake, punctuality, transcripts

TARGETS = {
    "punctuality": punctuality.targets,
    "intake": intake.targets,
    "transcripts": transcripts.targets,
    "cost": cost.targets,
}


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": load_average(),
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


SPARE_NOTE = "twice"


def _s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _targets(name: str, result: dict[str, Any]) -> str:
    rows = [[target, measured, "met" if met else "**not met**"] for target, measured, met in TARGETS[name](result)]
    return _table(["target", "measured", ""], rows)


# --- sections ------------------------------------------------------------------------------------


def punctuality_section(r: dict[str, Any]) -> str:
    ours, orig, cfg = r["meetpilot"], r["original"], r["config"]

    def lateness(side: dict[str, Any]) -> str:
        worst = side["worst_lateness_seconds"]
        if worst is None:
            return "-"
        return f"{worst:.1f} s late" if worst > 0 else f"none ({-worst:.1f} s early at worst)"

    rows = [
        ["when each create is first tried", f"{ours['lead_seconds']} s before the start (schedule)",
         f"{orig['lead_seconds']} s before the start, once"],
        ["bots created before their join time", f"{ours['on_time']} / {ours['meetings']} ({ours['on_time_share']:.1%})",
         f"{orig['on_time']} / {orig['meetings']} ({orig['on_time_share']:.1%})"],
        ["worst lateness", lateness(ours), lateness(orig)],
        ["bots lost", ours["lost"], orig["lost"]],
        ["duplicate bots", ours["duplicate_bots"], orig["duplicate_bots"]],
        ["429 answers received", ours["rate_limited_429"], orig["rate_limited_429"]],
        ["create_bot calls", ours["create_attempts"], orig["create_attempts"]],
        ["last bot created, after the due moment", f"{_s(ours['last_create_after_due_seconds'])} s",
         f"{_s(orig['last_create_after_due_seconds'])} s"],
        ["dispatch throughput (bots / time to the last bot)",
         f"{ours['throughput_per_second']:.2f}/s = {ours['throughput_share_of_limit']:.1%} of the limit",
         f"{orig['throughput_per_second']:.2f}/s (then nothing: the rest were lost)"],
    ]  # fmt: skip
    table = _table(["", "meetpilot", "original design"], rows)
    limit = r["physical_limit_seconds"]
    pollers = ours.get("dispatch_pollers") or cfg["dispatch_concurrency"]
    closeness = r["physical_minimum_seconds"] / ours["last_create_after_due_seconds"] if ours["bots_created"] else 0
    notes = [
        f"Burst: {cfg['meetings']} meetings starting at the same minute; the simulator admits "
        f"{cfg['rate_per_second']:g} create_bot calls per second (token bucket, one second of burst) and answers "
        "the rest 429 with Retry-After.",
        f"Physical limit: {cfg['meetings']} ÷ {cfg['rate_per_second']:g}/s = {limit:.0f} s "
        f"({r['physical_minimum_seconds']:.0f} s with the bucket full at the start). meetpilot created the last bot "
        f"{ours['last_create_after_due_seconds']:.1f} s after the due moment: {closeness:.0%} of the physical best, "
        f"with {ours['lead_seconds'] - ours['last_create_after_due_seconds']:.0f} s of the {ours['lead_seconds']} s "
        "lead left.",
        f"meetpilot: the whole local stack. Submitted meetings got their one-time schedules "
        f"({ours['setup_seconds']:.0f} s of setup), then the stack clock jumped to the due moment (the only shortcut:"
        " it skips the idle wait, nothing after it is scaled). The due schedules were delivered by "
        f"{cfg['firing_threads']} threads within {_s(ours['schedules_fired_within_seconds'])} s; "
        f"{pollers} dispatch pollers (the template's MaximumConcurrency) handled "
        f"{ours['dispatch_records']} records in {ours['dispatch_invocations']} invocations; a throttled meeting "
        "went back to SQS with a delay honouring Retry-After.",
        f"Original design: {cfg['original_concurrency']} concurrent create calls (one invocation per meeting, all at "
        f"once), no retry; outcomes: {orig.get('outcomes')}.",
    ]
    if ours["rate_limited_429"] < ours["meetings"] / 10 and ours["throughput_share_of_limit"] < 0.9:
        notes.append(
            f"Why below the limit: only {ours['rate_limited_429']} 429s came back, so the provider was rarely the "
            "bottleneck; the dispatch side was. Each dispatch record is a chain of sequential calls (the meeting's "
            "claim, its session, create_bot, the session's and the meeting's updates), all but one answered by the "
            "single emulator process that shares this machine's cores with everything else, so the records per "
            f"second follow the emulator's speed more than the {pollers} pollers."
        )
    emulator = r.get("emulator")
    if emulator:
        notes.insert(
            0,
            f"The local stack on this machine, measured first: {emulator['creates_per_second']:.1f} creates/s "
            f"({emulator['meetings']} meetings due at once, planned at a rate no burst reaches, a provider that admits "
            "every create, "
            f"{emulator['pollers']} dispatch pollers, {emulator['seconds']:.0f} s). "
            + (r.get("rate_note") or f"That is at least {SPARE_NOTE} the provider's rate: the burst runs at it."),
        )
    calls = (emulator or {}).get("calls_per_meeting") or ours.get("calls_per_meeting") or {}
    if calls:
        shown = ", ".join(f"{name} {n:.2f}" for name, n in sorted(calls.items(), key=lambda kv: -kv[1]))
        notes.append(
            f"AWS calls per dispatched meeting, the dispatch function's own (its handler and its queue's polling): "
            f"{sum(calls.values()):.2f} in all: {shown}. In AWS the calls, not the emulator, set how fast one "
            "poller goes: each is a few milliseconds of DynamoDB or SQS latency."
        )
    notes.append(
        f"Dispatch records per meeting: {ours.get('dispatch_records_per_meeting', 0):.2f} (a scheduled meeting "
        "arrives ahead of its slot and is held back once with an SQS delay); the plan itself costs the planner "
        "one BatchGetItem and one conditional UpdateItem per meeting, and the dispatcher no table call."
    )
    over = r.get("overfill")
    if over:
        fits = over["rate"] * over["lead_seconds"]
        notes.append(
            f"Burst over the lead: {over['meetings']} meetings in one minute at {over['rate']:g} creates/s with a "
            f"{over['lead_seconds']} s lead (rate x lead = {fits:.0f}; N ÷ rate = "
            f"{over['meetings'] / over['rate']:.0f} s, {over['meetings'] / fits:.1f}x the lead; a short lead keeps the "
            f"run short): {over['on_time']} / {over['meetings']} created before their join time, "
            f"{over['created_after_deadline']} after start - lead, {over['rate_limited_429']} 429s; the latest slot "
            f"was {over['latest_slot_before_deadline_seconds']:.1f} s before start - lead and the first "
            f"{over['meetings'] / over['rate']:.0f} s of creates were planned earlier than the lead."
        )
    return table + "\n\n" + "\n".join(f"- {n}" for n in notes)


DIAGNOSIS_HEADER = ["", "imports", "largest imports (package ms)", "clients / ms", "AWS calls / ms",
                    "provider calls / ms"]  # fmt: skip


def intake_section(r: dict[str, Any]) -> str:
    warm = r["warm"]
    rows = []
    for mode, label in (("stub", "SQS stubbed (our own cost)"), ("sqs", "SQS on the emulator (end to end)")):
        w = warm[mode]
        rows.append([label, w["deliveries"], f"{w['p50_ms']:.3f}", f"{w['p90_ms']:.3f}", f"{w['p99_ms']:.3f}",
                     f"{w['max_ms']:.2f}", f"{w['cpu_p50_ms']:.3f} / {w['cpu_p99_ms']:.3f}"])  # fmt: skip
    warm_table = _table(["warm ingest", "deliveries", "p50 ms", "p90 ms", "p99 ms", "max ms", "CPU p50 / p99 ms"], rows)
    cold = r["cold"]
    crow = []
    for name, row in cold["rows"].items():
        own = name.endswith(" baseline")
        ratio = "" if own else f"{row['ratio_process']:.2f}x"
        in_process = "" if own else f"{row['ratio_in_process']:.2f}x"
        cpu = "" if own else f"{row['ratio_cpu']:.2f}x"
        crow.append([name, f"{row['process_ms']:.0f}", ratio, f"{row['import_ms']:.0f}",
                     f"{row['first_event_ms']:.0f}", f"{row['init_and_event_ms']:.0f}", in_process,
                     f"{row['cpu_ms']:.0f}", cpu])  # fmt: skip
    cold_table = _table(
        ["cold start", "process ms", "vs its baseline", "import ms", "first event ms", "import + event ms",
         "vs its baseline (in process)", "CPU ms", "vs its baseline (CPU)"],
        crow,
    )  # fmt: skip
    parts = [warm_table, cold_table]
    runs = next(iter(cold["rows"].values()))["runs"]
    notes = [
        "Baseline: for each handler, a hand-written function in plain boto3 (and httpx, the transport under "
        "the provider's SDK, for the provider) that "
        "makes the calls a recorded run of the handler made for the same kind of first event (same clients, same "
        "AWS operations in the same order with the same parameters, same provider requests), against the same "
        "local stack; the list is recorded in the run, so it follows the handler. Each cold start is a fresh "
        f"process (handler: import the module and serve one real event); median of {runs} runs, handler and "
        f'baseline interleaved. "process ms" is spawn to exit (an empty interpreter takes '
        f'{cold["interpreter_ms"]:.0f} ms); "in process" leaves the interpreter\'s start out; "CPU" is the '
        "child's own CPU time (user + system), which leaves out the time it waited for a core on a busy machine.",
        "Warm: one process serves every delivery in turn (per-bot callback URL with its capability token, "
        f"{r['config']['warmup']} warm-up deliveries first); wall time per call, and the thread's CPU time, which "
        "leaves out time spent waiting for a core on this shared machine.",
    ]
    replay_errors = {n[: -len(" baseline")]: row["replay_errors"] for n, row in cold["rows"].items()
                     if row.get("replay_errors")}  # fmt: skip
    if replay_errors:
        notes.append(
            "The baseline sends the recorded parameters again, so writes the handler made conditionally answer "
            "a condition failure the second time (the emulator still reads the item): "
            + "; ".join(f"{n}: {', '.join(e)}" for n, e in replay_errors.items())
            + "."
        )
    diagnosis = cold.get("diagnosis")
    if diagnosis:
        drows = []
        for name, d in diagnosis.items():
            top = ", ".join(f"{t['package']} {t['ms']:.0f}" for t in d["top_imports"][:4])
            drows.append(
                [
                    name,
                    f"{d['imports_ms']:.0f}",
                    top,
                    f"{d['clients']} / {d['client_ms']:.0f}",
                    f"{d['aws_calls']} / {d['aws_call_ms']:.0f}",
                    f"{d['http_calls']} / {d['http_ms']:.0f}",
                ]
            )
        parts.append(
            "Where a cold start goes (one extra run each, under `python -X importtime` with boto3 client creation, "
            "AWS calls and provider calls timed and recorded; ms):\n\n" + _table(DIAGNOSIS_HEADER, drows)
        )
        lrows = []
        for name, d in diagnosis.items():
            if name.endswith(" baseline"):
                continue
            replay = diagnosis.get(f"{name} baseline", {})
            same = "yes" if d.get("baseline_calls_match") else "**no**: " + ", ".join(replay.get("call_list", []))
            lrows.append([name, ", ".join(d["call_list"]) or "none", same])
        parts.append(
            "The calls each handler made for its first event (clients, AWS operations, provider requests), and "
            "whether its baseline's recorded run made the same:\n\n"
            + _table(["handler", "clients and calls, in order", "baseline made the same"], lrows)
        )
    return "\n\n".join(parts) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def _calls(calls: dict[str, int]) -> str:
    puts = sum(n for op, n in calls.items() if op in _S3_PUTS)
    listed = ", ".join(f"{n} {op.split('.', 1)[1]}" for op, n in calls.items())
    return f"{puts} S3 PUT-class ({listed or 'no calls'})"


_S3_PUTS = ("s3.PutObject", "s3.CreateMultipartUpload", "s3.UploadPart", "s3.CompleteMultipartUpload")


def transcripts_section(r: dict[str, Any]) -> str:
    rows = []
    for row in r["rows"]:
        cpu = row.get("cpu_seconds")
        rows.append([row["size_mb"], row["segments"], row["speakers_stored"], f"{row['span_hours']:.1f}",
                     row["outcome"], f"{row['seconds']:.2f}", f"{row['mb_per_second']:.1f}",
                     _s(cpu, 2) if cpu is not None else "-",
                     f"{row['size_mb'] / cpu:.1f}" if cpu else "-",
                     f"{row['download_seconds']:.2f}", f"{row['upload_seconds']:.2f}", f"{row['other_seconds']:.2f}",
                     f"{row['peak_rss_mb']:.1f}"])  # fmt: skip
    table = _table(
        ["MB", "segments", "speakers", "hours", "outcome", "seconds", "MB/s", "CPU s", "MB per CPU s",
         "download s", "uploads s (overlapping)", "rest s", "peak RSS MB"],
        rows,
    )  # fmt: skip
    first, last = r["rows"][0], r["rows"][-1]
    notes = [
        f"Peak RSS grows by {r['rss_growth_mb']:.1f} MB from {first['size_mb']} MB to {last['size_mb']} MB "
        f"(whole child process, {first.get('peak_source', 'getrusage')}; the body is spooled to disk and parsed "
        "segment by segment). The peak is the kernel's VmHWM, reset when the child starts, where available: "
        "`resource.getrusage` alone would report the parent's peak, which Linux carries into a child across exec.",
        "MB = 2^20 bytes; MB/s = raw transcript bytes over the handler's wall time with warm clients. The body comes "
        "from a loopback server playing MeetStream's get_transcript; S3 and DynamoDB are the emulator. "
        "CPU s is the fetch process's own CPU time (all threads; the emulator's is not in it): on a busy host the "
        "wall time also measures the neighbours, the CPU time much less so.",
        "How a job runs: the raw copy is gzipped (and its CRC taken) on a worker thread while the main thread "
        "parses and renders; one HeadObject on the text file (written last, tagged with a digest of what the set "
        "is made of) tells whether this very set is stored; if not, the raw copy goes up from that thread, the JSON "
        "and WebVTT in parallel once rendered, and the text file last. 'uploads s' is the time at least one upload "
        "was running, much of it beside the parsing; 'rest s' is what is neither download nor upload.",
    ]
    for row in r["rows"]:
        if row.get("aws_calls") is not None:
            notes.append(f"AWS calls of the {row['size_mb']} MB job: {_calls(row['aws_calls'])}.")
    again = r.get("retried_job")
    if again:
        notes.append(
            f"The {again['size_mb']} MB job delivered again (its objects stored, its session write lost): "
            f"{_calls(again['aws_calls'])}, {again['seconds']:.2f} s, session {again['state']}."
        )
    parts = [table]
    if r.get("profile"):
        prow = [[name, f"{own:.3f}", calls] for name, own, calls in r["profile"]]
        parts.append(
            f"Where the time goes at {r['profile_size_mb']} MB (cProfile, own time, one extra run; the worker "
            "threads' gzip and uploads show here only as the main thread's wait, 'acquire'):\n\n"
            + _table(["function", "own s", "calls"], prow)
        )
    if r["slowest_mb_per_second"] < 20:
        slow = min(r["rows"], key=lambda row: row["mb_per_second"])
        notes.append(
            f"Below 20 MB/s at {slow['size_mb']} MB: {slow['seconds']:.2f} s, of which download "
            f"{slow['download_seconds']:.2f} s, uploads {slow['upload_seconds']:.2f} s (partly overlapping the rest) "
            f"and {slow['other_seconds']:.2f} s of parsing, rendering and session reads and writes"
            + (f"; the process used {slow['cpu_seconds']:.2f} s of CPU." if slow.get("cpu_seconds") else ".")
        )
    return "\n\n".join(parts) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def cost_section(r: dict[str, Any]) -> str:
    ours, orig = r["meetpilot_per_1000"], r["original_per_1000"]
    rows = [[service, f"{ours[service]:.4f}", f"{orig.get(service, 0.0):.4f}"] for service in ours]
    rows.append(["**total**", f"**{r['meetpilot_total_per_1000']:.4f}**", f"**{r['original_total_per_1000']:.4f}**"])
    table = _table(["USD per 1,000 meetings", "meetpilot (measured)", "original design (its request pattern)"], rows)
    usage = r["per_meeting_usage"]
    base = r.get("baseline")
    parts = [table, _cost_before_after(r, base), _cost_time_split(r)]
    wru = ", ".join(f"{k} {v:.1f}" for k, v in r["dynamodb_wru_per_meeting"].items())
    jobs = r["transcript_jobs_per_meeting"]
    notes = [
        f"Run: {r['meetings']} meetings end to end on the local stack ({r['outcomes']}), "
        f"{r['webhooks_per_meeting']:.1f} webhooks per meeting, {jobs:.2f} transcript "
        f"jobs per meeting. Per meeting: {usage['lambda_invocations']:.1f} Lambda invocations "
        f"({usage['lambda_gb_seconds']:.3f} GB-s at the template's memory sizes, durations measured here), "
        f"{usage['wru']:.1f} WRU and {usage['rru']:.1f} RRU, {usage['sqs_requests']:.1f} SQS requests, "
        f"{usage['s3_put']:.1f} S3 PUTs ({usage['s3_put'] / max(1e-9, jobs):.1f} per transcript job), "
        f"{usage['api_requests']:.1f} HTTP API requests, {usage.get('events', 0.0):.1f} EventBridge events, "
        f"{usage['log_bytes'] / 1024:.1f} KiB of logs.",
        f"DynamoDB write units per meeting: {wru} (largest item {r['largest_item_bytes']} bytes). Index writes "
        "follow the template's projections ("
        + ", ".join(f"{name} {kind}" for name, kind in r["index_projections"].items())
        + "): an entry is written when it appears, disappears, changes key or changes a projected attribute. "
        f"Had every index projected ALL attributes, the same writes would cost "
        f"{r['all_projected_wru_per_meeting']:.1f} WRU per meeting and "
        f"${r['meetpilot_total_per_1000_all_projected_indexes']:.4f} per 1,000 meetings.",
        "A session's item holds its state and its dedupe hashes (a binary set); its history is one small item per "
        "accepted event beside it, written once, and read with the session by one Query. A write sends only the "
        "attributes that changed, and the attention deadline moves only when something the reconciler looks at "
        "did (status, outcome, an unpublished outbox, its own checks).",
        f"If every SQS-triggered invocation carried one record (quiet traffic in AWS): "
        f"${r['meetpilot_total_per_1000_unbatched']:.4f} per 1,000 meetings.",
        _stream_note(r),
        f"Not per meeting: the reconcile (every 5 min) and calendar poll (every 10 min) schedules cost "
        f"${r['fixed_per_month']:.4f} a month as measured here; idle SQS long polling by Lambda's event source "
        "mappings is a further fixed cost not counted.",
        "SSM GetParameter is free for standard parameters at standard throughput; the SecureString decrypt behind "
        "it is priced as a KMS request.",
        "Original design's pattern, per meeting: one scheduled create invocation, every webhook through the HTTP API "
        "into a Lambda, 1 SSM read without cache, 1 PutItem, 3 UpdateItem per webhook, 1 Lambda invocation for the "
        "transcript (and 1 S3 PUT); durations are meetpilot's measured ones for the same jobs; 1 WRU per write "
        "(a lower bound).",
        f"Prices: bench/prices.json, public us-east-1 list prices compiled {r['prices_compiled']} from the AWS "
        "pricing pages it names.",
        f"Measured code: commit {r.get('commit', '?')}"
        + (
            f"; the baseline column is `python -m bench --only cost` run on commit {base.get('commit', '?')} with "
            "this same bench, its results.json kept as bench/baseline/cost-main.json."
            if base
            else "."
        ),
    ]
    return "\n\n".join(p for p in parts if p) + "\n\n" + "\n".join(f"- {n}" for n in notes if n)


def _cost_before_after(r: dict[str, Any], base: dict[str, Any] | None) -> str:
    """Figures of this run beside the baseline run's (``bench/baseline/cost-main.json``)."""

    def figures(x: dict[str, Any]) -> dict[str, str]:
        usage, jobs = x["per_meeting_usage"], x.get("calls_per_job") or {}
        out = {
            "USD per 1,000 meetings (as measured)": f"{x['meetpilot_total_per_1000']:.4f}",
            "USD per 1,000 meetings (every SQS batch one record)": f"{x['meetpilot_total_per_1000_unbatched']:.4f}",
            "DynamoDB WRU per meeting": f"{usage['wru']:.1f}",
            "DynamoDB RRU per meeting": f"{usage['rru']:.1f}",
            "largest item (bytes)": str(x["largest_item_bytes"]),
            "Lambda GB-s per meeting": f"{usage['lambda_gb_seconds']:.3f}",
        }
        idle = x.get("meetpilot_total_per_1000_idle_emulator")
        if idle is not None:
            out["USD per 1,000 meetings (calls at the idle emulator's answer time)"] = f"{idle:.4f}"
            out["Lambda GB-s per meeting (calls at the idle emulator's answer time)"] = (
                f"{x['lambda_gb_seconds_per_meeting_idle_emulator']:.3f}"
            )
        for job in ("dispatch", "webhook", "transcript"):
            if job in jobs:
                detail = ", ".join(f"{k.split('.')[-1]} {v:.2f}" for k, v in jobs[job].items() if k != "total")
                out[f"AWS calls per {job}"] = f"{jobs[job]['total']:.2f} ({detail})"
        for op, n in (x.get("requests_per_meeting") or {}).items():
            out[f"{op} per meeting"] = f"{n:.2f}"
        return out

    now = figures(r)
    if base is None:
        return _table(["per meeting", "this run"], [[k, v] for k, v in now.items()])
    before = figures(base)
    names = list(dict.fromkeys([*before, *now]))
    rows = [[k, before.get(k, "0"), now.get(k, "0")] for k in names]
    return _table(["", f"before (commit {base.get('commit', '?')}, measured)", "this run"], rows)


def _cost_time_split(r: dict[str, Any]) -> str:
    split = r.get("time_split_ms_per_invocation")
    if not split:
        return ""
    rows = [
        [name, f"{v['records']:.1f}", f"{v['billed wall']:.0f}", f"{v['waiting for the emulator']:.0f}",
         f"{v['handler thread CPU']:.0f}", f"{v['meter (left out)']:.0f}"]
        for name, v in sorted(split.items())
    ]  # fmt: skip
    busy = r.get("cpu_busy_during_run")
    head = ["ms per invocation", "records", "billed (wall)", "waiting for the emulator", "handler thread CPU",
            "the meter (left out)"]  # fmt: skip
    note = (
        "Lambda bills wall time. The durations are the handlers' wall time on this machine, less the time the "
        "meter itself spends reading item images around each write (not the product's work). Most of what is "
        "left is waiting for the emulator, one moto process answering every handler on the same cores"
        + (f" (the machine's CPU was {busy:.0%} busy during the run, every process counted)" if busy else "")
        + "; in AWS a DynamoDB call from Lambda takes a few milliseconds. The figure is kept as measured, not "
        "replaced by an assumed latency: it is an upper bound for the duration cost."
    )
    if "idle_emulator_call_ms" in r:
        note += (
            f" A second figure, also measured: the emulator answers one call in {r['idle_emulator_call_ms']:.1f} ms "
            "when no handler of the run is calling it (median of a small write and read, one after another, "
            "before the run; other processes on the machine still compete for its cores, so this too follows "
            "the machine's load); with every handler call taking that long instead of queueing behind the other "
            f"handlers' calls, the run takes {r['lambda_gb_seconds_per_meeting_idle_emulator']:.3f} GB-s per "
            f"meeting and costs ${r['meetpilot_total_per_1000_idle_emulator']:.4f} per 1,000 meetings."
        )
    return _table(head, rows) + "\n\n" + note


def _stream_note(r: dict[str, Any]) -> str:
    streams = r.get("stream_functions") or []
    if not streams:
        return (
            "Events are published by the handlers (an outbox on the session item, then PutEvents); no function in "
            "the template reads the table's stream. A stream publisher would be priced here: one invocation per "
            "stream batch (reading the stream from Lambda is free) and its PutEvents, billed per event."
        )
    inv, rec = r["invocations"], r["records"]
    counts = ", ".join(f"{f} {inv.get(f, 0)} invocations for {rec.get(f, 0)} stream records" for f in streams)
    return (
        f"Stream publisher: {counts}; reading the stream from Lambda is free, its PutEvents are billed per event, "
        "and with one change per batch (quiet traffic) each record is one invocation (in the bound above)."
    )


SECTIONS = {
    "punctuality": ("1. Punctuality under a burst", punctuality_section),
    "intake": ("2. Webhook intake", intake_section),
    "transcripts": ("3. Transcript scaling", transcripts_section),
    "cost": ("4. Cost per 1,000 meetings", cost_section),
}


def markdown(results: dict[str, Any], host: dict[str, Any], command: str, plots: list[str]) -> str:
    out = [
        "# meetpilot benchmarks",
        "",
        f"Generated by `{command}` on {host['date']}: {host['cores']} cores ({host['machine']}), "
        f"{host['implementation']} {host['python']}, {host['platform']}; whole run {host['bench_seconds']:.0f} s. "
        f"Load average before / after: {host['load_average_before']} / {host.get('load_average_after')} "
        "(other work on this machine shares its cores and shows up in wall-clock figures).",
        "",
        "Every figure below is measured by this run; nothing is typed in. Raw numbers: `results.json`.",
        "",
        "## Targets",
        "",
    ]
    for name, result in results.items():
        out += [f"### {SECTIONS[name][0]}", "", _targets(name, result), ""]
    for name, result in results.items():
        title, section = SECTIONS[name]
        out += [f"## {title}", "", section(result), ""]
        for plot in plots:
            if plot.startswith(name):
                out += [f"![{name}]({plot})", ""]
    return "\n".join(out)


# --- plots ---------------------------------------------------------------------------------------


def plots(results: dict[str, Any], folder: Path) -> list[str]:
    """PNG plots where a curve says more than a table; none when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed; no plots", file=sys.stderr)
        return []
    written: list[str] = []
    if "punctuality" in results:
        r = results["punctuality"]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for key, label in (("meetpilot", "meetpilot"), ("original", "original design")):
            side = r[key]
            offsets = side["created_offsets_seconds"]
            if key == "original":
                label += f": {side['bots_created']} created, {side['lost']} lost"
            ax.step(offsets, range(1, len(offsets) + 1), where="post", label=label, linewidth=2)
        rate, meetings = r["config"]["rate_per_second"], r["config"]["meetings"]
        end = r["physical_limit_seconds"]
        ax.plot([0, end], [min(meetings, rate), meetings], "--", color="grey", label=f"provider limit ({rate:g}/s)")
        ax.set_xlabel("seconds after the dispatch was due")
        ax.set_ylabel("bots created")
        ax.set_title(f"{meetings} meetings in one minute, provider admits {rate:g} creates/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "punctuality.png", dpi=110)
        plt.close(fig)
        written.append("punctuality.png")
    if "transcripts" in results:
        rows = results["transcripts"]["rows"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
        sizes = [row["size_mb"] for row in rows]
        left.plot(sizes, [row["peak_rss_mb"] for row in rows], "o-")
        left.set_xscale("log")
        left.set_xlabel("transcript MB")
        left.set_ylabel("peak RSS MB")
        left.set_ylim(bottom=0)
        right.plot(sizes, [row["mb_per_second"] for row in rows], "o-")
        right.axhline(20, linestyle="--", color="grey", label="target 20 MB/s")
        right.set_xscale("log")
        right.set_xlabel("transcript MB")
        right.set_ylabel("MB/s")
        right.set_ylim(bottom=0)
        right.legend()
        fig.suptitle("transcript_fetch: memory and speed by size")
        fig.tight_layout()
        fig.savefig(folder / "transcripts.png", dpi=110)
        plt.close(fig)
        written.append("transcripts.png")
    if "cost" in results:
        r = results["cost"]
        services = [s for s in r["meetpilot_per_1000"] if r["meetpilot_per_1000"][s] or r["original_per_1000"][s]]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        bottoms = [0.0, 0.0]
        for service in services:
            values = [r["meetpilot_per_1000"][service], r["original_per_1000"][service]]
            ax.bar(["meetpilot", "original design"], values, bottom=bottoms, label=service)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        ax.axhline(0.10, linestyle="--", color="grey")
        ax.set_ylabel("USD per 1,000 meetings")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(folder / "cost.png", dpi=110)
        plt.close(fig)
        written.append("cost.png")
    return written
