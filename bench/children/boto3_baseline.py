"""The hand-written baseline of one handler's cold start: plain boto3 (and httpx for the provider)
making the same calls, in the same order, with the same clients, that a recorded run of the handler
made for the same kind of first event. No framework, no models, no adapters, no provider SDK (httpx
is the transport that SDK uses, and what a hand-written function would take): the least a function
that does this work must pay.

    python boto3_baseline.py calls.json event.json out.json [diagnose]

``calls.json`` is the ``calls`` list a ``cold_start.py ... diagnose`` run of the handler wrote (its
clients, AWS calls and HTTP calls), so the baseline follows the handler when its calls change. The
replay sends the recorded parameters again: a conditional write that succeeded for the handler may
fail here (the item is already there), which costs the emulator the same read and a short answer;
the error codes are kept in the output (a replayed create_bot is answered 507, MeetStream's replay of
an Idempotency-Key). The provider's API key is read from the recorded SSM answer, never from the
recording. ``diagnose`` records the baseline's own calls the
same way, so the two lists can be compared.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def _sendable(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return b"x" * int(value["__bytes__"])
        if set(value) == {"__datetime__"}:
            from datetime import datetime

            return datetime.fromisoformat(value["__datetime__"])
        return {k: _sendable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sendable(v) for v in value]
    return value


def main() -> None:
    calls_path, event_path, out_path = sys.argv[1:4]
    diagnose = sys.argv[4:5] == ["diagnose"]
    with open(calls_path) as f:
        script = json.load(f)
    recorder = None
    if diagnose:
        from call_recorder import instrument  # beside this script

        recorder = instrument()
    begin = time.perf_counter()
    import boto3
    from botocore.exceptions import ClientError

    imported = time.perf_counter()
    with open(event_path) as f:
        json.load(f)  # the event is read, as the handler reads it
    session = boto3.session.Session()
    clients = {}
    api_key_param = os.environ.get("MEETSTREAM_API_KEY_PARAM", "")
    api_key = ""
    errors: list[str | None] = []
    http = None
    for step in script:
        if step["kind"] == "client":
            if step["service"] not in clients:
                clients[step["service"]] = session.client(step["service"])
        elif step["kind"] == "aws":
            if step["service"] not in clients:
                clients[step["service"]] = session.client(step["service"])
            client = clients[step["service"]]
            method = getattr(client, _method_name(client, step["operation"]))
            try:
                answer = method(**_sendable(step["params"]))
                errors.append(None)
            except ClientError as exc:
                errors.append(exc.response.get("Error", {}).get("Code"))
                continue
            parameter = answer.get("Parameter") if isinstance(answer, dict) else None
            if parameter and parameter.get("Name") == api_key_param:
                api_key = parameter.get("Value", "")
        elif step["kind"] == "http":
            # Without httpx's command-line tool (rich, click), as in Lambda, where they are not installed.
            sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
            import httpx  # the transport the provider's SDK uses, without the SDK

            headers = dict(step["headers"])
            if api_key:
                headers["Authorization"] = f"Token {api_key}"
            body = step["body"].encode() if step["body"] else None
            if http is None:
                http = httpx.Client(timeout=10)
            answer = http.request(step["method"], step["url"], content=body, headers=headers)
            errors.append(None if answer.status_code < 400 else str(answer.status_code))
    served = time.perf_counter()
    result: dict[str, object] = {
        "mode": "baseline",
        "before_ms": (begin - STARTED) * 1000,
        "import_ms": (imported - begin) * 1000,
        "first_event_ms": (served - imported) * 1000,
        "total_ms": (served - begin) * 1000,
        "errors": errors,
    }
    if recorder is not None:
        result["spent"], result["calls"] = recorder
    with open(out_path, "w") as f:
        json.dump(result, f, default=str)


def _method_name(client, operation: str) -> str:  # type: ignore[no-untyped-def]
    """The client method for an operation name (PutItem -> put_item), from the client's own map."""
    return next(py for py, api in client.meta.method_to_api_mapping.items() if api == operation)


main()
