"""Keeps identifiers and tokens out of httpx's request lines for the calendar providers' hosts.

httpx logs every request's full URL at INFO (``HTTP Request: GET <url> "HTTP/1.1 200 OK"``). A
calendar URL names the calendar or user (often an e-mail address) and its query carries sync,
page and delta tokens. httpx has no per-client switch for that line, hence one filter on its
logger: for the hosts an adapter registers, the segment after each named collection becomes ``-``
and the query ``?...``; the method, host, route and status stay, and other clients' lines are left
as they are.
"""

from __future__ import annotations

import logging
import threading

import httpx


class RequestLineRedactor(logging.Filter):
    def __init__(self, name: str, *, collections: frozenset[str]) -> None:
        super().__init__(name)
        self.collections = collections  # the path segments whose next segment is an identifier
        self.hosts: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, *urls: str) -> None:
        """Redact the lines of requests to these URLs' hosts; installs the filter on first use."""
        with self._lock:
            self.hosts |= {httpx.URL(url).netloc.decode("ascii") for url in urls}
        httpx_logger = logging.getLogger("httpx")
        if self not in httpx_logger.filters:
            httpx_logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(self._redacted(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True

    def _redacted(self, url: httpx.URL) -> httpx.URL | str:
        if url.netloc.decode("ascii") not in self.hosts:
            return url
        segments = url.raw_path.split(b"?", 1)[0].decode("ascii").split("/")
        for i in range(1, len(segments)):
            if segments[i - 1] in self.collections:
                segments[i] = "-"
        return f"{url.scheme}://{url.netloc.decode('ascii')}{'/'.join(segments)}" + ("?..." if url.query else "")
