"""Calling handlers the way Lambda does: by their dotted ``Handler`` name, with a context object."""

from __future__ import annotations

import contextvars
import functools
import importlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
_lock = threading.Lock()
_cache: dict[str, Handler] = {}
# The logical id of the function whose invocation is running on this thread (or task), so that
# what it does can be told apart from what the stack itself does (see ``aws_call_log``).
_running_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("running_function", default=None)


def running_function() -> str | None:
    """The logical id of the function being invoked here, or None outside any invocation."""
    return _running_function.get()


@contextmanager
def acting_as(function_name: str) -> Iterator[None]:
    """Mark the block as done by ``function_name`` (with its role, on AWS), e.g. Lambda's poller."""
    token = _running_function.set(function_name)
    try:
        yield
    finally:
        _running_function.reset(token)


def _attributed(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def invoke(event: dict[str, Any], context: Any) -> Any:
        with acting_as(context.function_name):
            return handler(event, context)

    return invoke


def load_handler(dotted: str) -> Handler:
    """``meetpilot.handlers.ingest.handler`` -> the function, imported once; each call runs as
    the function the Lambda context names (``running_function``)."""
    with _lock:
        if dotted not in _cache:
            module_name, _, attr = dotted.rpartition(".")
            if not module_name:
                raise ValueError(f"handler {dotted!r} is not of the form package.module.function")
            _cache[dotted] = _attributed(getattr(importlib.import_module(module_name), attr))
        return _cache[dotted]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))
