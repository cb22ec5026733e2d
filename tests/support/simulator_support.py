"""Test support for the simulator: a loopback webhook receiver and small helpers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import meetstream

from meetpilot_dev.simulator import Simulator


@dataclass(frozen=True)
class Received:
    path: str
    raw: bytes
    headers: dict[str, str]  # lower-case names

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def name(self) -> str:
        """The specific event name: bot_event, else event."""
        return self.body.get("bot_event") or self.body["event"]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200  # what to answer
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, raw, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def for_bot(self, bot_id: str, path: str | None = "/hook") -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.body.get("bot_id") == bot_id and (path is None or r.path == path)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                names = [r.name for r in snapshot]
                raise AssertionError(f"webhooks never matched; received {names}")
            time.sleep(0.01)

    def wait_for_event(self, bot_id: str, name: str, timeout: float = 5.0, path: str = "/hook") -> list[Received]:
        self.wait_for(lambda _: any(r.name == name for r in self.for_bot(bot_id, path)), timeout)
        return self.for_bot(bot_id, path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


MakeSim = Callable[..., Simulator]

MEETING = "https://meet.google.com/abc-defg-hij"

# Fast enough that a whole meeting takes a fraction of a second.
FAST = {"speed": 3600.0, "meeting_seconds": 600.0, "step_seconds": 5.0, "processing_seconds": 30.0}


def client_for(sim: Simulator, key: str | None = None, timeout: float = 5.0) -> meetstream.MeetStream:
    return meetstream.MeetStream(api_key=key or sim.api_key, base_url=sim.base_url, timeout=timeout, max_retries=0)


def bot_body(callback_url: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "meeting_link": MEETING,
        "bot_name": "Notetaker",
        "video_required": False,
        "custom_attributes": {"session": "s-1"},
        "recording_config": {"transcript": {"provider": {"deepgram": {"model": "nova-3"}}}},
    }
    if callback_url:
        body["callback_url"] = callback_url
    body.update(extra)
    return body


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
