"""Fixtures for checking template.yaml offline: the parsed template, its SAM translation, cfn-lint."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meetpilot_dev.stack.template import load_template
from tests.infra.cfn import TEMPLATE_PATH, go_offline, translate


@pytest.fixture
def offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, no config: anything that tried to reach AWS would fail."""
    go_offline(monkeypatch)


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
