"""The committed OpenAPI document is the generated one, and the running API keeps to it
(schemathesis against the local stack: no 5xx, every answer matches its declared schema)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from meetpilot_dev.openapi import openapi_json
from meetpilot_dev.stack.embedded import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, REGION

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_document_is_current():
    assert DOCUMENT.read_text() == openapi_json(), "regenerate it: meetpilot api openapi > docs/openapi.json"


def test_every_route_of_the_template_is_in_the_document(api_stack):
    from meetpilot_dev.stack.template import http_routes

    paths = json.loads(DOCUMENT.read_text())["paths"]
    for route in http_routes(api_stack.template):
        if route.function_logical_id in ("ManagementFunction", "ForgetFunction"):
            assert route.method.lower() in paths[route.path], route


class _SigV4(requests.auth.AuthBase):
    """Signs each generated request with the local stack's credentials, as the CLI does."""

    def __call__(self, request):
        signed = AWSRequest(method=request.method, url=request.url, data=request.body or b"", headers={})
        if request.headers.get("Content-Type"):
            signed.headers["Content-Type"] = request.headers["Content-Type"]
        SigV4Auth(Credentials(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY), "execute-api", REGION).add_auth(signed)
        for name, value in signed.headers.items():
            request.headers[name] = value
        return request


schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))


@pytest.fixture(scope="module")
def signed_session():
    session = requests.Session()
    session.auth = _SigV4()
    yield session
    session.close()


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_to_its_document(case, api_stack, signed_session):
    case.call_and_validate(
        base_url=api_stack.gateway.url,
        session=signed_session,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
