"""The benchmark helpers that need no stack: item sizes, prices, the transcript generator, the report."""

from __future__ import annotations

import json

from bench import cost, report, transcripts


def test_dynamodb_item_size_follows_the_documented_rules():
    assert cost.item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert cost.item_size({"n": {"N": "12345"}}) == 1 + 4  # 5 digits: 3 bytes + 1
    assert cost.item_size({"ok": {"BOOL": True}}) == 2 + 1
    assert cost.item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + 1 + 1 + 2
    assert cost.units(0, 1024) == 1 and cost.units(1025, 1024) == 2 and cost.units(4096, 4096) == 1


def test_price_table_names_its_date_and_a_source_per_service():
    prices = cost.load_prices()
    assert prices["region"] == "us-east-1" and prices["compiled"]
    for name, entry in prices.items():
        if isinstance(entry, dict):
            assert entry["source"].startswith("https://aws.amazon.com/"), name


def test_price_lines_scale_linearly_with_usage():
    prices = cost.load_prices()
    one = dict.fromkeys(cost.USAGE_KEYS, 1.0)
    two = {k: 2 * v for k, v in one.items()}
    lines_one, lines_two = cost.price_lines(one, prices), cost.price_lines(two, prices)
    assert set(lines_one) == set(lines_two)
    for service, dollars in lines_one.items():
        assert abs(lines_two[service] - 2 * dollars) < 1e-12, service
    assert lines_one["SSM GetParameter"] == 0.0  # standard parameters are free to read


def test_generated_transcript_has_the_asked_size_speakers_and_span(tmp_path):
    path = tmp_path / "t.json"
    figures = transcripts.write_transcript(path, 300_000, speakers=50, seed=3)
    segments = json.loads(path.read_text())
    assert abs(figures["bytes"] - 300_000) < 5_000
    assert len(segments) == figures["segments"]
    assert len({s["speaker"] for s in segments}) == 50
    assert 7.5 * 3600 <= figures["span_seconds"] <= 8 * 3600
    starts = [s["start_time"] for s in segments]
    assert starts == sorted(starts)
    assert all(s["words"] and s["end_time"] >= s["start_time"] for s in segments)


def test_report_marks_each_target_met_or_not():
    result = {
        "rows": [
            {"size_mb": 1, "peak_rss_mb": 80.0, "mb_per_second": 25.0},
            {"size_mb": 100, "peak_rss_mb": 90.0, "mb_per_second": 15.0},
        ],
        "rss_growth_mb": 10.0,
        "slowest_mb_per_second": 15.0,
    }
    text = report._targets("transcripts", result)
    assert "10.0 MB | met" in text
    assert "15.0 MB/s (slowest) | **not met**" in text


def test_index_writes_follow_the_projection():
    from bench.cost import Index

    def s(text):
        return {"S": text}

    before = {"pk": s("SESSION#1"), "sk": s("SESSION"), "bot_id": s("b1"), "history": s("x" * 3000)}
    after = {**before, "history": s("y" * 3000)}
    moved = {**after, "bot_id": s("b2")}
    keys_only = Index("by-bot", ("bot_id",), "KEYS_ONLY", ())
    everything = Index("by-bot", ("bot_id",), "ALL", ())
    include = Index("by-bot", ("bot_id",), "INCLUDE", ("history",))
    assert keys_only.writes(before, after) == 0  # only an unprojected attribute changed
    assert everything.writes(before, after) == 3  # the whole 3 KB item is written again
    assert include.writes(before, after) == 3
    assert keys_only.writes(after, moved) == 2  # new key: the old entry goes, a new one comes
    assert keys_only.writes(None, before) == 1 and keys_only.writes(before, None) == 1
    assert keys_only.writes({"pk": s("M"), "sk": s("M")}, {"pk": s("M"), "sk": s("M")}) == 0  # not in the index


def test_binary_attributes_count_their_bytes():
    assert cost.item_size({"seen": {"BS": [b"\x00" * 10, b"\x01" * 10]}}) == 4 + 20
    assert cost.item_size({"b": {"B": b"abc"}}) == 1 + 3


class _SlowSide:
    """Stands in for the meter's unmetered client: each item image it reads takes 30 ms."""

    def get_item(self, **_):
        import time

        time.sleep(0.03)
        return {}


def _model(service, operation):
    from types import SimpleNamespace

    return SimpleNamespace(name=operation, service_model=SimpleNamespace(service_name=service))


def test_an_invocations_duration_leaves_out_the_meters_own_reads():
    meter = cost.Meter(cost.DynamoMeter(_SlowSide(), []))
    meter.on = True
    put = _model("dynamodb", "PutItem")

    def handler(event, context):
        for _ in range(3):  # three writes: the meter reads an image before and after each (180 ms)
            params = {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}
            meter._before(put, params)
            meter._after(put, {})
        return "done"

    context = type("C", (), {"function_name": "BotEventsFunction"})()
    assert meter.metered(handler)({"Records": [{}, {}]}, context) == "done"
    assert meter.invocations["BotEventsFunction"] == 1 and meter.records["BotEventsFunction"] == 2
    assert meter.overhead["BotEventsFunction"] >= 0.18
    assert meter.durations["BotEventsFunction"][0] < 0.05  # the handler itself did next to nothing
    assert meter.calls[("BotEventsFunction", "dynamodb", "PutItem")] == 3
    per_job = cost.calls_per_job(meter, webhooks=2)
    assert per_job["webhook"] == {"total": 1.5, "dynamodb.PutItem": 1.5}  # 3 calls for 2 webhooks
    assert per_job["dispatch"] == {"total": 0.0}


def test_put_events_are_billed_per_entry_chunk():
    meter = cost.Meter(cost.DynamoMeter(_SlowSide(), []))
    meter.on = True
    entries = [{"Detail": "x" * 100}, {"Detail": "y" * 70_000}]  # the second is two 64 KB chunks
    meter.set_role("StreamPublisherFunction")
    meter._before(_model("events", "PutEvents"), {"Entries": entries})
    meter._after(_model("events", "PutEvents"), {"FailedEntryCount": 0})
    assert meter.event_chunks["StreamPublisherFunction"] == 3
    prices = cost.load_prices()
    usage = {**dict.fromkeys(cost.USAGE_KEYS, 0.0), "events": 1e6}
    assert cost.price_lines(usage, prices)["EventBridge events"] == prices["eventbridge"]["per_million_events"]
