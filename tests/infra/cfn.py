"""Offline CloudFormation tooling for the template tests: SAM translation and cfn-lint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"
# What `sam package` puts in place of `CodeUri: .` (and a layer's `ContentUri`); the translator only
# accepts S3 locations.
PACKAGED_CODE_URI = "s3://meetpilot-artifacts-example/meetpilot.zip"
LINT_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
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


class _NoManagedPolicyLookups:
    """The translator asks IAM for managed-policy ARNs only for policies named by name; we use none."""

    def load(self) -> dict[str, str]:
        raise AssertionError("the SAM translator tried to look up managed policies in IAM")


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """The plain CloudFormation that SAM turns ``template`` into, as `sam deploy` would send it."""
    transform = pytest.importorskip(
        "samtranslator.translator.transform",
        reason="aws-sam-translator is not installed (it belongs in the dev extras)",
    ).transform
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = PACKAGED_CODE_URI
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = PACKAGED_CODE_URI
    return transform(packaged, {}, _NoManagedPolicyLookups())


def lint_findings(source: Path | str) -> list[Any]:
    """cfn-lint's findings (errors, warnings and informational) for a template file or text."""
    from cfnlint.api import lint, lint_file
    from cfnlint.config import ManualArgs

    config = ManualArgs(regions=LINT_REGIONS, include_checks=["I"])
    if isinstance(source, Path):
        return lint_file(source, config=config)
    return lint(source, config=config)


def describe(findings: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} {m.message} (line {m.linenumber})" for m in findings)


def template_text(path: Path = TEMPLATE_PATH) -> str:
    return path.read_text(encoding="utf-8")
