"""Scheduled entry point (every 5 minutes) of the reconciler, which also renews calendar push channels
and Graph subscriptions.

A little over 40 lines: the channel renewal is handed in as a step with its own id and token makers.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from meetpilot.app.calendar_sync import renew_expiring_channels
from meetpilot.app.reconcile import reconcile
from meetpilot.composition import container
from meetpilot.handlers.observability import instrumented, logger, publish_punctuality


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    c = container()

    def renew_channels() -> Mapping[str, int]:
        return renew_expiring_channels(
            repo=c.repository,
            google=lambda: c.google_calendars,
            address=c.google_push_address,
            clock=c.clock,
            new_id=lambda: str(uuid.uuid4()),
            new_token=lambda: secrets.token_urlsafe(32),
            microsoft=lambda: c.microsoft_calendars,
            graph=c.graph_subscriptions,
            sync_queue=c.calendar_sync_queue,
        )

    report = reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=c.clock,
        calendar_step=renew_channels,
    )
    for meeting_key, figures in report.punctuality:
        publish_punctuality(meeting_key, figures)
    summary = report.as_dict()
    logger.info("reconcile", extra=summary)
    return summary
