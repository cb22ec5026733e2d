"""A loopback HTTP server that plays API Gateway (HTTP API, payload v2) in front of handlers.

Each request becomes a real v2 event (rawPath, lower-cased headers, pathParameters, base64 for
non-text bodies, requestContext) for the handler its route names, and the handler's response
is written back. Routes whose authoriser is AWS_IAM need a valid SigV4 signature (403 otherwise),
and their event carries the caller in ``requestContext.authorizer.iam``. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from meetpilot_dev.stack.invoke import Handler, LambdaContext, load_handler
from meetpilot_dev.stack.sigv4 import SignatureRejected, SigV4Verifier

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


@dataclass(frozen=True)
class GatewayRoute:
    method: str
    path: str  # template form: /webhooks/meetstream/{session_id}/{token}
    handler: str  # dotted handler name
    function_name: str
    authorizer: str | None = None  # "AWS_IAM": SigV4-signed requests only

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


def _is_text(content_type: str) -> bool:
    return any(content_type.lower().startswith(t) for t in _TEXT_TYPES) or not content_type


def build_event(
    route: GatewayRoute,
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    params: dict[str, str],
    source_ip: str,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    content_type = lowered.get("content-type", "")
    is_text = _is_text(content_type)
    if is_text:
        try:
            text: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    else:
        text = None
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": text is None and bool(body),
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode("ascii")
    return event


class Gateway:
    """Routes requests to handlers; ``start()`` returns the base URL."""

    def __init__(
        self,
        routes: list[GatewayRoute],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        iam: SigV4Verifier | None = None,
    ) -> None:
        self.routes = [(r, r.pattern()) for r in routes]
        unverifiable = [
            f"{r.method} {r.path}" for r in routes if r.authorizer and (r.authorizer != "AWS_IAM" or not iam)
        ]
        if unverifiable:
            # Serving such a route open would hide a missing signature until deployment.
            raise ValueError(f"the gateway cannot authorise {', '.join(unverifiable)}")
        self._iam = iam
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.errors = 0

    @property
    def url(self) -> str:
        assert self._server is not None, "gateway not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _match(self, method: str, path: str) -> tuple[GatewayRoute, dict[str, str]] | None:
        for route, pattern in self.routes:
            if route.method.upper() not in (method.upper(), "ANY"):
                continue
            found = pattern.match(path)
            if found:
                return route, found.groupdict()
        return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests += 1
        parts = urlsplit(target)
        matched = self._match(method, parts.path)
        if matched is None:
            return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
        route, params = matched
        authorizer = None
        if route.authorizer == "AWS_IAM":
            assert self._iam is not None
            try:
                identity = self._iam.verify(method, target, headers, body)
            except SignatureRejected as exc:
                return 403, {"content-type": "application/json"}, json.dumps({"message": str(exc)}).encode()
            authorizer = identity.as_authorizer()
        handler: Handler = load_handler(route.handler)
        event = build_event(route, method, parts.path, parts.query, headers, body, params, source_ip, authorizer)
        try:
            result = handler(event, LambdaContext(route.function_name))
        except Exception:
            # API Gateway answers 500 when the integration fails; the handler's traceback stays
            # in its own logs.
            self.errors += 1
            return 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
        return _to_http(result)

    def start(self) -> str:
        if self._server is not None:
            return self.url
        gateway = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._write(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                    return
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.handle(
                    self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
                )
                self._write(status, headers, payload)

            def _write(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def __getattr__(self, name: str) -> Any:
                # Any other method (HEAD, TRACE, QUERY, ...) reaches the router too, so one that no
                # route serves gets API Gateway's JSON 404 rather than the server's own 501 page.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines would print capability tokens from the path

        self._server = ThreadingHTTPServer((self._host, self._port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None


def _to_http(result: Any) -> tuple[int, dict[str, str], bytes]:
    """API Gateway v2's interpretation of a handler's return value."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        return int(result["statusCode"]), headers, body
    # A bare value is serialised as JSON with status 200, as the v2 payload format does.
    return 200, {"content-type": "application/json"}, json.dumps(result).encode("utf-8")
