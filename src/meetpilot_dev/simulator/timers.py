"""One background thread that runs callbacks at given real-time offsets (the bots' lifecycles)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Timers:
    """A heap of due times served by a single thread; ``stop`` wakes it and joins it."""

    def __init__(self, name: str = "meetstream-simulator-timers") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._wake:
            if self._stopping:
                return
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._order), callback))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._heap.clear()
            self._wake.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, callback = heapq.heappop(self._heap)
                        break
                    self._wake.wait(self._heap[0][0] - now if self._heap else None)
            try:
                callback()
            except Exception:  # a broken step must not stop every other bot
                logger.exception("simulator timer callback failed")
