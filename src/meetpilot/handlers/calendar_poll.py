"""Scheduled entry point (every 10 minutes): one sync job per ICS feed, and Google safety syncs."""

from __future__ import annotations

from typing import Any

from meetpilot.app.calendar_sync import enqueue_due_syncs
from meetpilot.composition import container
from meetpilot.handlers.observability import logger


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    c = container()
    counts = dict(enqueue_due_syncs(repo=c.repository, queue=c.calendar_sync_queue, clock=c.clock))
    logger.info("calendar poll", extra=counts)
    return counts
