"""`meetpilot calendars add|list|show|reconnect|remove` against a running `meetpilot dev`."""

from __future__ import annotations

import threading
import time

from typer.testing import CliRunner

from meetpilot_dev.cli import app
from meetpilot_dev.dev import STATE_FILE, run_dev
from meetpilot_dev.stack.embedded import StackOptions


def test_calendars_add_list_remove_against_the_dev_stack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stop = threading.Event()
    runner_thread = threading.Thread(
        target=run_dev, args=(stop,), kwargs={"options": StackOptions(), "say": lambda _: None}
    )
    runner_thread.start()
    try:
        while not STATE_FILE.exists() and runner_thread.is_alive():  # however long the stack takes to start
            time.sleep(0.1)
        cli = CliRunner()
        feed = "http://127.0.0.1:9/secret-feed-token/alice.ics"
        added = cli.invoke(app, ["calendars", "add", "--ics", feed, "--user", "alice", "--label", "Alice"])
        assert added.exit_code == 0, added.output
        assert "registered:" in added.output and "secret-feed-token" not in added.output
        calendar_id = added.output.split("registered:")[1].split()[0]
        again = cli.invoke(app, ["calendars", "add", "--ics", feed, "--user", "alice"])
        assert "already registered" in again.output

        listed = cli.invoke(app, ["calendars", "list", "--user", "alice"])
        assert calendar_id in listed.output and "user=alice" in listed.output

        bad = cli.invoke(app, ["calendars", "add", "--ics", "ftp://nowhere", "--user", "alice"])
        assert bad.exit_code == 2 and "http(s) or webcal" in bad.output

        removed = cli.invoke(app, ["calendars", "remove", calendar_id])
        assert removed.exit_code == 0, removed.output
        assert calendar_id not in cli.invoke(app, ["calendars", "list"]).output
        missing = cli.invoke(app, ["calendars", "remove", calendar_id])
        assert missing.exit_code == 2 and "no calendar" in missing.output
    finally:
        stop.set()
        runner_thread.join(timeout=30)


def test_calendars_connect_by_refresh_token_through_the_api_never_taking_it_as_an_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stop = threading.Event()
    runner_thread = threading.Thread(
        target=run_dev, args=(stop,), kwargs={"options": StackOptions(google_fake=True), "say": lambda _: None}
    )
    runner_thread.start()
    try:
        while not STATE_FILE.exists() and runner_thread.is_alive():
            time.sleep(0.1)
        cli = CliRunner()
        token_file = tmp_path / "alice.token"
        token_file.write_text("1//0cli-token-google-never-issued\n")
        # The token reaches Google through POST /v1/calendars (the local fake has never issued it).
        refused = cli.invoke(
            app,
            ["calendars", "add", "--provider", "google", "--user", "alice", "--refresh-token-file", str(token_file)],
        )
        assert refused.exit_code == 2 and "refresh_token: Google refused the refresh token" in refused.output
        assert "cli-token" not in refused.output
        from_stdin = cli.invoke(
            app,
            ["calendars", "add", "--provider", "microsoft", "--user", "alice", "--refresh-token-stdin"],
            input="0.AAAA-cli-microsoft-token\n",
        )
        assert from_stdin.exit_code in (1, 2) and "cli-microsoft-token" not in from_stdin.output
        neither = cli.invoke(app, ["calendars", "add", "--provider", "google", "--user", "alice"])
        assert neither.exit_code == 2 and "--refresh-token-file" in neither.output
        no_argument = cli.invoke(app, ["calendars", "add", "--provider", "google", "--refresh-token", "x"])
        assert no_argument.exit_code == 2  # there is no option that takes the token itself

        feed = "http://127.0.0.1:9/secret-feed-token/alice.ics"
        added = cli.invoke(app, ["calendars", "add", "--provider", "ics", "--feed-url", feed, "--user", "alice"])
        assert added.exit_code == 0 and "(ics, connected)" in added.output, added.output
        calendar_id = added.output.split("registered:")[1].split()[0]
        shown = cli.invoke(app, ["calendars", "show", calendar_id])
        assert shown.exit_code == 0 and "status: connected" in shown.output and "secret-feed-token" not in shown.output
        ics_token = cli.invoke(app, ["calendars", "reconnect", calendar_id, "--refresh-token-file", str(token_file)])
        assert ics_token.exit_code == 2 and "ICS calendar has no grant" in ics_token.output
        missing = cli.invoke(app, ["calendars", "show", "google-nope"])
        assert missing.exit_code == 2 and "no calendar" in missing.output
    finally:
        stop.set()
        runner_thread.join(timeout=30)
