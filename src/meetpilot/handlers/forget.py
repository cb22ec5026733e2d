"""HTTP API entry point of the forget route (POST /v1/forget, IAM-authorised), run by its own function
so that the delete permissions forgetting needs sit on a role that serves nothing else."""

from __future__ import annotations

from typing import Any

from meetpilot.handlers.api.routes import FORGET_ROUTE, resolve
from meetpilot.handlers.apigw import json_response

ROUTE_KEY = f"POST {FORGET_ROUTE}"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # API Gateway sends this function only its own route; anything else is not its job.
    if event.get("routeKey") != ROUTE_KEY:
        return json_response(404, {"message": "this function only serves POST /v1/forget"})
    return resolve(event, context)
