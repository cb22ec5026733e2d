"""Transcripts: three envelopes, a streaming reader in bounded memory, and the JSON/text/VTT writer."""

import io
import json
import re
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetpilot.domain.transcript import (
    UNKNOWN_SPEAKER,
    TranscriptSummary,
    TranscriptWriter,
    Turn,
    Word,
    iter_segments,
    normalise_segment,
    normalise_transcript,
    render_json,
    render_text,
    render_vtt,
)
from meetpilot.errors import TranscriptFormatError

NOT_A_TRANSCRIPT = "transcript body is neither a JSON array nor an object with a 'transcript' or 'message' array"

SEGMENTS = [
    {
        "speaker": "Ada Lovelace",
        "transcript": 'Hello, everyone [laughs] {quietly}, "quoted" and a back\\slash.',
        "start_time": 0.5,
        "end_time": 3.25,
        "absolute_start_time": "2026-02-27T07:11:51.863Z",
        "words": [
            {"word": "hello", "punctuated_word": "Hello,", "start": 0.5, "end": 0.9, "confidence": 0.98, "speaker": 0},
            {"word": "everyone", "punctuated_word": "everyone", "start": 1.0, "end": 1.4, "confidence": 0.95},
        ],
    },
    {"speaker": 3, "transcript": "Grüße aus Köln — 日本語 😀 ok", "start": 4, "end": 6.5},
    {"speaker": "Bob", "text": "  fallback   text\nwith\twhitespace ", "start_time": 7, "end_time": 8},
    {"transcript": "", "words": [{"word": "only", "start": 9.0, "end": 9.2}, {"word": "words", "start": 9.3}]},
]


def envelopes(segments):
    """The same segments in every envelope MeetStream has been seen to use."""
    return {
        "bare": segments,
        "transcript": {"transcript": segments},
        "message": {"message": segments},
        "transcript-key-after": {"status": "ok", "meta": {"x": [1, {"y": "]}"}]}, "transcript": segments},
        "message-key-first": {"message": segments, "status": "done", "count": len(segments)},
        "message-string-then-transcript": {"message": "Success", "transcript": segments},
    }


def body_of(payload, **dumps):
    return json.dumps(payload, ensure_ascii=False, **dumps).encode("utf-8")


def streamed(body, chunk_size=1 << 16):
    return [normalise_segment(s) for s in iter_segments(io.BytesIO(body), chunk_size)]


EXPECTED = normalise_transcript(SEGMENTS)


# --- normalising segments ------------------------------------------------------------------------


def test_segment_normalises_speaker_text_times_and_words():
    turn = normalise_segment(SEGMENTS[0])
    assert turn.speaker == "Ada Lovelace"
    assert turn.text == 'Hello, everyone [laughs] {quietly}, "quoted" and a back\\slash.'
    assert (turn.start, turn.end) == (0.5, 3.25)
    assert turn.words == (Word("Hello,", 0.5, 0.9, 0.98), Word("everyone", 1.0, 1.4, 0.95))


@pytest.mark.parametrize(
    ("speaker", "label"),
    [
        (None, UNKNOWN_SPEAKER),
        ("", UNKNOWN_SPEAKER),
        ("   ", UNKNOWN_SPEAKER),
        (3, "Speaker 3"),
        (0, "Speaker 0"),
        (2.0, "Speaker 2"),
        ("4", "Speaker 4"),
        (True, UNKNOWN_SPEAKER),
        (["Ada"], UNKNOWN_SPEAKER),
        ("  Ada   Lovelace ", "Ada Lovelace"),
    ],
)
def test_speaker_labels(speaker, label):
    assert normalise_segment({"speaker": speaker, "transcript": "hi"}).speaker == label


def test_missing_speaker_is_unknown():
    assert normalise_segment({"transcript": "hi"}).speaker == UNKNOWN_SPEAKER


def test_text_prefers_transcript_then_text_then_words():
    assert normalise_segment({"transcript": "a", "text": "b"}).text == "a"
    assert normalise_segment({"text": "b"}).text == "b"
    assert normalise_segment({"transcript": "  ", "text": "b"}).text == "b"
    assert normalise_segment({"words": [{"word": "x"}, {"punctuated_word": "Y."}]}).text == "x Y."
    assert normalise_segment({}).text == ""


