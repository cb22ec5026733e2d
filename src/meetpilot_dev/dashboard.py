"""The local dashboard of ``meetpilot dev``: sessions, their timelines and transcripts, join
punctuality by platform, and calendars with the decision meetpilot took for each of their events
(recorded, or why not).

A page served on 127.0.0.1 that reads everything through the management API, the same routes a
deployed stack offers. The browser cannot sign requests with SigV4, so this server does: it
forwards a short list of read-only requests, signed, and answers with the API's own JSON.

    server = DashboardServer(ManagementClient.for_dev()).start()
    print(server.url)        # open it in a browser
    server.stop()
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from meetpilot.domain.punctuality import percentile
from meetpilot_dev.client import ApiError, ManagementClient, quote_segment

# What the page may ask for, and the management API route each maps to.
_LIST_PARAMS = ("status", "user_id", "calendar_event_id", "from", "to", "limit", "cursor")
_CALENDAR_PARAMS = ("user_id",)
_DECISION_PARAMS = ("from", "to", "cursor")
_FORMATS = {"txt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8", "json": "application/json"}
TRANSCRIPT_VIEW_LIMIT = 8 * 1024 * 1024  # the viewer shows at most this much of one transcript
# The page's script and styles are files of their own, so the policy allows no inline script or
# style (an injected <script> or on*= attribute does not run), and no site may frame the page.
_ASSETS = {
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
# Sessions whose bot got this far may have join figures; past the waiting room they no longer change.
_MAY_HAVE_FIGURES = frozenset({"in_waiting_room", "in_meeting", "recording", "leaving", "stopped", "done"})
_FIGURES_FINAL = _MAY_HAVE_FIGURES - {"in_waiting_room"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _Truncating:
    """A sink that keeps the first ``limit`` bytes and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> int:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        self.total += len(chunk)
        return len(chunk)


