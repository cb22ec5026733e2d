"""SQS queues: JSON messages in, with an optional delay (the retry mechanism of our workers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds ceiling


class SqsQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self.url = queue_url

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> str:
        delay = max(0, min(MAX_DELAY_SECONDS, int(delay_seconds)))
        resp = self._sqs.send_message(
            QueueUrl=self.url,
            # ASCII-escaped: SQS refuses some characters (U+FFFE, U+FFFF, most controls) raw.
            MessageBody=json.dumps(body, separators=(",", ":"), ensure_ascii=True),
            DelaySeconds=delay,
        )
        return str(resp["MessageId"])
