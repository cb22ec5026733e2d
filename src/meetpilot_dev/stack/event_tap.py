"""See what meetpilot publishes to EventBridge in the local stack.

The emulator's EventBridge routes events by rule like AWS does; the tap is a rule on the bus that
matches ``source: meetpilot`` and targets an SQS queue of its own, so tests and ``meetpilot dev``
read back the real events, as a downstream consumer subscribed to the bus would get them::

    tap = EventTap.create(events_client, sqs_client, bus="default", queue_name="meetpilot-local-events")
    for event in tap.drain():
        print(event["detail-type"], event["detail"]["session_id"])
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from meetpilot.domain.notifications import SOURCE

RULE_NAME = "meetpilot-local-tap"


@dataclass
class EventTap:
    sqs: Any
    queue_url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, events: Any, sqs: Any, *, bus: str, queue_name: str) -> EventTap:
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if bus != "default":
            with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
                events.create_event_bus(Name=bus)
        events.put_rule(
            Name=RULE_NAME, EventBusName=bus, EventPattern=json.dumps({"source": [SOURCE]}), State="ENABLED"
        )
        events.put_targets(Rule=RULE_NAME, EventBusName=bus, Targets=[{"Id": "local-tap", "Arn": arn}])
        return cls(sqs, queue_url)

    def drain(self) -> list[dict[str, Any]]:
        """Every event published so far (each EventBridge envelope, ``detail`` parsed), oldest first."""
        with self._lock:
            while True:
                got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                messages = got.get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    envelope = json.loads(message["Body"])
                    if isinstance(envelope.get("detail"), str):
                        envelope["detail"] = json.loads(envelope["detail"])
                    self.seen.append(envelope)
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return list(self.seen)
