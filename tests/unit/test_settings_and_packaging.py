"""Settings come from the environment once, with errors that name the variable; the Lambda bundle's
requirements agree with the package's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from meetpilot.errors import ConfigurationError
from meetpilot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_read_from_environment():
    s = Settings.from_env(
        {"TABLE_NAME": "t1", "LEAD_TIME_SECONDS": "120", "TRANSCRIPT_PROVIDER": "none", "BOT_NAME": "Rec"}
    )
    assert s.table_name == "t1" and s.lead_time_seconds == 120
    assert s.transcript_provider is None and s.bot_name == "Rec"
    assert Settings.from_env({}).transcript_provider == "deepgram"


@pytest.mark.parametrize("value,message", [("soon", "whole number"), ("-5", "at least 0")])
def test_bad_numbers_name_the_variable(value, message):
    with pytest.raises(ConfigurationError, match=f"LEAD_TIME_SECONDS must be .*{message}|{message}"):
        Settings.from_env({"LEAD_TIME_SECONDS": value})


def test_missing_required_setting_names_the_variable():
    with pytest.raises(ConfigurationError, match="TABLE_NAME is not set"):
        Settings.from_env({}).require("table_name")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_lambda_requirements_match_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r): r for r in project["dependencies"]}
    lines = [
        line.strip()
        for line in (ROOT / "requirements-lambda.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    bundled = {_name(r): r for r in lines}
    # boto3 ships with the Lambda runtime; everything else must be bundled, pinned the same way.
    assert set(runtime) - {"boto3"} == set(bundled)
    for name, spec in bundled.items():
        assert spec.replace(" ", "") == runtime[name].replace(" ", "")
    assert bundled["meetstream-sdk"].endswith("==1.0.0")
