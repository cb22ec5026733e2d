"""One cold start: import a handler module and serve one event, or (baseline) import boto3 and
create one client. Writes its timings as JSON to the file named by the fourth argument.

    python cold_start.py handler meetpilot.handlers.ingest event.json out.json
    python cold_start.py boto3 dynamodb - out.json
    python -X importtime cold_start.py handler meetpilot.handlers.ingest event.json out.json diagnose

``diagnose`` (a separate run, never one of the timed ones) also times boto3 client creation, AWS
API calls and HTTP calls to the provider, by wrapping botocore (and httpx once something imports
it), and records every client made and call sent, in order: the script ``boto3_baseline.py`` replays.
"""

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


class Context:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = 512
        self.function_version = "$LATEST"
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "cold-start"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    mode, target, event_path, out_path = sys.argv[1:5]
    if sys.argv[5:6] == ["diagnose"]:
        from call_recorder import instrument  # beside this script

        spent, calls = instrument()
    else:
        spent, calls = None, None
    result: dict[str, object] = {"mode": mode, "target": target}
    begin = time.perf_counter()
    if mode == "boto3":
        import boto3

        imported = time.perf_counter()
        boto3.client(target)
        served = time.perf_counter()
    else:
        with open(event_path) as f:
            event = json.load(f)
        begin = time.perf_counter()
        module = importlib.import_module(target)
        imported = time.perf_counter()
        response = module.handler(event, Context(target.rsplit(".", 1)[-1]))
        served = time.perf_counter()
        result["response"] = response
    result.update(
        before_ms=(begin - STARTED) * 1000,
        import_ms=(imported - begin) * 1000,
        first_event_ms=(served - imported) * 1000,
        total_ms=(served - begin) * 1000,
    )
    if spent is not None:
        result["spent"] = spent
        result["calls"] = calls
    with open(out_path, "w") as f:
        json.dump(result, f, default=str)


main()