def test_text_whitespace_is_collapsed():
    assert normalise_segment({"transcript": " a \n\t b\u2028c  "}).text == "a b c"


def test_word_text_prefers_punctuated_word_and_junk_words_are_skipped():
    turn = normalise_segment(
        {
            "transcript": "x",
            "words": [
                {"word": "hi", "punctuated_word": "Hi!", "start": "1.5", "end": None, "confidence": "high"},
                "not a word",
                {"word": ""},
                {"word": "there", "start": float("inf"), "end": True},
            ],
        }
    )
    assert turn.words == (Word("Hi!", 1.5, None, None), Word("there", None, None, None))


def test_times_accept_start_end_aliases_and_fall_back_to_words_then_zero():
    assert normalise_segment({"start": 2, "end": 3}).start == 2.0
    derived = normalise_segment(
        {"words": [{"word": "a", "start": 5.0, "end": 5.5}, {"word": "b", "start": 6, "end": 7}]}
    )
    assert (derived.start, derived.end) == (5.0, 7.0)
    bare = normalise_segment({"transcript": "x"})
    assert (bare.start, bare.end) == (0.0, 0.0)
    only_start = normalise_segment({"transcript": "x", "start_time": 4})
    assert (only_start.start, only_start.end) == (4.0, 4.0)
    assert normalise_segment({"start_time": "nope", "start": 1}).start == 1.0


@pytest.mark.parametrize("segment", [["speaker", "x"], "text", 5, None])
def test_non_object_segment_is_a_format_error(segment):
    with pytest.raises(TranscriptFormatError):
        normalise_segment(segment)


# --- envelopes, both readers ---------------------------------------------------------------------


@pytest.mark.parametrize("envelope", list(envelopes(SEGMENTS)))
def test_every_envelope_gives_the_same_turns_streamed_or_not(envelope):
    payload = envelopes(SEGMENTS)[envelope]
    body = body_of(payload)
    assert normalise_transcript(payload) == EXPECTED
    assert normalise_transcript(body) == EXPECTED
    assert streamed(body) == EXPECTED


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("envelope", list(envelopes(SEGMENTS)))
def test_small_chunks_stream_the_same_turns(envelope, chunk_size):
    assert streamed(body_of(envelopes(SEGMENTS)[envelope]), chunk_size) == EXPECTED


def test_streamed_segments_are_the_raw_segments():
    body = body_of({"transcript": SEGMENTS})
    assert list(iter_segments(io.BytesIO(body), 5)) == SEGMENTS


@pytest.mark.parametrize("chunk_size", [1, 7])
def test_whitespace_anywhere(chunk_size):
    segments = SEGMENTS[:2]
    body = body_of({"meta": {"a": [1, 2]}, "transcript": segments}, indent="\t", separators=(" ,\r\n ", " : "))
    body = b" \r\n\t" + body + b"\n\n  \t"
    assert streamed(body, chunk_size) == normalise_transcript(segments)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 5])
def test_multibyte_utf8_split_across_chunks(chunk_size):
    segments = [{"speaker": "Zoë 😀", "transcript": "€ 日本語 𝄞 ü"}]
    body = body_of(segments)
    assert len(body) > len(body.decode("utf-8"))  # really multibyte
    turns = streamed(body, chunk_size)
    assert turns == [Turn("Zoë 😀", 0.0, 0.0, "€ 日本語 𝄞 ü", ())]


def test_escaped_strings_with_structure_characters_do_not_confuse_the_reader():
    tricky = [
        {"speaker": 'a"]}', "transcript": '],[{"x": 1}, "}', "start_time": 1},
        {"speaker": "b\\", "transcript": '\\"\\\\]\\"{', "start_time": 2},
        {"speaker": "c", "transcript": "\u005b\u007b unicode escapes \u00e9 \U0001f600", "start_time": 3},
    ]
    body = json.dumps({"other": ['"]', "\\"], "message": tricky}).encode()  # ASCII with \u escapes
    for chunk_size in (1, 3, 7, 1 << 16):
        assert streamed(body, chunk_size) == normalise_transcript(tricky)


