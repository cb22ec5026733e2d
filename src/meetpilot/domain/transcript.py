"""Transcripts: read MeetStream's transcript body as a stream of turns and render JSON, text and WebVTT.

Bodies can be large, so reading and writing both work one segment at a time in bounded memory.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, NamedTuple

from pydantic_core import PydanticSerializationError, to_json

from meetpilot.domain.clock import to_iso
from meetpilot.errors import TranscriptFormatError

UNKNOWN_SPEAKER = "Unknown speaker"
# A label is kept on every turn, in the session's summary (up to 50 of them) and in events: bounded so
# that no label, however long, can push a session item past DynamoDB's 400 KB and stop it ending.
MAX_SPEAKER_CHARS = 200
# Seconds from the start of a recording; a time beyond this (about 115 days) is not a time, and
# would overflow the millisecond arithmetic of the captions or a DynamoDB number.
MAX_TIME_SECONDS = 10_000_000.0
ENVELOPE_KEYS = ("transcript", "message")  # object envelopes MeetStream wraps the segment array in

_NOT_A_TRANSCRIPT = "transcript body is neither a JSON array nor an object with a 'transcript' or 'message' array"


# --- turns -------------------------------------------------------------------------------------


class Word(NamedTuple):
    # A tuple, not a dataclass: a long transcript makes one per spoken word, and a frozen
    # dataclass costs several times as much to build.
    text: str
    start: float | None
    end: float | None
    confidence: float | None


@dataclass(frozen=True)
class Turn:
    """One speaker's contiguous speech; times are seconds from the start of the recording."""

    speaker: str
    start: float
    end: float
    text: str
    words: tuple[Word, ...]


def normalise_segment(segment: Mapping[str, Any]) -> Turn:
    """One MeetStream segment as a ``Turn``.

    >>> normalise_segment({"speaker": "Ada", "transcript": " Hi  there ", "start_time": 1, "end_time": 2})
    Turn(speaker='Ada', start=1.0, end=2.0, text='Hi there', words=())
    """
    if not isinstance(segment, Mapping):
        raise TranscriptFormatError(f"transcript segment must be a JSON object, got {_json_type(segment)}")
    words = tuple(_words(segment.get("words")))

    text = _first_text(segment, "transcript", "text")
    if not text and words:
        text = " ".join(word.text for word in words)
    text = " ".join(text.split())

    start = _first_number(segment, "start_time", "start")
    if start is None:
        starts = [word.start for word in words if word.start is not None]
        start = min(starts) if starts else 0.0
    end = _first_number(segment, "end_time", "end")
    if end is None:
        ends = [word.end for word in words if word.end is not None]
        end = max(ends) if ends else start

    return Turn(speaker=speaker_label(segment.get("speaker")), start=start, end=end, text=text, words=words)


