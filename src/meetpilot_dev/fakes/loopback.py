"""The HTTP side of the provider fakes: one threaded HTTP/1.1 server on 127.0.0.1 per fake.

A fake is a plain object answering ``handle(method, target, headers, body) -> Reply``; this server
turns requests into that call and the reply into JSON. Stopping it also closes idle keep-alive
connections, so no handler thread outlives a test.

    server = LoopbackServer(fake.handle, name="fake-google-calendar", ...)
    base_url = server.start()
    server.stop()
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    """What a fake answers: a status, a JSON body (None: no body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handle = Callable[[str, str, dict[str, str], bytes], Reply]


class LoopbackServer:
    """Serves one fake on an ephemeral port of 127.0.0.1.

    ``too_large`` and ``failed`` are the fake's own error replies (each provider words them its
    way) for a body over ``max_body`` bytes and for a bug in the fake, which must come back as a
    500 rather than a hung client.
    """

    def __init__(
        self,
        handle: Handle,
        *,
        name: str,
        content_type: str,
        too_large: Callable[[], Reply],
        failed: Callable[[], Reply],
        max_body: int = 1024 * 1024,
        log: logging.Logger = logger,
    ) -> None:
        self.handle = handle
        # The fake's own logger: its request lines name what the service keeps out of its logs
        # (calendar ids, tokens), and tests that scan the service's logs leave the fakes' out by name.
        self.log = log
        self.name = name
        self.content_type = content_type
        self.too_large = too_large
        self.failed = failed
        self.max_body = max_body
        self.base_url = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Serve, and return the base URL (the same one when already serving)."""
        if self._server is not None:
            return self.base_url
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()
        self._server = None
        self._thread = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: LoopbackServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close idle keep-alive connections so no handler thread outlives the server."""
        with self._connections_lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def version_string(self) -> str:
        return self.server.owner.name

    def log_message(self, format: str, *args: Any) -> None:
        self.server.owner.log.debug(f"{self.server.owner.name}: " + format, *args)

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length > owner.max_body:
            self._write(owner.too_large())
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = owner.handle(self.command, self.path, headers, body)
        except Exception:  # a bug in the fake must show up as a 500, not a hung client
            owner.log.exception("%s failed on %s", owner.name, self.command)
            reply = owner.failed()
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", self.server.owner.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)


class ServedFake:
    """Start, stop and ``with`` for a fake whose ``_http`` is its LoopbackServer."""

    _http: LoopbackServer
    base_url: str = ""

    def start(self) -> str:
        """Serve on 127.0.0.1 and return the base URL."""
        self.base_url = self._http.start()
        return self.base_url

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