@pytest.mark.parametrize(
    "body", [b"[]", b" [ ] ", b'{"transcript": []}', b'{"message":[]}', b'{"message": "none", "transcript": [ ]}']
)
@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 16])
def test_empty_transcripts(body, chunk_size):
    assert list(iter_segments(io.BytesIO(body), chunk_size)) == []
    assert normalise_transcript(json.loads(body)) == []


def test_utf8_byte_order_mark_is_accepted():
    body = b"\xef\xbb\xbf" + body_of(SEGMENTS)
    assert streamed(body, 1) == EXPECTED
    assert streamed(body) == EXPECTED


def test_when_both_keys_hold_arrays_both_readers_take_the_first():
    first, second = [{"transcript": "first"}], [{"transcript": "second"}]
    for payload in ({"message": first, "transcript": second}, {"transcript": first, "message": second}):
        assert [t.text for t in normalise_transcript(payload)] == ["first"]
        assert [t.text for t in streamed(body_of(payload), 3)] == ["first"]


def test_segments_are_yielded_before_the_body_is_read_to_the_end():
    class CountingStream(io.BytesIO):
        def __init__(self, data):
            super().__init__(data)
            self.bytes_read = 0

        def read(self, size=-1):
            data = super().read(size)
            self.bytes_read += len(data)
            return data

    body = body_of([{"transcript": "x" * 100, "start_time": i} for i in range(1000)])
    stream = CountingStream(body)
    first = next(iter_segments(stream, 256))
    assert first["start_time"] == 0
    assert stream.bytes_read <= 512 < len(body)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk_size"):
        list(iter_segments(io.BytesIO(b"[]"), 0))


# --- malformed bodies ----------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "blank": b"  \n ",
    "truncated-array": b"[",
    "truncated-segment": b'[{"speaker": "a", "transcript": "hel',
    "truncated-after-segment": b'[{"speaker": "a"}',
    "truncated-after-comma": b'[{"speaker": "a"},',
    "truncated-envelope": b'{"transcript": [{"speaker": "a"}]',
    "truncated-key": b'{"transcr',
    "truncated-before-value": b'{"transcript":',
    "truncated-escape": b'[{"transcript": "a\\',
    "garbage": b"hello world",
    "garbage-after-bracket": b"[hello]",
    "scalar-string": b'"transcript"',
    "scalar-number": b"42",
    "null": b"null",
    "object-without-keys": b'{"segments": [{"transcript": "x"}]}',
    "empty-object": b"{}",
    "transcript-not-array": b'{"transcript": "hello", "message": {"a": 1}}',
    "transcript-null": b'{"transcript": null}',
    "segment-not-object": b'[{"transcript": "ok"}, ["not", "an", "object"]]',
    "segment-number": b"[1, 2]",
    "segment-string": b'{"message": ["a"]}',
    "trailing-comma-in-array": b'[{"transcript": "a"},]',
    "trailing-comma-in-object": b'{"transcript": [],}',
    "missing-comma": b'[{"transcript": "a"} {"transcript": "b"}]',
    "missing-colon": b'{"transcript" []}',
    "unquoted-key": b"{transcript: []}",
    "bad-segment-json": b'[{"transcript": "a",}]',
    "bad-segment-value": b'[{"transcript": nope}]',
    "single-quotes": b"[{'transcript': 'a'}]",
    "trailing-junk": b'[{"transcript": "a"}] x',
    "trailing-array": b"[][]",
    "trailing-junk-after-envelope": b'{"transcript": []} {}',
    "garbage-in-skipped-value": b'{"meta": not json, "transcript": []}',
    "unbalanced-skipped-value": b'{"meta": [1, 2}, "transcript": []}',
    "bad-token-in-skipped-value": b'{"meta": [1, undefined], "transcript": []}',
    "missing-comma-in-skipped-value": b'{"meta": [1 2], "transcript": []}',
    "missing-colon-in-skipped-value": b'{"meta": {"a" 1}, "transcript": []}',
    "trailing-comma-in-skipped-value": b'{"meta": {"a": 1,}, "transcript": []}',
    "bad-escape-in-skipped-value": b'{"meta": "\\x", "transcript": []}',
    "short-unicode-escape-in-skipped-value": b'{"meta": "\\u12", "transcript": []}',
    "control-character-in-skipped-value": b'{"meta": "a\tb", "transcript": []}',
    "leading-comma-in-skipped-value": b'{"meta": [,1], "transcript": []}',
    "double-comma-in-skipped-value": b'{"meta": {"a": 1,, "b": 2}, "transcript": []}',
    "colon-in-skipped-array": b'{"meta": [1: 2], "transcript": []}',
    "double-colon-in-skipped-value": b'{"meta": {"a":: 1}, "transcript": []}',
    "leading-zero-in-skipped-value": b'{"meta": 01, "transcript": []}',
    "truncated-skipped-value": b'{"meta": [1, ',
    "truncated-literal": b'{"meta": tru',
    "invalid-utf8": b'[{"transcript": "\xff\xfe"}]',
    "truncated-utf8": b'[{"transcript": "\xe2\x82',
}


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 16])
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_body_is_a_format_error(body, chunk_size):
    with pytest.raises(TranscriptFormatError) as caught:
        list(iter_segments(io.BytesIO(body), chunk_size))
    reason = str(caught.value)
    assert reason.startswith("transcript") and "\n" not in reason


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_body_is_a_format_error_without_streaming_too(body):
    with pytest.raises(TranscriptFormatError):
        normalise_transcript(body)