def speaker_label(value: Any) -> str:
    """A readable speaker label of at most ``MAX_SPEAKER_CHARS`` characters, whatever was sent.

    >>> speaker_label(2), speaker_label("  Ada\n Lovelace "), len(speaker_label("x" * 10_000))
    ('Speaker 2', 'Ada Lovelace', 200)
    """
    # Diarization without names gives numbers (or numeric strings); make them readable labels.
    if isinstance(value, bool):
        return UNKNOWN_SPEAKER
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"Speaker {int(value)}"[:MAX_SPEAKER_CHARS]
    if isinstance(value, str):
        # Cut before the whitespace pass so a huge label costs no more than a short one; a lone
        # surrogate (JSON allows "\ud800") cannot be written as UTF-8 and becomes U+FFFD.
        label = writable(" ".join(value[: MAX_SPEAKER_CHARS * 4].split())[:MAX_SPEAKER_CHARS])
        if label.isdecimal() and len(label) < 16:
            return f"Speaker {int(label)}"
        return label or UNKNOWN_SPEAKER
    return UNKNOWN_SPEAKER


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def writable(text: str) -> str:
    """``text`` with each lone surrogate (JSON allows "\\ud800") as U+FFFD, so it can be written as UTF-8."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _words(value: Any) -> list[Word]:
    # The hot loop of a long transcript (one pass per spoken word). The common shape (a dict with
    # a printable str word without spaces and float times in range) is checked inline and built
    # with tuple.__new__ (a NamedTuple's own __new__ is Python code); anything else takes
    # ``_word``, which has every rule.
    if not isinstance(value, list):
        return []
    low, high = -MAX_TIME_SECONDS, MAX_TIME_SECONDS
    words: list[Word] = []
    append = words.append
    new = tuple.__new__
    for item in value:
        if type(item) is dict:
            text, start, end = item.get("punctuated_word"), item.get("start"), item.get("end")
            confidence = item.get("confidence")
            if (
                type(text) is str
                and text
                and " " not in text
                and text.isprintable()
                and type(start) is float
                and low <= start <= high
                and type(end) is float
                and low <= end <= high
                and type(confidence) is float
                and low <= confidence <= high
            ):
                append(new(Word, (text, start, end, confidence)))
                continue
        word = _word(item)
        if word is not None:
            append(word)
    return words


def _word(item: Any) -> Word | None:
    if not isinstance(item, Mapping):
        return None
    text = item.get("punctuated_word")
    if type(text) is not str or not text or text.isspace():
        text = _first_text(item, "word", "text")
    if " " in text or not text.isprintable():
        text = " ".join(text.split())
    if not text:
        return None
    return Word(text, _number(item.get("start")), _number(item.get("end")), _number(item.get("confidence")))


def _first_text(mapping: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _first_number(mapping: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        number = _number(mapping.get(key))
        if number is not None:
            return number
    return None


def _number(value: Any) -> float | None:
    # A number beyond MAX_TIME_SECONDS (or 10**400, which no float holds) is dropped, never raised.
    kind = type(value)
    if kind is float:
        return value if -MAX_TIME_SECONDS <= value <= MAX_TIME_SECONDS else None
    if kind is int and -(2**53) <= value <= 2**53:
        return float(value) if -MAX_TIME_SECONDS <= value <= MAX_TIME_SECONDS else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not -MAX_TIME_SECONDS <= value <= MAX_TIME_SECONDS:
            return None
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and -MAX_TIME_SECONDS <= number <= MAX_TIME_SECONDS else None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def normalise_transcript(payload: Any) -> list[Turn]:
    """Turns from an already-parsed body (or its raw bytes) in any of the three envelopes.

    Gives the same turns as streaming the same body through ``iter_segments``.
    """
    if isinstance(payload, bytes | bytearray):
        try:
            payload = json.loads(payload.decode("utf-8-sig"))
        except ValueError as exc:
            raise TranscriptFormatError(f"transcript body is not valid JSON: {exc}") from None
    return [normalise_segment(segment) for segment in _segment_array(payload)]


def _segment_array(payload: Any) -> list[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping):
        # The streaming reader takes the first envelope key holding an array; so do we.
        for key, value in payload.items():
            if key in ENVELOPE_KEYS and isinstance(value, list):
                return value
    raise TranscriptFormatError(_NOT_A_TRANSCRIPT)


# --- streaming reader --------------------------------------------------------------------------

_NOT_WHITESPACE = re.compile(r"[^ \t\r\n]")
# The next token of a value: a structural character, a quote, or a bare run (number or literal).
_TOKEN = re.compile(r'[ \t\r\n]*(?:([{}\[\]:,"])|([^ \t\r\n{}\[\]:,"]+))')
_STRING_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_ESCAPE = re.compile(r'["\\/bfnrt]|u[0-9a-fA-F]{4}')
# What json.loads accepts as a bare value, NaN and Infinity included, so both readers agree.
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null|NaN|-?Infinity")
_DECODER = json.JSONDecoder()

# What the grammar allows next while scanning a value.
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _COMMA_OR_CLOSE = range(6)


class _JsonStream:
    """A cursor over UTF-8 JSON text that holds only what it has not consumed yet.

    ``_anchor`` marks the start of a value being captured; refills drop everything before the
    cursor (or the anchor), which is what keeps memory bounded by one value plus one chunk.
    """

    def __init__(self, stream: BinaryIO, chunk_size: int) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._pos = 0
        self._anchor: int | None = None
        self._dropped = 0  # characters discarded so far, for error positions
        self._eof = False

    @property
    def position(self) -> int:
        return self._dropped + self._pos

    def _fill(self) -> bool:
        """Append the next chunk; False once the stream is exhausted."""
        if self._eof:
            return False
        data = self._stream.read(self._chunk_size)
        try:
            if data:
                text = self._decoder.decode(data)
            else:
                self._eof = True
                text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise TranscriptFormatError(
                f"transcript body is not valid UTF-8 (near character {self.position})"
            ) from None
        cut = self._pos if self._anchor is None else self._anchor
        self._buf = self._buf[cut:] + text
        self._pos -= cut
        if self._anchor is not None:
            self._anchor -= cut
        self._dropped += cut
        return True

    def _more(self, keep_from: int) -> None:
        """Refill, keeping the buffer from ``keep_from`` on; the body must not end here."""
        self._pos = keep_from
        if not self._fill():
            raise TranscriptFormatError(
                f"transcript body is truncated: it ends inside a value (character {self.position})"
            )

    def _malformed(self, what: str, index: int) -> TranscriptFormatError:
        return TranscriptFormatError(f"transcript body is malformed: {what} at character {self._dropped + index}")

    def peek(self) -> str:
        """The next non-whitespace character without consuming it; "" at the end of the body."""
        while True:
            match = _NOT_WHITESPACE.search(self._buf, self._pos)
            if match is not None:
                self._pos = match.start()
                return match.group()
            self._pos = len(self._buf)
            if not self._fill():
                return ""

    def take(self, expected: str, context: str) -> None:
        char = self.peek()
        if char != expected:
            found = "the end of the body" if char == "" else repr(char)
            raise self._malformed(f"expected {expected!r} {context}, found {found}", self._pos)
        self._pos += 1

    def capture(self) -> Any:
        """Decode the string or object at the cursor and move past it."""
        self.peek()
        try:
            # Fast path: the whole value is usually in the buffer already. A string or object only
            # decodes once its closing character is there, so success never means a value cut
            # short by the chunk boundary.
            value, end = _DECODER.raw_decode(self._buf, self._pos)
        except ValueError:
            # Cut by the boundary (usually) or malformed. One more chunk settles the common case
            # cheaply; otherwise scan to where the value ends, then judge it whole.
            if not self._eof and len(self._buf) - self._pos < self._chunk_size:
                self._anchor = self._pos
                try:
                    self._fill()
                finally:
                    self._anchor = None
                try:
                    value, end = _DECODER.raw_decode(self._buf, self._pos)
                except ValueError:
                    pass
                else:
                    self._pos = end
                    return value
        else:
            self._pos = end
            return value
        self._anchor = self._pos
        start = self.position
        try:
            self._scan_value()
            text = self._buf[self._anchor : self._pos]
        finally:
            self._anchor = None
        try:
            return json.loads(text)
        except ValueError as exc:  # the scan checks the grammar; json.loads has the last word
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise TranscriptFormatError(f"transcript body is malformed at character {start}: {reason}") from None

    def skip(self) -> None:
        """Move past the value at the cursor, keeping none of it; it must still be valid JSON."""
        self.peek()
        self._scan_value()

    def _scan_value(self) -> None:
        """Move the cursor past one JSON value, checking its grammar without building it."""
        stack: list[str] = []  # open containers, "{" or "["
        expect = _VALUE
        while True:
            match = _TOKEN.match(self._buf, self._pos)
            if match is None:  # only whitespace left in the buffer
                self._more(len(self._buf))
                continue
            char, bare = match.group(1), match.group(2)
            if bare is not None:
                if match.end() == len(self._buf) and not self._eof:
                    self._more(match.start(2))  # the token may go on in the next chunk
                    continue
                if expect not in (_VALUE, _VALUE_OR_CLOSE) or not _SCALAR.fullmatch(bare):
                    raise self._malformed(f"unexpected {bare[:20]!r}", match.start(2))
                self._pos = match.end()
            elif char == '"':
                self._pos = match.start(1)
                self._scan_string()
                if expect in (_KEY, _KEY_OR_CLOSE):
                    expect = _COLON
                    continue
                if expect not in (_VALUE, _VALUE_OR_CLOSE):
                    raise self._malformed("unexpected string", match.start(1))
            else:
                self._pos = match.end()
                if char in "{[":
                    if expect not in (_VALUE, _VALUE_OR_CLOSE):
                        raise self._malformed(f"unexpected {char!r}", match.start(1))
                    stack.append(char)
                    expect = _KEY_OR_CLOSE if char == "{" else _VALUE_OR_CLOSE
                    continue
                if char == ",":
                    if expect != _COMMA_OR_CLOSE:
                        raise self._malformed("unexpected ','", match.start(1))
                    expect = _KEY if stack[-1] == "{" else _VALUE
                    continue
                if char == ":":
                    if expect != _COLON:
                        raise self._malformed("unexpected ':'", match.start(1))
                    expect = _VALUE
                    continue
                opener = "{" if char == "}" else "["
                closable = _KEY_OR_CLOSE if char == "}" else _VALUE_OR_CLOSE
                if not stack or stack[-1] != opener or expect not in (closable, _COMMA_OR_CLOSE):
                    raise self._malformed(f"unexpected {char!r}", match.start(1))
                stack.pop()
            # A whole value just ended.
            if not stack:
                return
            expect = _COMMA_OR_CLOSE

    def _scan_string(self) -> None:
        """Move the cursor from an opening quote past its closing quote."""
        pos = self._pos + 1
        while True:
            match = _STRING_SPECIAL.search(self._buf, pos)
            if match is None:
                self._more(len(self._buf))
                pos = self._pos
                continue
            char = match.group()
            if char == '"':
                self._pos = match.end()
                return
            if char != "\\":
                raise self._malformed("control character in a string", match.start())
            if _ESCAPE.match(self._buf, match.end()) is not None:
                pos = match.end() + 1
            elif len(self._buf) - match.end() < 5 and not self._eof:
                self._more(match.start())  # "\u12" may be finished by the next chunk
                pos = self._pos
            else:
                raise self._malformed("invalid escape in a string", match.start())


def iter_segments(stream: BinaryIO, chunk_size: int = 1 << 16) -> Iterator[Mapping[str, Any]]:
    """Yield the raw segments of a transcript body read from ``stream``, one at a time.

    >>> [s["transcript"] for s in iter_segments(io.BytesIO(b'{"transcript": [{"transcript": "hi"}]}'))]
    ['hi']

    Accepts a bare array, ``{"transcript": [...]}`` and ``{"message": [...]}``. Memory stays bounded
    by the largest segment plus one chunk. Errors surface as ``TranscriptFormatError`` when reached,
    possibly after earlier segments were yielded, so a caller must discard partial output.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    reader = _JsonStream(stream, chunk_size)
    first = reader.peek()
    if first == "":
        raise TranscriptFormatError("transcript body is empty")
    if first == "[":
        yield from _array_segments(reader)
    elif first == "{":
        yield from _envelope_segments(reader)
    else:
        raise TranscriptFormatError(_NOT_A_TRANSCRIPT)
    if reader.peek() != "":
        raise TranscriptFormatError(
            f"transcript body has unexpected data after the transcript at character {reader.position}"
        )


