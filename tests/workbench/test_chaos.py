"""A small chaos run: every fault kind injected, every invariant checked from the stores."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from meetpilot_dev.chaos import ChaosRates, run_chaos
from meetpilot_dev.cli import app


def test_small_chaos_run_keeps_every_invariant():
    # Rates higher than the default so each kind of fault shows up in a small run.
    rates = ChaosRates(
        duplicate_webhook=0.2, reorder_webhook=0.2, drop_webhook=0.1, rate_limit=0.15, server_error=0.1,
        timeout=0.03, not_admitted=0.1, denied=0.1, handler_crash=0.05, ddb_throttle=0.03,
    )  # fmt: skip
    # 16 meetings show every fault kind; the run ends once all are final, the cap is for a hang.
    report = run_chaos(16, rates=rates, seed=11, timeout=600)
    table = "\n".join(" | ".join(row) for row in report.rows())
    assert report.ok, table + "\n" + "\n".join(report.wrong_final_state + report.lost)
    assert report.duplicate_bots == 0 and not report.lost and not report.wrong_final_state
    assert report.bots_created == report.to_record == 16
    for kind in ("duplicate_webhook", "reorder_webhook", "drop_webhook", "rate_limit", "handler_crash"):
        assert report.faults.get(kind, 0) > 0, (kind, report.faults)


def test_chaos_command_keeps_the_functions_output_in_its_log_and_the_console_for_its_table(tmp_path: Path):
    result = CliRunner().invoke(app, ["chaos", "--meetings", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], lines  # no JSON on the console
    assert "meetpilot chaos: 3 meetings" in result.stdout
    assert f"log: {(tmp_path / 'chaos.log').resolve()}" in lines
    log = (tmp_path / "chaos.log").read_text().splitlines()
    assert any(line.startswith('{"_aws"') for line in log)  # the functions' metric lines went there
