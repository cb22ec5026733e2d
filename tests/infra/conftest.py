"""Fixtures for checking template.yaml offline: the parsed template, its SAM translation, cfn-lint."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meetpilot.local.template import load_template
from tests.infra.cfn import TEMPLATE_PATH, translate


@pytest.fixture
def offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, no config: anything that tried to reach AWS would fail."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    # The translator builds partition-aware ARNs from the session's region.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


@pytest.fixture
def tpl(template: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the template that a test may modify."""
    return copy.deepcopy(template)


@pytest.fixture
def translated(offline_aws: None, template: dict[str, Any]) -> dict[str, Any]:
    return translate(template)