def _array_segments(reader: _JsonStream) -> Iterator[Mapping[str, Any]]:
    reader.take("[", "to open the segment array")
    if reader.peek() == "]":
        reader.take("]", "")
        return
    index = 0
    while True:
        char = reader.peek()
        if char != "{":
            found = "the end of the body" if char == "" else repr(char)
            raise TranscriptFormatError(
                f"transcript segment {index} is not a JSON object (found {found} at character {reader.position})"
            )
        segment = reader.capture()
        yield segment
        index += 1
        char = reader.peek()
        if char == "]":
            reader.take("]", "")
            return
        reader.take(",", f"or ']' after transcript segment {index - 1}")


def _envelope_segments(reader: _JsonStream) -> Iterator[Mapping[str, Any]]:
    reader.take("{", "to open the transcript object")
    found = False
    if reader.peek() == "}":
        reader.take("}", "")
    else:
        while True:
            if reader.peek() != '"':
                reader.take('"', "to start a key")
            key = reader.capture()
            reader.take(":", "after a key")
            if not found and key in ENVELOPE_KEYS and reader.peek() == "[":
                found = True
                yield from _array_segments(reader)
            else:
                reader.skip()
            if reader.peek() == "}":
                reader.take("}", "")
                break
            reader.take(",", "or '}' in the transcript object")
    if not found:
        raise TranscriptFormatError(_NOT_A_TRANSCRIPT)


