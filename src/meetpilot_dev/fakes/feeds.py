"""A loopback HTTP server that serves ICS feeds for the demo and the tests, with ETags.

Each feed lives at a secret-looking path, as real iCal addresses do. A feed's body can be replaced
at any time (its ETag changes with it), and a feed can be told to answer an error status::

    with FeedServer() as feeds:
        url = feeds.publish("alice", ics_text)
        feeds.publish("alice", changed_text)   # same URL, new ETag
        feeds.fail("alice", 503)               # until the next publish
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class _Feed:
    path: str
    body: bytes
    etag: str
    status: int = 200
    content_type: str = "text/calendar; charset=utf-8"


class FeedServer:
    """Serves published feeds on 127.0.0.1; ``requests`` counts GETs per feed name."""

    def __init__(self) -> None:
        self._feeds: dict[str, _Feed] = {}
        self._by_path: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: dict[str, int] = {}
        self.not_modified: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        assert self._server is not None, "feed server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        feeds = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = feeds._answer(self.path, self.headers.get("If-None-Match"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines carry the secret feed paths

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="feed-server", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish(self, name: str, body: str | bytes, *, content_type: str = "text/calendar; charset=utf-8") -> str:
        """Serve ``body`` as feed ``name`` (replacing what it served before); returns the feed's URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            feed = self._feeds.get(name)
            path = feed.path if feed else f"/calendar/ical/{name}/private-{secrets.token_hex(12)}/basic.ics"
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            self._feeds[name] = _Feed(path, data, etag, content_type=content_type)
            self._by_path[path] = name
        return self.url(name)

    def fail(self, name: str, status: int) -> None:
        """Answer ``status`` for this feed until it is published again."""
        with self._lock:
            self._feeds[name].status = status

    def url(self, name: str) -> str:
        with self._lock:
            return self.base_url + self._feeds[name].path

    def _answer(self, path: str, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            name = self._by_path.get(path.split("?", 1)[0])
            feed = self._feeds.get(name) if name else None
            if feed is None or name is None:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            self.requests[name] = self.requests.get(name, 0) + 1
            if feed.status != 200:
                return feed.status, {"Content-Type": "text/plain"}, b"feed unavailable"
            if if_none_match and if_none_match == feed.etag:
                self.not_modified[name] = self.not_modified.get(name, 0) + 1
                return 304, {"ETag": feed.etag}, b""
            return 200, {"Content-Type": feed.content_type, "ETag": feed.etag}, feed.body
