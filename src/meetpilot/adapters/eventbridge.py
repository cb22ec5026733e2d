"""The EventBridge publisher: the stream publisher's events become ``PutEvents`` entries on the configured bus."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from meetpilot.domain.notifications import SOURCE

_BATCH = 10  # PutEvents takes at most 10 entries per call


class EventBridgePublisher:
    """``publish`` returns the ids of the accepted events; botocore already retries throttling."""

    def __init__(self, client: Any, bus_name: str = "default", *, source: str = SOURCE) -> None:
        self._events = client
        self.bus_name = bus_name or "default"
        self.source = source

    def publish(self, entries: Sequence[Mapping[str, Any]]) -> set[str]:
        accepted: set[str] = set()
        for start in range(0, len(entries), _BATCH):
            batch = list(entries[start : start + _BATCH])
            request = [
                {
                    "Source": self.source,
                    "DetailType": entry["detail_type"],
                    "Detail": json.dumps(entry["detail"], separators=(",", ":"), default=str),
                    "EventBusName": self.bus_name,
                    # Consumers can filter on the bot or meeting; the session is the event's subject.
                    "Resources": [],
                }
                for entry in batch
            ]
            response = self._events.put_events(Entries=request)
            # Results come back in request order; a failed entry has an ErrorCode instead of an id.
            for entry, result in zip(batch, response.get("Entries", []), strict=False):
                if result.get("EventId") and not result.get("ErrorCode"):
                    accepted.add(entry["detail"]["event_id"])
        return accepted
