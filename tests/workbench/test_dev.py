"""`meetpilot dev` starts everything on loopback and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from meetpilot_dev.dev import run_dev
from meetpilot_dev.stack.embedded import StackOptions


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((parts.hostname, parts.port)) == 0


def test_dev_starts_on_loopback_and_stops_leaving_no_socket_or_thread(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    stop = threading.Event()
    lines: list[str] = []
    state_path = tmp_path / "dev.json"
    runner = threading.Thread(
        target=run_dev, args=(stop,), kwargs={"options": StackOptions(), "say": lines.append, "state_path": state_path}
    )
    runner.start()
    while not state_path.exists() and runner.is_alive():  # however long the stack takes to start
        time.sleep(0.1)
    state = json.loads(state_path.read_text())
    urls = [state["gateway"], state["simulator"], state["environment"]["AWS_ENDPOINT_URL"]]
    for url in urls:
        assert urlsplit(url).hostname == "127.0.0.1"
        assert _listening(url)
    text = "\n".join(lines)
    assert f"export AWS_ENDPOINT_URL={state['environment']['AWS_ENDPOINT_URL']}" in text
    assert "export DISPATCH_QUEUE_URL=" in text

    stop.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert lines[-1] == "meetpilot dev stopped"
    assert not state_path.exists()
    for url in urls:
        assert not _listening(url), url
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not leftover:
            break
        time.sleep(0.1)
    assert leftover == [], [t.name for t in leftover]


def test_dev_command_prints_whole_export_lines_to_a_pipe_and_stops_cleanly_on_sigterm(tmp_path):
    meetpilot = Path(sys.executable).with_name("meetpilot")
    process = subprocess.Popen(
        [str(meetpilot), "dev", "--no-dashboard"],
        cwd=tmp_path,  # the state file goes to .meetpilot/ here
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    try:
        lines: list[str] = []
        for line in process.stdout:  # ends when the process does, so this waits on output, not a clock
            lines.append(line.rstrip("\n"))
            if line.startswith("  meetpilot sessions watch"):
                break
        environment = json.loads((tmp_path / ".meetpilot" / "dev.json").read_text())["environment"]
        exports = [line for line in lines if line.lstrip().startswith("export ")]
        assert exports == [f"  export {name}={value}" for name, value in sorted(environment.items())]
        assert max(map(len, exports)) > 80  # the queue URLs: long enough that wrapping would show
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert rest.splitlines()[-1] == "meetpilot dev stopped"
    assert "Traceback" not in rest and "record failed" not in rest
