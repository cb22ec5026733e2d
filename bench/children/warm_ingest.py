"""Warm ``ingest`` overhead: serve pre-built API Gateway events in one warm process and time each.

    python warm_ingest.py config.json

config: {"mode": "stub" | "sqs", "events": path, "warmup": n, "out": path}. With "stub" the SQS
client answers at once without a request (our own cost only); with "sqs" the real client sends to
the queue the environment names (end to end). Handler logs go to stdout, as in Lambda; the parent
discards them.
"""

import gc
import json
import sys
import time
from collections import Counter


class Context:
    function_name = "IngestFunction"
    memory_limit_in_mb = 512
    function_version = "$LATEST"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:IngestFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class StubSqs:
    """Answers SendMessage like SQS would, without leaving the process."""

    def __init__(self) -> None:
        self.sent = 0

    def send_message(self, **kwargs: object) -> dict[str, str]:
        self.sent += 1
        return {"MessageId": "00000000-0000-0000-0000-000000000000"}


def empty_queue(sqs: object, url: str) -> None:
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])  # type: ignore[attr-defined]
        if not got:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[attr-defined]


def percentile(sorted_values: list[int], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def main() -> None:
    with open(sys.argv[1]) as f:
        config = json.load(f)
    with open(config["events"]) as f:
        events = json.load(f)

    from meetpilot.adapters.sqs import SqsQueue
    from meetpilot.composition import Container, use_container
    from meetpilot.handlers import ingest

    container = Container()
    use_container(container)
    stub = StubSqs()
    if config["mode"] == "stub":
        container.bot_events_queue = SqsQueue(stub, container.settings.bot_events_queue_url)
    context = Context()
    for event in events[: config["warmup"]]:
        ingest.handler(event, context)
    # A Lambda instance holds one event at a time; the thousands pre-built here would otherwise
    # make every full garbage collection walk them, a cost Lambda does not have.
    gc.collect()
    gc.freeze()
    purge_every = config.get("purge_every") or 0
    sqs = container.client("sqs") if config["mode"] == "sqs" and purge_every else None
    samples: list[int] = []
    cpu_samples: list[int] = []
    statuses: Counter[int] = Counter()
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for i, event in enumerate(events):
        if sqs is not None and i % purge_every == 0:
            # Outside the timed call: the emulator's SendMessage slows down as its queue grows
            # (real SQS does not), so the queue is emptied now and then.
            empty_queue(sqs, container.settings.bot_events_queue_url)
        started, started_cpu = clock(), cpu()
        response = ingest.handler(event, context)
        cpu_samples.append(cpu() - started_cpu)
        samples.append(clock() - started)
        statuses[response["statusCode"]] += 1
    samples.sort()
    cpu_samples.sort()
    result = {
        "mode": config["mode"],
        "deliveries": len(samples),
        "statuses": dict(statuses),
        "stub_sends": stub.sent,
        "p50_ms": percentile(samples, 0.50) / 1e6,
        "p90_ms": percentile(samples, 0.90) / 1e6,
        "p99_ms": percentile(samples, 0.99) / 1e6,
        "max_ms": samples[-1] / 1e6,
        "mean_ms": sum(samples) / len(samples) / 1e6,
        # CPU time of the serving thread: the same calls without the time this process spent
        # waiting for the CPU while other processes ran.
        "cpu_p50_ms": percentile(cpu_samples, 0.50) / 1e6,
        "cpu_p99_ms": percentile(cpu_samples, 0.99) / 1e6,
    }
    with open(config["out"], "w") as f:
        json.dump(result, f)


main()
