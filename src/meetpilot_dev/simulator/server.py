"""The HTTP side of the simulator: a threading server on 127.0.0.1 that parses requests for the API
object and writes its replies, streaming large bodies with chunked transfer encoding.

``stop`` is thorough: it stops accepting, shuts down every open (keep-alive) connection so no
handler thread waits on a socket, and joins the handler threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from meetpilot_dev.simulator.api import MeetStreamAPI, Reply, Request

logger = logging.getLogger(__name__)

_MAX_BODY_BYTES = 1024 * 1024


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined on close
    block_on_close = True
    # A burst of clients connecting at once (the benchmarks open dozens) must queue, not be reset:
    # the listen backlog's default of 5 is far below what a real API front end accepts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: MeetStreamAPI) -> None:
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._serving: threading.Thread | None = None
        super().__init__(address, _Handler)

    def start(self) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, name="meetstream-simulator-http", daemon=True
        )
        self._serving.start()

    def stop(self) -> None:
        self.shutdown()  # returns once serve_forever has stopped accepting
        if self._serving is not None:
            self._serving.join()
        with self._connections_lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)
        self.server_close()  # closes the listening socket and joins the handler threads

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    server_version = "MeetStreamSimulator/1.0"
    timeout = 60  # an idle keep-alive connection is closed after this long
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer on a keep-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._write(Reply(411, {"message": "Send the request body with a Content-Length."}))
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY_BYTES:
            self._write(Reply(413, {"message": "Request body too large."}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = self.server.api.handle(request)
        if reply.hold_seconds and self.server.api.stopping.wait(reply.hold_seconds):
            self.close_connection = True
            return
        try:
            self._write(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. after its own timeout)

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is None:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in reply.stream:
            if piece:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")