class DashboardServer:
    def __init__(self, api: ManagementClient, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Join figures of sessions past the waiting room, which never change: read once each.
        self._figures: dict[str, dict[str, Any]] = {}
        self._figures_lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "the dashboard is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> DashboardServer:
        self._server = _Server((self._host, self._port), _Handler)
        self._server.dashboard = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="meetpilot-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the routes ------------------------------------------------------------------------------

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one GET."""
        if path in ("/", "/index.html"):
            page = resources.files("meetpilot_dev").joinpath("dashboard.html").read_bytes()
            return 200, "text/html; charset=utf-8", page
        if path in _ASSETS:
            name, kind = _ASSETS[path]
            return 200, kind, resources.files("meetpilot_dev").joinpath(name).read_bytes()
        if path == "/api/sessions":
            return self._api_json("/v1/sessions", _picked(query, _LIST_PARAMS))
        if path.startswith("/api/sessions/"):
            ident = unquote(path.removeprefix("/api/sessions/"))
            return self._api_json(f"/v1/sessions/{quote_segment(ident)}", None)
        if path == "/api/punctuality":
            return self._punctuality()
        if path == "/api/calendars":
            return self._api_json("/v1/calendars", _picked(query, _CALENDAR_PARAMS))
        if path.startswith("/api/calendars/") and path.endswith("/events"):
            ident = unquote(path.removeprefix("/api/calendars/").removesuffix("/events"))
            return self._api_json(f"/v1/calendars/{quote_segment(ident)}/events", _picked(query, _DECISION_PARAMS))
        if path.startswith("/api/transcripts/"):
            ident = unquote(path.removeprefix("/api/transcripts/"))
            fmt = (query.get("format") or ["txt"])[0]
            return self._transcript(ident, fmt)
        return _error(404, f"nothing at {path}; the dashboard is at /")

    def _api_json(self, path: str, params: dict[str, str] | None) -> tuple[int, str, bytes]:
        try:
            body = self.api.get(path, params=params)
        except ApiError as exc:
            return _error(exc.status or 502, exc.message)
        return 200, "application/json", json.dumps(body).encode()

    def _punctuality(self) -> tuple[int, str, bytes]:
        """p50/p95 join lateness and admission wait by platform over the sessions the list shows."""
        try:
            page = self.api.get("/v1/sessions", params={"limit": "200"})
            views = [self._session_figures(row) for row in page.get("items", []) if row["status"] in _MAY_HAVE_FIGURES]
        except ApiError as exc:
            return _error(exc.status or 502, exc.message)
        return 200, "application/json", json.dumps({"platforms": punctuality_by_platform(views)}).encode()

    def _session_figures(self, row: dict[str, Any]) -> dict[str, Any]:
        with self._figures_lock:
            known = self._figures.get(row["session_id"])
        if known is not None:
            return known
        view = self.api.get(f"/v1/sessions/{quote_segment(row['session_id'])}")
        figures = {k: view.get(k) for k in ("platform", "join_lateness_seconds", "admission_wait_seconds")}
        if view.get("status") in _FIGURES_FINAL:
            with self._figures_lock:
                self._figures[row["session_id"]] = figures
        return figures

    def _transcript(self, ident: str, fmt: str) -> tuple[int, str, bytes]:
        if fmt not in _FORMATS:
            return _error(422, f"format must be one of {', '.join(_FORMATS)}, not {fmt!r}")
        try:
            link = self.api.get(f"/v1/transcripts/{quote_segment(ident)}", params={"format": fmt})
            sink = _Truncating(TRANSCRIPT_VIEW_LIMIT)
            self.api.download(link["url"], sink)
        except ApiError as exc:
            return _error(exc.status or 502, exc.message)
        body = bytes(sink.kept)
        if sink.total <= sink.limit:
            return 200, _FORMATS[fmt], body
        note = f"\n\n[the viewer shows the first {sink.limit} of {sink.total} bytes; download it with: "
        note += f"meetpilot transcript get {ident} --format {fmt}]\n"
        return 200, _FORMATS["txt"], body + note.encode()  # cut short: no longer valid JSON or VTT


def punctuality_by_platform(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per platform: how many sessions have each figure, and its p50 and p95 in seconds.

    Lateness is signed here (an early bot is negative), unlike the CloudWatch metric, which
    cannot have percentiles of negative values and so counts an early bot as 0 s late.
    """
    rows = []
    for platform in sorted({s.get("platform") or "Other" for s in sessions}):
        mine = [s for s in sessions if (s.get("platform") or "Other") == platform]
        row: dict[str, Any] = {"platform": platform}
        for name, key in (("lateness", "join_lateness_seconds"), ("admission_wait", "admission_wait_seconds")):
            values = [float(s[key]) for s in mine if isinstance(s.get(key), int | float)]
            row[f"{name}_count"] = len(values)
            row[f"{name}_p50"] = percentile(values, 50)
            row[f"{name}_p95"] = percentile(values, 95)
        if row["lateness_count"] or row["admission_wait_count"]:
            rows.append(row)
    return rows


def _picked(query: dict[str, list[str]], names: tuple[str, ...]) -> dict[str, str]:
    """The query parameters the API route takes; anything else the page sends is not forwarded."""
    return {name: query[name][0] for name in names if query.get(name)}


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps({"message": message}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    dashboard: DashboardServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if not self._host_allowed():
            # A page on another site could point a name of its own at 127.0.0.1 (DNS rebinding);
            # only requests addressed to this server by its loopback name are served.
            status, kind, body = _error(403, "the dashboard answers only requests to 127.0.0.1 or localhost")
        else:
            try:
                status, kind, body = self.server.dashboard.route(parts.path, parse_qs(parts.query))
            except Exception as exc:  # one bad request must not stop the dashboard
                status, kind, body = _error(500, f"the dashboard failed: {type(exc).__name__}")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Frame-Options", "DENY")  # frame-ancestors for browsers without CSP 2
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._refuse()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _refuse(self) -> None:
        status, kind, body = _error(int(HTTPStatus.METHOD_NOT_ALLOWED), "the dashboard is read-only")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Allow", "GET")
        self.end_headers()
        self.wfile.write(body)

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the dev console is for the stack's own output
