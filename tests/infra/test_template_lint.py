"""cfn-lint passes template.yaml (and SAM's translation of it) with no errors or warnings, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import TEMPLATE_PATH, describe, lint_findings, template_text, translate

pytestmark = pytest.mark.usefixtures("offline_aws")


def _serious(findings: list[Any]) -> list[Any]:
    # Informational findings (I...) are advice; errors and warnings must be fixed.
    return [m for m in findings if m.rule.id[0] in ("E", "W")]


def test_template_has_no_lint_errors_or_warnings() -> None:
    findings = _serious(lint_findings(TEMPLATE_PATH))
    assert not findings, describe(findings)


def test_translated_template_has_no_lint_errors_or_warnings(template: dict[str, Any]) -> None:
    # cfn-lint checks SAM resources against SAM's own schema; the generated event source mappings,
    # permissions and API stage are only checked once SAM has turned them into CloudFormation.
    findings = _serious(lint_findings(json.dumps(translate(template))))
    assert not findings, describe(findings)


def test_lint_catches_an_unsupported_runtime(tmp_path: Path) -> None:
    broken = template_text().replace("Runtime: python3.13", "Runtime: python3.7")
    assert broken != template_text()
    path = tmp_path / "template.yaml"
    path.write_text(broken, encoding="utf-8")

    findings = _serious(lint_findings(path))

    assert any(m.rule.id.startswith("E25") and "python3.7" in m.message for m in findings), describe(findings)


def test_lint_catches_a_concurrency_cap_below_the_minimum(tpl: dict[str, Any]) -> None:
    events = tpl["Resources"]["DispatchFunction"]["Properties"]["Events"]
    (due,) = (e for e in events.values() if e["Type"] == "SQS")
    due["Properties"]["ScalingConfig"]["MaximumConcurrency"] = 1  # SQS event sources need at least 2

    findings = _serious(lint_findings(json.dumps(translate(tpl))))

    assert any(m.rule.id == "E3034" for m in findings), describe(findings)
