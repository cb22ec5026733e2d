"""`meetpilot calendars add|list|remove` against a running `meetpilot dev`."""

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
