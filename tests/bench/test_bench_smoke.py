"""Each benchmark at tiny sizes: the runners work and their numbers agree with each other.

No timing thresholds: these only prove that the benchmarks cannot rot.
"""

from __future__ import annotations

import math

from bench.__main__ import main

from bench import cost, intake, punctuality, transcripts


def test_burst_benchmark_counts_every_meeting_once():
    cfg = punctuality.BurstConfig(meetings=20, rate_per_second=5.0, window_seconds=60, calibration_meetings=10)
    result = punctuality.run(cfg)
    ours, original = result["meetpilot"], result["original"]
    # The calibration burst dispatched every meeting, and the dispatch function's calls were counted.
    calibration = result["emulator"]
    assert calibration["lost"] == 0 and calibration["creates_per_second"] > 0
    assert calibration["calls_per_meeting"]["dynamodb.UpdateItem"] >= 1
    cfg = punctuality.sustainable(cfg, calibration)[0]
    assert ours["bots_created"] + ours["lost"] == cfg.meetings
    assert ours["duplicate_bots"] == 0
    assert ours["create_attempts"] == ours["bots_created"] + ours["rate_limited_429"]
    assert ours["on_time"] <= ours["bots_created"]
    assert ours["meeting_states"].get("dispatched", 0) == ours["bots_created"]
    offsets = ours["created_offsets_seconds"]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert math.isclose(ours["throughput_per_second"], len(offsets) / offsets[-1])
    # The original design never retries: every 429 is a lost bot, every call either.
    assert original["bots_created"] + original["lost"] == cfg.meetings
    assert original["create_attempts"] == cfg.meetings, original["outcomes"]
    assert original["lost"] == original["rate_limited_429"]
    assert result["physical_limit_seconds"] == cfg.meetings / cfg.rate_per_second
    assert punctuality.targets(result)


def test_intake_benchmark_serves_every_delivery_and_each_handler_cold():
    cfg = intake.IntakeConfig(deliveries=100, warmup=20, cold_repeats=1, importtime=False)
    result = intake.run(cfg)
    for mode in ("stub", "sqs"):
        warm = result["warm"][mode]
        assert warm["deliveries"] == cfg.deliveries and warm["statuses"] == {"200": cfg.deliveries}
        assert 0 < warm["p50_ms"] <= warm["p90_ms"] <= warm["p99_ms"] <= warm["max_ms"]
    assert result["warm"]["stub"]["stub_sends"] == cfg.deliveries + cfg.warmup
    assert result["warm"]["sqs"]["stub_sends"] == 0
    rows = result["cold"]["rows"]
    assert set(rows) == {*intake.HANDLERS, *(f"{name} baseline" for name in intake.HANDLERS)}
    diagnosis = result["cold"]["diagnosis"]
    for name in intake.HANDLERS:
        row, base = rows[name], rows[f"{name} baseline"]
        assert row["process_ms"] > row["init_and_event_ms"] > 0
        assert math.isclose(row["ratio_process"], row["process_ms"] / base["process_ms"])
        assert 'Failures": [{' not in row["responses"][0]  # the one event was served, not failed
        # The baseline replays what the handler did: the same clients and calls, recorded both times.
        assert diagnosis[name]["call_list"], name
        assert diagnosis[name]["baseline_calls_match"], (diagnosis[name]["call_list"], diagnosis[f"{name} baseline"])
    assert any(c.startswith("POST ") for c in diagnosis["dispatch"]["call_list"])  # create_bot
    assert '"statusCode": 200' in rows["ingest"]["responses"][0]


def test_transcript_benchmark_stores_every_turn_of_each_size():
    result = transcripts.run(transcripts.TranscriptConfig(sizes_mb=(1, 2), profile_size_mb=1))
    for row in result["rows"]:
        assert row["outcome"] == "transcript_stored"
        assert row["turns_stored"] == row["segments"] and row["speakers_stored"] == 50
        assert abs(row["raw_bytes"] - row["size_mb"] * transcripts.MB) < 0.01 * transcripts.MB
        assert row["download_seconds"] + row["upload_seconds"] <= row["seconds"]
        assert math.isclose(row["mb_per_second"], row["raw_bytes"] / transcripts.MB / row["seconds"])
    assert math.isclose(result["rss_growth_mb"], result["rows"][-1]["peak_rss_mb"] - result["rows"][0]["peak_rss_mb"])
    assert result["profile"]


def test_cost_benchmark_prices_what_it_counted():
    result = cost.run(cost.CostConfig(meetings=3, timeout_seconds=90, speed=240.0))
    assert result["outcomes"] == {"transcript_stored": 3}
    usage = result["per_meeting_usage"]
    assert usage["s3_put"] >= 4  # raw, json, txt, vtt
    assert usage["scheduler_invocations"] == 1 and usage["api_requests"] == result["webhooks_per_meeting"]
    assert usage["wru"] > 0 and usage["rru"] > 0 and usage["sqs_requests"] > 0
    assert math.isclose(result["meetpilot_total_per_1000"], sum(result["meetpilot_per_1000"].values()))
    assert math.isclose(result["original_total_per_1000"], sum(result["original_per_1000"].values()))
    assert result["meetpilot_total_per_1000_unbatched"] >= result["meetpilot_total_per_1000"]
    assert result["fixed_per_month"] > 0
    assert result["meetpilot_total_per_1000_all_projected_indexes"] >= result["meetpilot_total_per_1000"]
    wru = result["dynamodb_wru_per_meeting"]
    assert math.isclose(sum(wru.values()), usage["wru"])
    jobs = result["calls_per_job"]
    assert jobs["dispatch"]["total"] > 0 and jobs["webhook"]["total"] > 0 and jobs["transcript"]["total"] > 0
    assert result["baseline"] is not None and result["baseline"]["commit"]  # the kept run of the old code
    for name, split in result["time_split_ms_per_invocation"].items():
        assert split["billed wall"] >= 0 and split["waiting for the emulator"] >= 0, name
    assert result["idle_emulator_call_ms"] > 0
    assert result["meetpilot_total_per_1000_idle_emulator"] > 0


def test_bench_command_writes_results(tmp_path):
    assert main(["--quick", "--only", "transcripts", "--no-plots", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## 3. Transcript scaling" in text and "python -m bench --only transcripts --quick" in text
    assert (tmp_path / "results.json").exists()
