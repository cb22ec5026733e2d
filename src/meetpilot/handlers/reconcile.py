"""Scheduled entry point (every 5 minutes) of the reconciler."""

from __future__ import annotations

from typing import Any

from meetpilot.app.reconcile import reconcile
from meetpilot.composition import container
from meetpilot.handlers.observability import logger


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    c = container()
    report = reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=c.clock,
    )
    summary = report.as_dict()
    logger.info("reconcile", extra=summary)
    return summary
