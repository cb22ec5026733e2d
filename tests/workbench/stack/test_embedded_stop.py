"""Stopping the local stack: the batch a poller holds finishes against a live emulator."""

from __future__ import annotations

import threading
import time
from typing import Any

from meetpilot_dev.stack.embedded import LocalStack, StackOptions


def test_stop_lets_the_batch_a_poller_holds_finish_before_the_emulator_goes():
    stack = LocalStack(StackOptions(pollers_per_queue=1)).start()
    feeder = stack.feeders["CalendarSyncFunction"]
    sqs = stack.container.client("sqs")
    entered = threading.Event()
    finished: list[Any] = []

    def slow(handler: Any) -> Any:
        def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
            entered.set()
            # A batch that outlasts what stop() once gave it (5 s, then the simulator and gateway took
            # their time): a long transcript on a busy CPU.
            time.sleep(9)
            try:  # its last call, on a connection of its own (a pooled one could outlive the server)
                fresh = stack.boto_session.client("sqs", endpoint_url=stack.aws_endpoint)
                fresh.get_queue_attributes(QueueUrl=feeder.queue_url, AttributeNames=["QueueArn"])
                finished.append("written")
            except Exception as exc:
                finished.append(exc)
            return {"batchItemFailures": []}

        return run

    feeder.wrap_handler(slow)
    try:
        sqs.send_message(QueueUrl=feeder.queue_url, MessageBody="{}")
        assert entered.wait(timeout=120), "no poller took the message"
    finally:
        stack.stop()
    assert finished == ["written"]
    assert stack.handler_errors == []
