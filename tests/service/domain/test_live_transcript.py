"""Reading live-transcription deliveries: only final results count, a repeat has the same id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meetpilot.domain.live_transcript import NotFinal, live_turns, parse_live_delivery, segment_id

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
FINAL = {
    "bot_id": "bot-1",
    "speakerName": "Ada  Lovelace",
    "timestamp": "2026-05-04T09:58:00Z",
    "transcript": "the whole running buffer",
    "new_text": " We ship  on Friday. ",
    "words": [{"word": "we", "punctuated_word": "We", "start": 12.5, "end": 12.7, "confidence": 0.9}, {"word": "x"}],
    "is_final": True,
}


def test_interim_results_are_not_kept() -> None:
    with pytest.raises(NotFinal):
        parse_live_delivery({**FINAL, "is_final": False}, NOW)


def test_a_final_result_reads_speaker_text_time_and_word_timings() -> None:
    segment = parse_live_delivery(FINAL, NOW)
    assert (segment.speaker, segment.text) == ("Ada Lovelace", "We ship on Friday.")
    assert segment.spoken_at == datetime(2026, 5, 4, 9, 58, tzinfo=UTC)
    assert (segment.start, segment.end) == (12.5, 12.7)
    assert [w["punctuated_word"] for w in segment.words] == ["We", "x"]


def test_end_of_turn_also_marks_a_final_result_and_missing_times_fall_back_to_arrival() -> None:
    segment = parse_live_delivery({"end_of_turn": True, "utterance": "hi", "timestamp": "soon"}, NOW)
    assert segment.text == "hi" and segment.spoken_at == NOW and segment.speaker == "Unknown speaker"


def test_a_repeat_has_the_same_id_and_any_difference_a_new_one() -> None:
    first = parse_live_delivery(FINAL, NOW)
    assert parse_live_delivery(dict(FINAL), datetime(2027, 1, 1, tzinfo=UTC)).segment_id == first.segment_id
    assert parse_live_delivery({**FINAL, "timestamp": "2026-05-04T09:58:01Z"}, NOW).segment_id != first.segment_id
    assert parse_live_delivery({**FINAL, "bot_id": "bot-2"}, NOW).segment_id != first.segment_id
    assert segment_id("b", "t", "x") != segment_id("b", "t", "y")


def test_a_final_result_without_text_is_refused() -> None:
    with pytest.raises(ValueError, match="without text"):
        parse_live_delivery({"is_final": True, "new_text": "  "}, NOW)


def test_segments_without_word_timings_are_placed_by_when_they_were_spoken() -> None:
    a = parse_live_delivery({"is_final": True, "new_text": "one", "timestamp": "2026-05-04T10:00:00Z"}, NOW)
    b = parse_live_delivery({"is_final": True, "new_text": "two", "timestamp": "2026-05-04T10:00:07Z"}, NOW)
    turns = list(live_turns([a, b]))
    assert [(t.text, t.start) for t in turns] == [("one", 0.0), ("two", 7.0)]
