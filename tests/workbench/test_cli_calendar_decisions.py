"""`calendars events`, `calendars override` and `users bot-settings` through a stack's management API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from meetpilot_dev.cli import app
from meetpilot_dev.fakes.feeds import FeedServer
from tests.support.calendar_helpers import Ev, ics


@pytest.fixture
def deployed(api_stack, monkeypatch):
    from meetpilot_dev import client
    from meetpilot_dev.stack.embedded import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, REGION

    monkeypatch.setattr(client, "stack_outputs", lambda name, session=None: {"ManagementApiUrl": api_stack.gateway.url})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return api_stack


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--stack", "meetpilot"], terminal_width=250)
    assert result.exit_code == 0, result.output
    return result.output


def test_events_table_override_and_user_settings_from_the_command_line(deployed, api):
    start = (datetime.now(UTC) + timedelta(hours=5)).replace(second=0, microsecond=0)
    with FeedServer() as feeds:
        url = feeds.publish("cli-yan", ics([Ev("yan-1", start, url="https://zoom.us/j/7770001", title="Board")]))
        _, cal = api.post("/v1/calendars", {"provider": "ics", "feed_url": url, "user_id": "cli-yan"})
        deployed.drain()
    calendar_id = cal["calendar_id"]

    table = _run("calendars", "events", calendar_id)
    assert "yan-1" in table and "Board" in table and "recorded" in table

    skipped = _run("calendars", "override", calendar_id, "yan-1", "--skip")
    assert "yan-1: override: skip" in skipped
    assert "override: skip" in _run("calendars", "events", calendar_id)
    back = _run("calendars", "override", calendar_id, "yan-1", "--record", "--remove")
    assert "yan-1: recorded" in back

    assert "Yan Bot" in _run("users", "bot-settings", "cli-yan", "--bot-name", "Yan Bot", "--no-live")
    assert '"live_transcripts": false' in _run("users", "bot-settings", "cli-yan", "--show")
    bad = CliRunner().invoke(app, ["calendars", "events", "ics-nope", "--stack", "meetpilot"])
    assert bad.exit_code == 2 and "no calendar" in bad.output
