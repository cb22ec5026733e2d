"""What a cold start spends on clients, AWS calls and HTTP calls, and the calls themselves in order:
installed by ``cold_start.py`` and ``boto3_baseline.py`` in their ``diagnose`` runs, never in a
timed one. The recorded list is the script the hand-written baseline replays."""

import sys
import time


def _plain(value):  # type: ignore[no-untyped-def]
    """A call's parameters as JSON a replay can send again (bytes and bodies by their size)."""
    import datetime

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": len(value)}
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "read"):  # a file-like body: replayed as that many bytes
        try:
            position = value.tell()
            size = value.seek(0, 2) - position
            value.seek(position)
        except (AttributeError, OSError, ValueError):
            size = 0
        return {"__bytes__": size}
    return str(value)


def _after_import(name: str, patch) -> None:  # type: ignore[no-untyped-def]
    """Run ``patch(module)`` once ``name`` is imported by someone else: importing it here would add
    its imports to a handler that never loads it."""
    import importlib.abc
    import importlib.util

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            if spec is not None and spec.loader is not None:
                original = spec.loader.exec_module

                def exec_module(module):  # type: ignore[no-untyped-def]
                    original(module)
                    patch(module)

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Finder())


def instrument() -> tuple[dict[str, float], list[dict[str, object]]]:
    """Time client creation, AWS calls and HTTP sends, and record each call in order (what the
    hand-written baseline replays)."""
    import botocore.client
    import botocore.session

    spent = {"clients": 0, "client_ms": 0.0, "aws_calls": 0, "aws_call_ms": 0.0, "http_calls": 0, "http_ms": 0.0}
    calls: list[dict[str, object]] = []

    def timed(function, count_key, time_key, record=None):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            entry = record(*args, **kwargs) if record else None
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if entry is not None:
                    entry["error"] = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
                raise
            finally:
                spent[count_key] += 1
                spent[time_key] += (time.perf_counter() - began) * 1000

        return wrapper

    def client_made(session, service_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        entry = {"kind": "client", "service": service_name}
        calls.append(entry)
        return entry

    def aws_call(client, operation, params):  # type: ignore[no-untyped-def]
        entry = {"kind": "aws", "service": client.meta.service_model.service_name, "operation": operation,
                 "params": _plain(params)}  # fmt: skip
        calls.append(entry)
        return entry

    def http_send(client, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        # The Authorization header is left out: the replay reads the API key from SSM, as the handler did.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "content-length")}
        try:
            body = request.content
        except Exception:  # a streamed body (none of the provider calls sends one)
            body = b""
        entry = {"kind": "http", "method": request.method, "url": str(request.url), "headers": headers,
                 "body": body.decode("utf-8", "replace")}  # fmt: skip
        calls.append(entry)
        return entry

    botocore.session.Session.create_client = timed(
        botocore.session.Session.create_client, "clients", "client_ms", client_made
    )
    botocore.client.BaseClient._make_api_call = timed(
        botocore.client.BaseClient._make_api_call, "aws_calls", "aws_call_ms", aws_call
    )

    def patch_httpx(httpx):  # type: ignore[no-untyped-def]
        httpx.Client.send = timed(httpx.Client.send, "http_calls", "http_ms", http_send)

    if "httpx" in sys.modules:
        patch_httpx(sys.modules["httpx"])
    else:
        _after_import("httpx", patch_httpx)
    return spent, calls
