"""HTTP API entry point of the management API (IAM-authorised routes under /v1)."""

from __future__ import annotations

from typing import Any

from meetpilot.handlers.api.routes import resolve


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return resolve(event, context)