# --- summary and rendering ---------------------------------------------------------------------


@dataclass
class TranscriptSummary:
    """The figures a session keeps about its transcript."""

    turns: int = 0
    words: int = 0  # whitespace-separated words in the turns' text
    speakers: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def is_empty(self) -> bool:
        """True when nobody said anything: "completed but empty" is its own outcome."""
        return self.words == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "words": self.words,
            "speakers": list(self.speakers),
            "duration_seconds": self.duration_seconds,
            "is_empty": self.is_empty,
        }


class TranscriptWriter:
    """Writes JSON, plain text and WebVTT side by side, one turn at a time.

    >>> out = [io.BytesIO() for _ in range(3)]
    >>> writer = TranscriptWriter(*out, metadata={"bot_id": "b1"})
    >>> writer.add(Turn("Ada", 0.0, 1.5, "Hello", ()))
    >>> writer.close().turns
    1

    The streams stay open; ``close`` only finishes the three documents.
    """

    def __init__(self, json_out: BinaryIO, text_out: BinaryIO, vtt_out: BinaryIO, metadata: Mapping[str, Any]) -> None:
        self._json = json_out
        self._text = text_out
        self._vtt = vtt_out
        self._turns = 0
        self._words = 0
        self._speakers: set[str] = set()
        self._duration = 0.0
        self._last_cue_start = 0
        self._summary: TranscriptSummary | None = None
        head = '{"metadata": ' + _dumps(dict(metadata)) + ',\n"turns": ['
        self._json.write(head.encode("utf-8"))
        self._vtt.write(b"WEBVTT\n\n")

    def add(self, turn: Turn) -> None:
        if self._summary is not None:
            raise ValueError("TranscriptWriter is closed; create a new one for another transcript")
        record = {
            "speaker": turn.speaker,
            "start": turn.start,
            "end": turn.end,
            "text": turn.text,
            "words": [{"text": w.text, "start": w.start, "end": w.end, "confidence": w.confidence} for w in turn.words],
        }
        self._json.write(b"\n" if self._turns == 0 else b",\n")
        try:
            # pydantic's Rust encoder: a third of the json module's time for a turn of words.
            encoded = to_json(record)
        except PydanticSerializationError:
            # A lone surrogate in the provider's text becomes "?" instead of failing the whole
            # transcript.
            encoded = _dumps(record).encode("utf-8", "replace")
        self._json.write(encoded)
        self._turns += 1
        self._speakers.add(turn.speaker)
        self._duration = max(self._duration, turn.end)
        # One line per turn whatever the caller put in the Turn: a blank line would end a cue.
        words = turn.text.split()
        if not words:
            return  # kept in the JSON for fidelity; nothing to read or show as a caption
        self._words += len(words)
        text, speaker = " ".join(words), " ".join(turn.speaker.split())
        self._text.write(f"[{_clock(turn.start)}] {speaker}: {text}\n".encode("utf-8", "replace"))
        self._vtt.write(self._cue(turn, speaker, text).encode("utf-8", "replace"))

    def _cue(self, turn: Turn, speaker: str, text: str) -> str:
        # WebVTT wants cue starts in order and each end after its start; shift only as much as
        # needed to keep the file valid for players (the JSON keeps the original times).
        start = max(_millis(turn.start), self._last_cue_start)
        end = max(_millis(turn.end), start + 1)
        self._last_cue_start = start
        return f"{_vtt_time(start)} --> {_vtt_time(end)}\n<v {_vtt_escape(speaker)}>{_vtt_escape(text)}\n\n"

    def close(self) -> TranscriptSummary:
        if self._summary is None:
            self._summary = TranscriptSummary(
                turns=self._turns,
                words=self._words,
                speakers=sorted(self._speakers),
                duration_seconds=self._duration,
            )
            tail = ("\n" if self._turns else "") + '],\n"summary": ' + _dumps(self._summary.as_dict()) + "}\n"
            self._json.write(tail.encode("utf-8"))
        return self._summary


def _dumps(value: Any) -> str:
    # One encoder for every turn: json.dumps with options builds a new one on each call.
    return _ENCODER.encode(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_json_default)


def _millis(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _vtt_time(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(turns: Iterable[Turn], metadata: Mapping[str, Any]) -> tuple[str, str, str]:
    json_out, text_out, vtt_out = io.BytesIO(), io.BytesIO(), io.BytesIO()
    writer = TranscriptWriter(json_out, text_out, vtt_out, metadata)
    for turn in turns:
        writer.add(turn)
    writer.close()
    return (
        json_out.getvalue().decode("utf-8"),
        text_out.getvalue().decode("utf-8"),
        vtt_out.getvalue().decode("utf-8"),
    )


def render_json(turns: Iterable[Turn], metadata: Mapping[str, Any]) -> str:
    """The JSON document for a small, in-memory transcript."""
    return _render(turns, metadata)[0]


def render_text(turns: Iterable[Turn]) -> str:
    """Plain text, one ``[HH:MM:SS] Speaker: text`` line per turn."""
    return _render(turns, {})[1]


def render_vtt(turns: Iterable[Turn]) -> str:
    """WebVTT captions with one voice-tagged cue per turn."""
    return _render(turns, {})[2]
