"""What a test's code logged or printed, as one text to search for what must never be there."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the moment: capsys swaps it in only for the test call."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def record_text(record: logging.LogRecord) -> str:
    """A record as fully as any handler could render it: message, extras, traceback."""
    extras = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")}
    parts = [record.getMessage(), json.dumps(extras, default=repr)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return " ".join(parts)


@contextmanager
def captured_text(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    *,
    skip: Callable[[logging.LogRecord], bool] = lambda record: False,
) -> Iterator[Callable[[], str]]:
    """Everything logged from now on (records with their extras, stdout, stderr), as one text.

    Powertools' handler took hold of sys.stdout when it was imported; it is pointed at the stdout
    that capsys reads, so its JSON lines (extras included) are part of what is searched.
    """
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="meetpilot")
    handlers = [h for h in logging.getLogger("meetpilot").handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.stream = _CurrentStdout()

    def text() -> str:
        out = capsys.readouterr()
        records = [record_text(r) for r in caplog.records if not skip(r)]
        return "\n".join([*records, out.out, out.err])

    try:
        yield text
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.stream = stream