@pytest.mark.parametrize(
    "body", [b'{"segments": []}', b"{}", b"42", b'"x"', b'{"transcript": "text"}', b'{"message": "Processing"}']
)
def test_wrong_shape_names_the_accepted_envelopes(body):
    with pytest.raises(TranscriptFormatError, match="^" + re.escape(NOT_A_TRANSCRIPT) + "$"):
        list(iter_segments(io.BytesIO(body)))
    with pytest.raises(TranscriptFormatError, match="^" + re.escape(NOT_A_TRANSCRIPT) + "$"):
        normalise_transcript(json.loads(body))


def test_segments_before_a_late_error_are_yielded_then_the_error_is_raised():
    body = b'[{"transcript": "a"}, {"transcript": "b"}, oops]'
    reader = iter_segments(io.BytesIO(body), 4)
    assert next(reader)["transcript"] == "a"
    assert next(reader)["transcript"] == "b"
    with pytest.raises(TranscriptFormatError, match="segment 2 is not a JSON object"):
        next(reader)


# --- property: any segments, any envelope, any chunking ------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ['"]}', "[{", ",", "\\", '\\"', "😀é", "", "   "]
)
numbers = st.none() | st.integers(-5, 10_000) | st.floats(0, 1e5, allow_nan=False)
words = st.fixed_dictionaries(
    {"word": texts}, optional={"punctuated_word": texts, "start": numbers, "end": numbers, "confidence": numbers}
)
segments = st.fixed_dictionaries(
    {},
    optional={
        "speaker": texts | st.integers(0, 20) | st.none(),
        "transcript": texts,
        "text": texts,
        "start_time": numbers,
        "end_time": numbers,
        "start": numbers,
        "end": numbers,
        "words": st.lists(words, max_size=4),
        "extra": st.dictionaries(texts, texts | numbers, max_size=2),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(segments, max_size=6),
    st.sampled_from(["bare", "transcript", "message", "transcript-key-after", "message-key-first"]),
    st.integers(1, 80),
    st.sampled_from([None, 0, 2, "\t"]),
    st.booleans(),
)
def test_random_segments_round_trip_through_the_streaming_reader(segs, envelope, chunk_size, indent, ascii_only):
    payload = envelopes(segs)[envelope]
    body = json.dumps(payload, indent=indent, ensure_ascii=ascii_only).encode("utf-8")
    assert list(iter_segments(io.BytesIO(body), chunk_size)) == segs
    assert streamed(body, chunk_size) == normalise_transcript(payload)


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["transcript", "message", "meta", "x"]) | texts, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_documents, st.integers(1, 32))
def test_both_readers_agree_on_any_json_document(document, chunk_size):
    body = json.dumps(document).encode()
    try:
        expected = normalise_transcript(document)
    except TranscriptFormatError:
        with pytest.raises(TranscriptFormatError):
            streamed(body, chunk_size)
    else:
        assert streamed(body, chunk_size) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=60) | st.text(alphabet='[]{}",: \\0123456789.-eEtrufalsnx', max_size=60).map(str.encode),
    st.integers(1, 16),
)
def test_arbitrary_bytes_either_parse_or_raise_a_format_error(data, chunk_size):
    try:
        list(iter_segments(io.BytesIO(data), chunk_size))
    except TranscriptFormatError:
        return
    # Whatever the streaming reader accepts must be valid JSON in a documented envelope.
    normalise_transcript(json.loads(data.decode("utf-8-sig")))


