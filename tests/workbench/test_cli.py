"""Every management command of the CLI against a running `meetpilot dev` stack (the state file it
writes in the working directory), through the signed management API."""

from __future__ import annotations

import json
import threading
import time

import pytest
from typer.testing import CliRunner

from meetpilot_dev import cli
from meetpilot_dev.cli import app
from meetpilot_dev.dev import STATE_FILE, run_dev
from meetpilot_dev.stack.embedded import StackOptions

COMMANDS = [
    ["meetings", "add"],
    ["meetings", "cancel"],
    ["sessions", "list"],
    ["sessions", "show"],
    ["sessions", "watch"],
    ["transcript", "get"],
    ["calendars", "add"],
    ["calendars", "list"],
    ["calendars", "remove"],
    ["calendars", "events"],
    ["calendars", "override"],
    ["users", "bot-settings"],
    ["redrive"],
    ["reconcile"],
    ["forget"],
    ["api", "openapi"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself_with_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Example: meetpilot " + command[0] in result.output


@pytest.fixture
def dev_stack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.console, "width", 250)  # wide tables: whole bot ids in the output
    stop = threading.Event()
    runner = threading.Thread(target=run_dev, args=(stop,), kwargs={"options": StackOptions(), "say": lambda _: None})
    runner.start()
    deadline = time.monotonic() + 30
    while not STATE_FILE.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    yield tmp_path
    stop.set()
    runner.join(timeout=30)


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=250)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_meeting_from_the_command_line_to_its_transcript(dev_stack):
    added = _run("meetings", "add", "https://meet.google.com/cli-test-one", "--in", "5", "--user", "zoe")
    assert added.startswith("queued https://meet.google.com/cli-test-one|")

    session = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # The stack's handlers run in this process and print their metrics lines to the same stdout.
        lines = _run("sessions", "list", "--user", "zoe", "--json").splitlines()
        rows = [json.loads(line) for line in lines if line.startswith('{"session_id"')]
        if rows and rows[0]["bot_id"]:
            shown = _run("sessions", "show", rows[0]["bot_id"], "--json")
            session = json.loads(shown[shown.index('{\n  "session_id"') :])
            if session["outcome"]:
                break
        time.sleep(0.5)
    assert session is not None and session["outcome"] == "transcript_stored", session
    bot = session["bot_id"]

    shown = _run("sessions", "show", bot)
    assert "history" in shown and "transcript_stored" in shown and "bot." in shown, shown
    # The simulator's timestamps give the join figures, shown on a line of their own.
    assert session["platform"] == "Google Meet" and session["admission_wait_seconds"] >= 0, session
    joined = [line for line in shown.splitlines() if line.startswith("  joined    : ")]
    assert joined and " on Google Meet, admitted after " in joined[0], shown
    table = _run("sessions", "list", "--status", session["status"])
    assert bot in table
    watched = _run("sessions", "watch", "--user", "zoe", "--count", "2", "--interval", "0.2")
    assert bot in watched

    _run("transcript", "get", bot, "--format", "vtt", "--out", "t.vtt")
    assert (dev_stack / "t.vtt").read_text().startswith("WEBVTT")
    _run("transcript", "get", bot, "--format", "json")
    assert json.loads((dev_stack / f"{bot}.json").read_text())
    assert _run("transcript", "get", bot, "--out", "-").strip()

    assert "checked: " in _run("reconcile")  # one round ran against the dev stack's table
    assert "moved 0 message(s)" in _run("redrive", "dispatch")
    forgotten = CliRunner().invoke(app, ["forget", bot])
    assert forgotten.exit_code == 0, forgotten.output
    missing = CliRunner().invoke(app, ["sessions", "show", bot])
    assert missing.exit_code == 2 and "no session" in missing.output


def test_cancel_from_the_command_line_by_id_or_by_link(dev_stack):
    added = _run("meetings", "add", "https://zoom.us/j/4440001", "--start", "2030-01-01T10:00:00Z")
    meeting_id = added.split("meeting id:")[1].split()[0]
    assert "cancelled" in _run("meetings", "cancel", meeting_id)
    _run("meetings", "add", "https://zoom.us/j/4440002", "--start", "2030-01-01T11:00:00Z")
    by_link = _run("meetings", "cancel", "https://zoom.us/j/4440002", "--start", "2030-01-01T11:00:00Z")
    assert "cancelled" in by_link
    unknown = CliRunner().invoke(app, ["meetings", "cancel", "https://zoom.us/j/9", "--start", "2030-01-01T11:00:00Z"])
    assert unknown.exit_code == 2 and "no such meeting" in unknown.output
    bad = CliRunner().invoke(app, ["meetings", "add", "not a link", "--in", "60"])
    assert bad.exit_code == 2 and "meeting URL" in bad.output


def test_without_a_running_stack_the_commands_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sessions", "list"])
    assert result.exit_code == 2 and "meetpilot dev" in result.output and "--stack" in result.output


def test_forget_with_stack_goes_through_the_deployed_stacks_forget_route(api_stack, api, monkeypatch):
    # A "deployed" stack whose ManagementApiUrl output is the local gateway, called with the
    # caller's own AWS credentials (from the environment, as for the AWS CLI).
    from meetpilot_dev import client
    from meetpilot_dev.stack.embedded import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, REGION

    monkeypatch.setattr(client, "stack_outputs", lambda name, session=None: {"ManagementApiUrl": api_stack.gateway.url})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    status, made = api.post(
        "/v1/meetings",
        {"meeting_url": "https://zoom.us/j/5550001", "start": "2030-02-01T10:00:00Z", "user_id": "cli-ann"},
    )
    assert status == 201

    done = CliRunner().invoke(app, ["forget", "--user", "cli-ann", "--stack", "meetpilot"], terminal_width=250)
    assert done.exit_code == 0, done.output
    assert "user cli-ann" in done.output and "meetings 1" in done.output
    with pytest.raises(client.ApiError) as gone:
        api.get(f"/v1/meetings/{made['meeting_id']}")
    assert gone.value.status == 404
    again = CliRunner().invoke(app, ["forget", "--user", "cli-ann", "--stack", "meetpilot"])
    assert again.exit_code == 2 and "knows no meetings or calendars of user cli-ann" in again.output
    neither = CliRunner().invoke(app, ["forget", "--user", "cli-ann", "--meeting", "x"])
    assert neither.exit_code == 2 and "exactly one" in neither.output
