"""The management API's OpenAPI document, generated from its routes and models.

``docs/openapi.json`` is this document as ``meetpilot api openapi`` prints it; a test fails when the
committed copy is stale.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from meetpilot import __version__
from meetpilot.handlers.api.routes import app

SIGV4_SCHEME = "sigv4"
_DESCRIPTION = (
    "Operate meetpilot: ask for bots in meetings, follow their sessions, download transcripts and manage "
    "the calendars it watches. Every request is signed with AWS Signature Version 4 (service execute-api) "
    "by a principal allowed execute-api:Invoke on the API; the stack output ManagementApiUrl is the base "
    "URL. Errors are JSON objects with a message."
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document of every route under /v1, with SigV4 as its security scheme."""
    text = app.get_openapi_json_schema(
        title="meetpilot management API",
        version=__version__,
        description=_DESCRIPTION,
        security_schemes={
            SIGV4_SCHEME: APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="an AWS SigV4 Authorization header (with X-Amz-Date), service execute-api",
            )
        },
        security=[{SIGV4_SCHEME: []}],
    )
    document: dict[str, Any] = json.loads(text)
    # Powertools adds its own 422 schema to every operation; ours is {"message": ...} like every error.
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None:
                invalid["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    document["servers"] = [{"url": "/", "description": "the stack's ManagementApiUrl output"}]
    return document


def openapi_json() -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