# --- writer and renderers ------------------------------------------------------------------------

TURNS = [
    Turn("Ada", 0.0, 2.5, "Hello & welcome <everyone>", (Word("Hello", 0.0, 0.4, 0.99),)),
    Turn("Bob", 62.0, 64.75, "Thanks --> next", ()),
    Turn("Ada", 3723.5, 3725.0, "Ünïcödé 日本語", ()),
]


def write_all(turns, metadata=None):
    outs = io.BytesIO(), io.BytesIO(), io.BytesIO()
    writer = TranscriptWriter(*outs, metadata or {})
    for turn in turns:
        writer.add(turn)
    summary = writer.close()
    return summary, *(out.getvalue().decode("utf-8") for out in outs)


def test_json_document_has_metadata_turns_and_summary():
    summary, doc, _, _ = write_all(TURNS, {"bot_id": "b-1", "title": "Planning ☕"})
    parsed = json.loads(doc)
    assert parsed["metadata"] == {"bot_id": "b-1", "title": "Planning ☕"}
    assert parsed["turns"][0] == {
        "speaker": "Ada",
        "start": 0.0,
        "end": 2.5,
        "text": "Hello & welcome <everyone>",
        "words": [{"text": "Hello", "start": 0.0, "end": 0.4, "confidence": 0.99}],
    }
    assert [t["text"] for t in parsed["turns"]] == [t.text for t in TURNS]
    assert parsed["summary"] == {
        "turns": 3,
        "words": 9,
        "speakers": ["Ada", "Bob"],
        "duration_seconds": 3725.0,
        "is_empty": False,
    }
    assert summary == TranscriptSummary(turns=3, words=9, speakers=["Ada", "Bob"], duration_seconds=3725.0)
    assert "☕" in doc  # UTF-8, not \u escapes


def test_metadata_with_datetimes_and_other_types_is_serialised():
    from datetime import UTC, datetime

    _, doc, _, _ = write_all([], {"at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC), "tags": ("a",), "n": None})
    assert json.loads(doc)["metadata"] == {"at": "2026-03-01T09:30:00.000Z", "tags": ["a"], "n": None}


def test_text_lines_carry_a_clock_the_speaker_and_the_text():
    _, _, text, _ = write_all(TURNS)
    assert text.splitlines() == [
        "[00:00:00] Ada: Hello & welcome <everyone>",
        "[00:01:02] Bob: Thanks --> next",
        "[01:02:03] Ada: Ünïcödé 日本語",
    ]


def test_vtt_has_header_timed_voice_cues_and_escaped_text():
    _, _, _, vtt = write_all(TURNS)
    assert vtt.startswith("WEBVTT\n\n")
    assert vtt == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\n<v Ada>Hello &amp; welcome &lt;everyone&gt;\n\n"
        "00:01:02.000 --> 00:01:04.750\n<v Bob>Thanks --&gt; next\n\n"
        "01:02:03.500 --> 01:02:05.000\n<v Ada>Ünïcödé 日本語\n\n"
    )


def test_vtt_speaker_names_are_escaped():
    vtt = render_vtt([Turn("<b>Eve & Co</b>", 1, 2, "hi", ())])
    assert "<v &lt;b&gt;Eve &amp; Co&lt;/b&gt;>hi" in vtt


def test_vtt_cue_without_duration_or_out_of_order_is_made_valid():
    vtt = render_vtt(
        [Turn("A", 5.0, 5.0, "zero", ()), Turn("B", 9.0, 8.0, "backwards", ()), Turn("C", 7.0, 7.5, "early", ())]
    )
    cues = re.findall(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})$", vtt, flags=re.M)
    assert cues == [
        ("00:00:05.000", "00:00:05.001"),
        ("00:00:09.000", "00:00:09.001"),
        ("00:00:09.000", "00:00:09.001"),  # cue starts may not go backwards
    ]


