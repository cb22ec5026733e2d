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
            "bottleneck; the dispatch side was. Each dispatch record is a chain of sequential calls (claim, session, "
            "create_bot, the status event's publish and outbox write), all but one answered by the single emulator "
            "process that shares this machine's 2 cores with everything else, so the records per second follow the "
            f"emulator's speed more than the {pollers} pollers."
        )
    emulator = r.get("emulator")
    if emulator:
        notes.insert(
            0,
            f"Emulator on this machine: {emulator['chains_per_second']:.1f} dispatch-shaped chains of "
            f"{emulator['calls_per_chain']} AWS calls a second from {emulator['threads']} threads. "
            + (r.get("rate_note") or "That is at least twice the provider's rate: the burst runs at it."),
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
        ratio = "1.00x" if name == "boto3 baseline" else f"{row['ratio_process']:.2f}x"
        in_process = "1.00x" if name == "boto3 baseline" else f"{row['ratio_in_process']:.2f}x"
        crow.append([name, f"{row['process_ms']:.0f}", ratio, f"{row['import_ms']:.0f}",
                     f"{row['first_event_ms']:.0f}", f"{row['init_and_event_ms']:.0f}", in_process])  # fmt: skip
    cold_table = _table(
        ["cold start", "process ms", "vs baseline", "import ms", "first event ms", "import + event ms",
         "vs baseline (in process)"],
        crow,
    )  # fmt: skip
    parts = [warm_table, cold_table]
    notes = [
        f"Baseline: a fresh process that runs `{cold['baseline']}`. Each cold start is a fresh process that imports "
        "the handler module and serves one real event against the local stack (emulator and simulator on "
        f'loopback); median of {next(iter(cold["rows"].values()))["runs"]} runs, interleaved. "process ms" is spawn '
        f'to exit (an empty interpreter takes {cold["interpreter_ms"]:.0f} ms); "in process" leaves the '
        "interpreter's start out.",
        "Warm: one process serves every delivery in turn (per-bot callback URL with its capability token, "
        f"{r['config']['warmup']} warm-up deliveries first); wall time per call, and the thread's CPU time, which "
        "leaves out time spent waiting for a core on this shared machine.",
    ]
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
            "AWS calls and provider calls timed; ms):\n\n" + _table(DIAGNOSIS_HEADER, drows)
        )
        base = diagnosis["boto3 baseline"]
        worst = max((n for n in diagnosis if n != "boto3 baseline"), key=lambda n: diagnosis[n]["total_ms"])
        w = diagnosis[worst]
        notes.append(
            f"Why the ratios: the baseline creates {base['clients']} client and calls nothing; {worst} creates "
            f"{w['clients']} clients ({w['client_ms']:.0f} ms), makes {w['aws_calls']} AWS calls "
            f"({w['aws_call_ms']:.0f} ms on the emulator) and {w['http_calls']} provider calls, and imports "
            f"{w['imports_ms']:.0f} ms of modules against the baseline's {base['imports_ms']:.0f} ms. Each extra boto3 "
            "client costs about as much as the first one's creation in the baseline."
        )
    return "\n\n".join(parts) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def transcripts_section(r: dict[str, Any]) -> str:
    rows = []
    for row in r["rows"]:
        rows.append([row["size_mb"], row["segments"], row["speakers_stored"], f"{row['span_hours']:.1f}",
                     row["outcome"], f"{row['seconds']:.2f}", f"{row['mb_per_second']:.1f}",
                     f"{row['download_seconds']:.2f}", f"{row['upload_seconds']:.2f}", f"{row['other_seconds']:.2f}",
                     f"{row['peak_rss_mb']:.1f}"])  # fmt: skip
    table = _table(
        ["MB", "segments", "speakers", "hours", "outcome", "seconds", "MB/s", "download s", "4 uploads s",
         "gzip + parse + render + DB s", "peak RSS MB"],
        rows,
    )  # fmt: skip
    first, last = r["rows"][0], r["rows"][-1]
    notes = [
        f"Peak RSS grows by {r['rss_growth_mb']:.1f} MB from {first['size_mb']} MB to {last['size_mb']} MB "
        f"(whole child process, {first.get('peak_source', 'getrusage')}; the body is spooled to disk and parsed "
        "segment by segment). The peak is the kernel's VmHWM, reset when the child starts, where available: "
        "`resource.getrusage` alone would report the parent's peak, which Linux carries into a child across exec.",
        "MB = 2^20 bytes; MB/s = raw transcript bytes over the handler's wall time with warm clients. The body comes "
        "from a loopback server playing MeetStream's get_transcript; S3 and DynamoDB are the emulator.",
    ]
    parts = [table]
    if r.get("profile"):
        prow = [[name, f"{own:.3f}", calls] for name, own, calls in r["profile"]]
        parts.append(
            f"Where the time goes at {r['profile_size_mb']} MB (cProfile, own time, one extra run):\n\n"
            + _table(["function", "own s", "calls"], prow)
        )
        if r["slowest_mb_per_second"] < 20:
            notes.append(
                f"Why below 20 MB/s: at {last['size_mb']} MB, {last['other_seconds']:.1f} s of "
                f"{last['seconds']:.1f} s is CPU work in Python (gzip of the raw copy, per-word normalisation, "
                "JSON encoding of every turn), not I/O; at 1 MB the four uploads and the session writes are a "
                "fixed cost that dominates."
            )
    return "\n\n".join(parts) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def cost_section(r: dict[str, Any]) -> str:
    ours, orig = r["meetpilot_per_1000"], r["original_per_1000"]
    rows = [[service, f"{ours[service]:.4f}", f"{orig[service]:.4f}"] for service in ours]
    rows.append(["**total**", f"**{r['meetpilot_total_per_1000']:.4f}**", f"**{r['original_total_per_1000']:.4f}**"])
    table = _table(["USD per 1,000 meetings", "meetpilot (measured)", "original design (its request pattern)"], rows)
    usage = r["per_meeting_usage"]
    req = _table(["requests per meeting", "count"], [[k, f"{v:.2f}"] for k, v in r["requests_per_meeting"].items()])
    wru = ", ".join(f"{k} {v:.1f}" for k, v in r["dynamodb_wru_per_meeting"].items())
    notes = [
        f"Run: {r['meetings']} meetings end to end on the local stack ({r['outcomes']}), "
        f"{r['webhooks_per_meeting']:.1f} webhooks per meeting, {r['transcript_jobs_per_meeting']:.2f} transcript "
        f"jobs per meeting. Per meeting: {usage['lambda_invocations']:.1f} Lambda invocations "
        f"({usage['lambda_gb_seconds']:.3f} GB-s at the template's memory sizes, durations measured here), "
        f"{usage['wru']:.1f} WRU and {usage['rru']:.1f} RRU, {usage['sqs_requests']:.1f} SQS requests, "
        f"{usage['s3_put']:.1f} S3 PUTs, {usage['api_requests']:.1f} HTTP API requests, "
        f"{usage['log_bytes'] / 1024:.1f} KiB of logs.",
        f"S3 PUTs per stored transcript: {usage['s3_put'] / max(1e-9, r['transcript_jobs_per_meeting']):.1f} per "
        f"job, {usage['s3_put']:.1f} per meeting: every transcript job beyond the first for a session (they race "
        "when two deliveries for one session are applied at once) uploads the four objects again.",
        f"DynamoDB write units per meeting: {wru} (largest item {r['largest_item_bytes']} bytes). Index writes "
        "follow the template's projections ("
        + ", ".join(f"{name} {kind}" for name, kind in r["index_projections"].items())
        + "): an entry is written when it appears, disappears, changes key or changes a projected attribute. "
        f"Had every index projected ALL attributes, the same writes would cost "
        f"{r['all_projected_wru_per_meeting']:.1f} WRU per meeting and "
        f"${r['meetpilot_total_per_1000_all_projected_indexes']:.4f} per 1,000 meetings.",
        f"If every SQS-triggered invocation carried one record (quiet traffic in AWS): "
        f"${r['meetpilot_total_per_1000_unbatched']:.4f} per 1,000 meetings.",
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
    ]
    return table + "\n\n" + req + "\n\n" + "\n".join(f"- {n}" for n in notes)


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
