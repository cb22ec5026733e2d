"""The simulator's live-transcription plan: interim then final results, spread over the meeting."""

from __future__ import annotations

from datetime import UTC, datetime

from meetpilot_dev.simulator.live import live_plan, live_webhook_url

START = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_each_segment_gets_an_interim_then_a_final_result_within_the_meeting() -> None:
    plan = live_plan("bot-1", segments=3, started_at=START, meeting_seconds=60.0, custom_attributes={"k": "v"})
    assert [d.payload["is_final"] for d in plan] == [False, True] * 3
    assert [d.after for d in plan] == sorted(d.after for d in plan)
    assert all(0 < d.after < 60.0 for d in plan)
    for interim, final in zip(plan[::2], plan[1::2], strict=True):
        assert final.payload["new_text"].startswith(interim.payload["new_text"].rstrip(".?!"))
        assert final.payload["end_of_turn"] is True and final.payload["custom_attributes"] == {"k": "v"}
        assert final.payload["timestamp"] == interim.payload["timestamp"]


def test_the_plan_is_deterministic_per_bot_and_can_be_empty() -> None:
    def texts(bot: str) -> list[str]:
        return [
            d.payload["new_text"]
            for d in live_plan(bot, segments=2, started_at=START, meeting_seconds=30, custom_attributes={})
        ]

    assert texts("bot-1") == texts("bot-1") != texts("bot-2")
    assert live_plan("bot-1", segments=0, started_at=START, meeting_seconds=30, custom_attributes={}) == []
    only_finals = live_plan("b", segments=2, started_at=START, meeting_seconds=30, custom_attributes={}, interim=False)
    assert [d.payload["is_final"] for d in only_finals] == [True, True]


def test_only_bots_that_asked_for_it_stream() -> None:
    assert live_webhook_url({"live_transcription_required": {"webhook_url": "https://x/live"}}) == "https://x/live"
    assert live_webhook_url({}) is None
    assert live_webhook_url({"live_transcription_required": {"websocket_url": "wss://x"}}) is None
