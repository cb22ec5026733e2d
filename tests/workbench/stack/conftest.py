"""Fixtures shared by the emulator's tests."""

from __future__ import annotations

import pytest

REGION = "us-east-1"


@pytest.fixture
def in_process_moto(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and region for boto3 against moto in this process (``mock_aws``); the region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    return REGION
