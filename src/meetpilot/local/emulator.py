"""The AWS emulator of the local stack: a moto server on 127.0.0.1, in its own process.

Its own process lets it use the second core (the handlers, gateway and simulator share the first)
and leaves no state behind: every stack starts from an empty emulator.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AwsEmulator:
    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._timeout = start_timeout
        self.endpoint = ""

    def start(self) -> str:
        for _ in range(3):  # another process may take the free port between probe and bind
            port = _free_port()
            env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"}
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            self.endpoint = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self.endpoint
            self.stop()
        raise RuntimeError("the AWS emulator (moto server) did not start; is the 'local' extra installed?")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310 - loopback
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