def test_vtt_cue_times_round_to_milliseconds():
    vtt = render_vtt([Turn("A", 1.23456, 1.2349, "x", ())])
    assert "00:00:01.235 --> 00:00:01.236" in vtt


def test_hand_built_turns_with_line_breaks_still_give_one_line_per_turn():
    turns = [Turn("Ada\nL", 1, 2, "first\n\nsecond", ()), Turn("Bob", 3, 4, " \n ", ())]
    _, _, text, vtt = write_all(turns)
    assert text == "[00:00:01] Ada L: first second\n"
    assert vtt == "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Ada L>first second\n\n"


def test_turns_without_text_stay_in_json_but_not_in_text_or_vtt():
    summary, doc, text, vtt = write_all([Turn("A", 1, 2, "", ()), Turn("B", 3, 4, "hi", ())])
    assert len(json.loads(doc)["turns"]) == 2
    assert text == "[00:00:03] B: hi\n"
    assert vtt.count("-->") == 1
    assert summary.turns == 2 and summary.words == 1 and not summary.is_empty


def test_empty_transcript_summary_is_empty():
    summary, doc, text, vtt = write_all([])
    assert summary == TranscriptSummary(turns=0, words=0, speakers=[], duration_seconds=0.0)
    assert summary.is_empty
    assert json.loads(doc) == {"metadata": {}, "turns": [], "summary": summary.as_dict()}
    assert text == ""
    assert vtt == "WEBVTT\n\n"


def test_transcript_of_only_silence_is_empty_but_has_turns():
    turns = normalise_transcript([{"speaker": "A", "transcript": "   "}, {"speaker": "B"}])
    summary, *_ = write_all(turns)
    assert summary.turns == 2
    assert summary.is_empty
    assert not TranscriptSummary(turns=1, words=1, speakers=["A"], duration_seconds=1.0).is_empty


def test_close_finishes_documents_once_and_leaves_streams_open():
    outs = io.BytesIO(), io.BytesIO(), io.BytesIO()
    writer = TranscriptWriter(*outs, {"k": "v"})
    writer.add(TURNS[0])
    first = writer.close()
    assert writer.close() is first
    assert not any(out.closed for out in outs)
    json.loads(outs[0].getvalue())  # closing twice did not append a second summary
    with pytest.raises(ValueError, match="closed"):
        writer.add(TURNS[1])


def test_writer_output_is_written_as_turns_arrive():
    outs = io.BytesIO(), io.BytesIO(), io.BytesIO()
    writer = TranscriptWriter(*outs, {})
    writer.add(TURNS[0])
    assert b"Hello & welcome" in outs[0].getvalue()
    assert outs[1].getvalue() and b"-->" in outs[2].getvalue()


def test_render_helpers_match_the_writer():
    _, doc, text, vtt = write_all(TURNS, {"a": 1})
    assert render_json(iter(TURNS), {"a": 1}) == doc
    assert render_text(TURNS) == text
    assert render_vtt(TURNS) == vtt


def test_end_to_end_body_to_documents():
    body = body_of({"message": SEGMENTS})
    _, doc, text, vtt = write_all(streamed(body, 7))
    parsed = json.loads(doc)
    assert [t["speaker"] for t in parsed["turns"]] == ["Ada Lovelace", "Speaker 3", "Bob", UNKNOWN_SPEAKER]
    assert text.splitlines()[2] == "[00:00:07] Bob: fallback text with whitespace"
    assert "<v Unknown speaker>only words" in vtt


cue_line = re.compile(r"^(\d\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d\d+):(\d\d):(\d\d)\.(\d{3})$")


