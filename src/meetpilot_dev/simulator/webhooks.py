"""Webhook delivery: POST each event as JSON, best effort, in order per bot, with injected faults.

Deliveries run on a few worker threads; a bot always maps to the same worker, so its events leave
in the order the lifecycle produced them unless the ``reorder_webhook`` fault swaps two of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from meetpilot_dev.simulator.faults import FaultInjector

logger = logging.getLogger(__name__)

_REORDER_HOLD_SECONDS = 1.0  # a held-back delivery goes out on its own after this long
_USER_AGENT = "meetstream-simulator-webhooks"


@dataclass(frozen=True)
class Delivery:
    """One event for one target URL."""

    url: str
    raw: bytes
    name: str  # the specific event name (bot_event semantics), e.g. "bot.notallowed"
    bot_id: str | None
    workspace: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def sign(secret: str, raw: bytes) -> str:
    """The value of ``X-MeetStream-Signature``: HMAC-SHA256 of the raw body, lowercase hex."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class _Stop:
    pass


_STOP = _Stop()


class WebhookDispatcher:
    def __init__(self, faults: FaultInjector, *, retries: int, timeout: float, workers: int = 4) -> None:
        self._faults = faults
        self._retries = retries
        self._timeout = timeout
        self._queues: list[queue.Queue[Delivery | _Stop]] = [queue.Queue() for _ in range(workers)]
        self._threads: list[threading.Thread] = []
        self._records: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()
        self._stopping = threading.Event()
        self._client: httpx.Client | None = None

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        # trust_env=False: deliveries go where the bot was told, never through a proxy.
        self._client = httpx.Client(timeout=self._timeout, trust_env=False)
        for index, inbox in enumerate(self._queues):
            thread = threading.Thread(
                target=self._work, args=(inbox,), name=f"meetstream-simulator-webhooks-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the workers; deliveries still queued are recorded as not sent."""
        self._stopping.set()
        for inbox in self._queues:
            inbox.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._client is not None:
            self._client.close()
            self._client = None

    def submit(self, delivery: Delivery) -> None:
        shard = zlib.crc32((delivery.bot_id or delivery.url).encode()) % len(self._queues)
        self._queues[shard].put(delivery)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._records_lock:
            return [dict(record) for record in self._records]

    def _work(self, inbox: queue.Queue[Delivery | _Stop]) -> None:
        held: Delivery | None = None
        while True:
            try:
                item = inbox.get(timeout=_REORDER_HOLD_SECONDS if held else None)
            except queue.Empty:
                if held is not None:
                    self._send(held)
                    held = None
                continue
            if isinstance(item, _Stop):
                if held is not None:
                    self._record(held, error="simulator stopped before delivery")
                return
            if self._stopping.is_set():
                self._record(item, error="simulator stopped before delivery")
                continue
            fault = self._faults.for_delivery()
            if fault.drop:
                self._record(item, dropped=True)
                continue
            if fault.reorder and held is None:
                held = item
                continue
            self._send(item)
            if fault.duplicate:
                self._send(item, duplicate=True)
            if held is not None:
                self._send(held, reordered=True)
                held = None

    def _send(self, delivery: Delivery, *, duplicate: bool = False, reordered: bool = False) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **delivery.headers}
        for attempt in range(1 + self._retries):
            if self._stopping.is_set() or self._client is None:
                self._record(delivery, error="simulator stopped before delivery")
                return
            try:
                response = self._client.post(delivery.url, content=delivery.raw, headers=headers)
            except httpx.HTTPError as exc:
                self._record(
                    delivery, error=f"{type(exc).__name__}: {exc}", attempt=attempt,
                    duplicate=duplicate, reordered=reordered,
                )  # fmt: skip
            else:
                self._record(
                    delivery, status=response.status_code, attempt=attempt,
                    duplicate=duplicate, reordered=reordered,
                )  # fmt: skip
                if response.is_success:
                    return
            if attempt < self._retries and self._stopping.wait(0.05 * 2**attempt):
                return

    def _record(
        self,
        delivery: Delivery,
        *,
        status: int | None = None,
        error: str | None = None,
        dropped: bool = False,
        duplicate: bool = False,
        reordered: bool = False,
        attempt: int = 0,
    ) -> None:
        record = {
            "url": delivery.url,
            "name": delivery.name,
            "bot_id": delivery.bot_id,
            "body": json.loads(delivery.raw),
            "headers": dict(delivery.headers),
            "workspace": delivery.workspace,
            "status": status,
            "error": error,
            "dropped": dropped,
            "duplicate": duplicate,
            "reordered": reordered,
            "attempt": attempt,
        }
        with self._records_lock:
            self._records.append(record)
