"""Webhook bodies read as JSON that every later step can hold: UTF-8, an object, no NaN or Infinity
(which ``json.loads`` takes by default) and no number too large for a float.

The edge and the worker read a body with the same function, so the edge refuses exactly what the
worker would drop, and says why in one line.
"""

from __future__ import annotations

import json
import math
from typing import Any

from meetpilot.errors import InvalidEvent


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # "1e400" parses to inf
        raise InvalidEvent("body holds a number too large to store", reason="bad_number")
    return number


def _bounded_int(text: str) -> int:
    try:
        number = int(text)  # more than 4300 digits is a ValueError of its own
    except ValueError:
        raise InvalidEvent("body holds a number too large to store", reason="bad_number") from None
    if abs(number) > 1.7976931348623157e308:  # what a float can hold: every reader turns times into floats
        raise InvalidEvent("body holds a number too large to store", reason="bad_number")
    return number


def _no_constant(name: str) -> Any:
    raise InvalidEvent(f"body holds {name}, which JSON does not allow", reason="bad_number")


def read_json_object(body: bytes | str) -> dict[str, Any]:
    """The body as a JSON object, or ``InvalidEvent`` with a one-line reason (and a ``reason`` code).

    >>> read_json_object(b'{"event": "bot.joining"}')
    {'event': 'bot.joining'}
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        payload = json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except InvalidEvent:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidEvent("body is not valid UTF-8 JSON", reason="not_json") from None
    if not isinstance(payload, dict):
        raise InvalidEvent("body must be a JSON object", reason="not_object")
    return payload