def _millis(h, m, s, ms):
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


@settings(max_examples=150, deadline=None)
@given(st.lists(segments, max_size=8))
def test_rendered_documents_are_always_valid(segs):
    turns = normalise_transcript(segs)
    summary, doc, text, vtt = write_all(turns)
    parsed = json.loads(doc)
    assert len(parsed["turns"]) == len(turns) == summary.turns
    assert [t["text"] for t in parsed["turns"]] == [t.text for t in turns]
    assert parsed["summary"]["is_empty"] == (not any(t.text for t in turns))
    lines = vtt.split("\n")
    assert lines[0] == "WEBVTT"
    previous_start = -1
    cues = 0
    for index, line in enumerate(lines):
        match = cue_line.match(line)
        if match:
            cues += 1
            start, end = _millis(*match.groups()[:4]), _millis(*match.groups()[4:])
            assert end > start >= previous_start
            previous_start = start
            payload = lines[index + 1]
            assert payload.startswith("<v ") and "-->" not in payload
            assert lines[index + 2] == ""
    assert cues == sum(1 for t in turns if t.text) == len(text.splitlines())


# --- bounded memory ------------------------------------------------------------------------------


def _write_big_body(path, target_bytes):
    """Write a realistic transcript body to disk piece by piece; returns the segment count."""
    count = size = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"status": "ok", "message": [')
        while size < target_bytes:
            words = [
                {
                    "word": f"wört{j}",
                    "punctuated_word": f"Wört{j},",
                    "start": count + j / 10,
                    "end": count + j / 10 + 0.05,
                    "confidence": 0.93,
                    "speaker": count % 4,
                }
                for j in range(12)
            ]
            segment = {
                "speaker": f"Speaker {count % 4}",
                "transcript": " ".join(w["punctuated_word"] for w in words) + ' [] {} " ,',
                "start_time": count,
                "end_time": count + 1.3,
                "words": words,
            }
            text = ("," if count else "") + "\n  " + json.dumps(segment, ensure_ascii=False)
            out.write(text)
            size += len(text.encode("utf-8"))
            count += 1
        out.write('\n], "trailer": {"pages": 1}}')
    return count


def test_twenty_megabyte_transcript_streams_in_bounded_memory(tmp_path):
    source = tmp_path / "transcript.json"
    expected_segments = _write_big_body(source, 20_000_000)
    assert source.stat().st_size >= 20_000_000

    tracemalloc.start()
    try:
        with (
            open(source, "rb") as body,
            open(tmp_path / "out.json", "wb") as json_out,
            open(tmp_path / "out.txt", "wb") as text_out,
            open(tmp_path / "out.vtt", "wb") as vtt_out,
        ):
            writer = TranscriptWriter(json_out, text_out, vtt_out, {"bot_id": "b-1"})
            for segment in iter_segments(body):
                writer.add(normalise_segment(segment))
            summary = writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert summary.turns == expected_segments
    assert summary.speakers == ["Speaker 0", "Speaker 1", "Speaker 2", "Speaker 3"]
    assert summary.words == expected_segments * 16
    with open(tmp_path / "out.vtt", encoding="utf-8") as vtt:
        assert sum(1 for line in vtt if " --> " in line) == expected_segments
    with open(tmp_path / "out.txt", encoding="utf-8") as text:
        assert sum(1 for _ in text) == expected_segments
    with open(tmp_path / "out.json", "rb") as doc:
        doc.seek(-300, io.SEEK_END)
        tail = doc.read().decode("utf-8")
    assert tail.endswith("}\n") and f'"turns": {expected_segments},' in tail


def test_a_huge_value_under_another_key_is_skipped_in_bounded_memory():
    filler = "x" * 6_000_000
    body = json.dumps({"raw": {"text": filler, "list": [filler[:1000]] * 500}, "transcript": SEGMENTS}).encode()
    del filler
    stream = io.BytesIO(body)
    tracemalloc.start()
    try:
        turns = [normalise_segment(s) for s in iter_segments(stream, 1 << 16)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert turns == EXPECTED
    assert peak < 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
