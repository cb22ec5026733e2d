"""Run the benchmarks and write ``bench/RESULTS.md`` (and ``results.json``, PNG plots).

python -m bench                 # all four, full sizes
python -m bench --only cost     # one of: punctuality, intake, transcripts, cost
python -m bench --quick         # tiny sizes (what the smoke tests use)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bench import cost, intake, punctuality, report, transcripts

HERE = Path(__file__).resolve().parent
NAMES = ("punctuality", "intake", "transcripts", "cost")


def configs(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "punctuality": punctuality.BurstConfig(
                meetings=20, rate_per_second=5.0, window_seconds=60, calibration_meetings=10
            ),
            "intake": intake.IntakeConfig(deliveries=300, warmup=20, cold_repeats=1, importtime=False),
            "transcripts": transcripts.TranscriptConfig(sizes_mb=(1, 2), profile_size_mb=None),
            "cost": cost.CostConfig(meetings=3, timeout_seconds=90, speed=120.0),
        }
    return {
        "punctuality": punctuality.BurstConfig(),
        "intake": intake.IntakeConfig(),
        "transcripts": transcripts.TranscriptConfig(),
        "cost": cost.CostConfig(),
    }


RUNNERS = {"punctuality": punctuality.run, "intake": intake.run, "transcripts": transcripts.run, "cost": cost.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=NAMES, action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md, results.json and plots go")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: render RESULTS.md and plots from results.json"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads((args.out / "results.json").read_text())
        plots = [] if args.no_plots else report.plots(saved["results"], args.out)
        command = saved.get("command", "make bench")
        (args.out / "RESULTS.md").write_text(report.markdown(saved["results"], saved["machine"], command, plots))
        return 0
    logging.basicConfig(level=logging.WARNING)
    # Parallel schedule delivery opens more connections than botocore's pool keeps; harmless.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    chosen = args.only or list(NAMES)
    settings = configs(args.quick)
    machine = report.machine()
    started = time.monotonic()
    results: dict[str, Any] = {}
    for name in chosen:
        print(f"bench: {name} ...", flush=True)
        begun = time.monotonic()
        results[name] = RUNNERS[name](settings[name])
        print(f"bench: {name} done in {time.monotonic() - begun:.0f} s", flush=True)
    machine["load_average_after"] = report.load_average()
    machine["bench_seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = [] if args.no_plots else report.plots(results, args.out)
    command = (
        "make bench"
        if not (args.only or args.quick)
        else "python -m bench "
        + " ".join(([f"--only {n}" for n in args.only or []]) + (["--quick"] if args.quick else []))
    )
    saved = {"command": command, "machine": machine, "results": results}
    (args.out / "results.json").write_text(json.dumps(saved, indent=1, default=str))
    (args.out / "RESULTS.md").write_text(report.markdown(results, machine, command, plots))
    print(f"bench: wrote {args.out / 'RESULTS.md'} in {machine['bench_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
