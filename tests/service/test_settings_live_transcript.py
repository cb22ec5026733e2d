"""LIVE_TRANSCRIPTS and EVENT_BUS_NAME: read once, checked, with defaults that fit the provider."""

from __future__ import annotations

import pytest

from meetpilot.errors import ConfigurationError
from meetpilot.settings import Settings


@pytest.mark.parametrize(
    ("provider", "mode", "wanted"),
    [
        ("deepgram_streaming", None, True),
        ("deepgram", None, False),
        ("none", None, False),
        ("deepgram", "true", True),
        ("assemblyai_streaming", "false", False),
    ],
)
def test_live_transcripts_default_to_streaming_providers(provider: str, mode: str | None, wanted: bool) -> None:
    env = {"TRANSCRIPT_PROVIDER": provider, **({"LIVE_TRANSCRIPTS": mode} if mode else {})}
    assert Settings.from_env(env).wants_live_transcripts is wanted


def test_a_bad_live_transcripts_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="LIVE_TRANSCRIPTS"):
        Settings.from_env({"LIVE_TRANSCRIPTS": "sometimes"})


def test_the_event_bus_defaults_to_the_default_bus() -> None:
    assert Settings.from_env({}).event_bus_name == "default"
    assert Settings.from_env({"EVENT_BUS_NAME": "meetings"}).event_bus_name == "meetings"
