"""DynamoDB backends for contract tests: moto server and AWS's DynamoDB Local, side by side.

``ddb_backend`` is parametrized over both, so a test written once runs against moto (fast, what
the rest of the suite uses) and against DynamoDB Local (AWS's own expression engine and
validation). Each test gets a fresh table built from ``template.yaml``, TTL included.

DynamoDB Local comes from ``scripts/dynamodb-local.sh install`` (a jar under
``.cache/dynamodb-local/``). If it is missing, the dynamodb-local tests FAIL rather than skip, so
CI cannot quietly lose them; set ``MEETPILOT_SKIP_DYNAMODB_LOCAL=1`` to skip them on purpose.

``storage_backend`` adds the in-memory fakes (``meetpilot_dev.fakes.memory``) to the two, so the
fakes the use-case tests run on keep the adapters' contract; a check of the stored items calls
``storage_backend.table()``, which skips on the fakes.

Use it from a test module with::

    from tests.support.dynamodb_backends import ddb_backend, dynamodb_local, moto_server  # noqa: F401
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from meetpilot.adapters.dynamodb import DynamoRepository
from meetpilot.app.ports import Storage
from meetpilot_dev.fakes.memory import MemoryRepository
from meetpilot_dev.stack.template import load_template, table_definition, ttl_attribute

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_ENV = "MEETPILOT_SKIP_DYNAMODB_LOCAL"
INSTALL_HINT = "run `scripts/dynamodb-local.sh install`"
BACKENDS = ("moto", "dynamodb-local")

# DynamoDB Local keeps one database per access key and region (without -sharedDb): keep both fixed.
# It also refuses access key ids that are not purely letters and digits.
REGION = "us-east-1"
ACCESS_KEY = "meetpilottest"
SECRET_KEY = "meetpilottest"  # a fake credential: local servers only

START_TIMEOUT = 60.0  # a cold JVM on a small CI runner can be slow
STOP_TIMEOUT = 10.0

# Filled in when DynamoDB Local starts; read by whoever wants to report it.
TIMINGS: dict[str, float] = {}


def dynamodb_local_dir() -> Path:
    """Where the install script unpacks DynamoDB Local (same override variable as the script)."""
    override = os.environ.get("MEETPILOT_DYNAMODB_LOCAL_DIR")
    cache = Path(override) if override else REPO_ROOT / ".cache" / "dynamodb-local"
    return cache / "dist"


def _java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


@functools.cache
def _client(endpoint: str, *, probe: bool = False) -> Any:
    """One client per endpoint for the whole session: building a boto3 client is not free."""
    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
    if probe:  # answer fast while the server is still starting
        config = Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
    else:
        config = Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
    return session.client("dynamodb", endpoint_url=endpoint, config=config)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- DynamoDB Local -----------------------------------------------------------------------------


@dataclass
class _JavaServer:
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate, wait, kill: the JVM must not outlive the test session."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def _command(java: str, dist: Path, port: int) -> list[str]:
    # DynamoDB Local has no bind-address option (see `-help`): it listens on every interface.
    # The port is random and the database in memory and gone when the session ends.
    command = [
        java,
        f"-Djava.library.path={dist / 'DynamoDBLocal_lib'}",
        "-jar",
        str(dist / "DynamoDBLocal.jar"),
        "-inMemory",
        "-port",
        str(port),
        "-disableTelemetry",
    ]
    # If pytest itself is killed (CI timeout, SIGKILL) no teardown runs; on Linux, ask the kernel
    # to kill the JVM when its parent dies so it cannot linger as an orphan.
    setpriv = shutil.which("setpriv")
    if setpriv and os.uname().sysname == "Linux":
        command = [setpriv, "--pdeathsig", "KILL", *command]
    return command


class _ExitedEarly(RuntimeError):
    """The JVM quit before answering, most likely because another process took its port."""


def _wait_until_ready(server: _JavaServer, deadline: float) -> None:
    client = _client(server.endpoint, probe=True)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise _ExitedEarly(f"DynamoDB Local exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            client.list_tables(Limit=1)
            return
        except ClientError as exc:
            # It answered, but said no (credentials, say): waiting longer will not help.
            raise RuntimeError(f"DynamoDB Local refused list_tables: {exc}") from exc
        except BotoCoreError as exc:  # not listening yet
            last_error = exc
            time.sleep(0.1)
    raise TimeoutError(f"DynamoDB Local did not answer list_tables in time ({last_error}):\n{server.log_tail()}")


def start_dynamodb_local(log_dir: Path, attempts: int = 3) -> _JavaServer:
    """Start DynamoDB Local on a free port and wait until it answers; fails the test if it cannot."""
    dist = dynamodb_local_dir()
    jar = dist / "DynamoDBLocal.jar"
    if not jar.is_file():
        pytest.fail(
            f"DynamoDB Local is not installed (no {jar}): {INSTALL_HINT}, "
            f"or set {SKIP_ENV}=1 to skip the dynamodb-local tests on purpose",
            pytrace=False,
        )
    java = _java()
    if java is None:
        pytest.fail(f"DynamoDB Local needs Java 17+ and no `java` was found; {INSTALL_HINT} checks it", pytrace=False)

    error: Exception | None = None
    for attempt in range(attempts):
        port = _free_port()  # the port can be taken between here and the JVM's bind: retry then
        log_path = log_dir / f"dynamodb-local-{attempt}.log"
        started = time.monotonic()
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(  # a fixed argv, no shell
                _command(java, dist, port),
                cwd=dist,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches pytest, whose teardown then stops the JVM
            )
        server = _JavaServer(process, f"http://127.0.0.1:{port}", log_path)
        atexit.register(server.stop)  # belt and braces if the session ends without teardown
        try:
            _wait_until_ready(server, started + START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            server.stop()
            atexit.unregister(server.stop)
            error = exc
            if isinstance(exc, _ExitedEarly):
                continue
            break  # a timeout or a refusal is not a port clash: trying again would not help
        TIMINGS["dynamodb_local_start_seconds"] = time.monotonic() - started
        log.info("DynamoDB Local ready at %s in %.2fs", server.endpoint, TIMINGS["dynamodb_local_start_seconds"])
        return server
    pytest.fail(f"DynamoDB Local did not start: {error}\n({INSTALL_HINT} to check the installation)", pytrace=False)


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of one DynamoDB Local process shared by the whole session."""
    server = start_dynamodb_local(tmp_path_factory.mktemp("dynamodb-local"))
    try:
        yield server.endpoint
    finally:
        server.stop()
        atexit.unregister(server.stop)


# --- moto ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint of an in-process moto server. Reset it before use: moto's state is per process.

    It is the emulator's application (DynamoDB requests one at a time), so a conditional write is
    atomic here as in DynamoDB; moto's own threaded server lets two racing writers both win.
    """
    import threading

    from werkzeug.serving import make_server

    from meetpilot_dev.stack.emulator import moto_app

    server = make_server("127.0.0.1", 0, moto_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


# --- a fresh table per test ---------------------------------------------------------------------


@dataclass(frozen=True)
class DynamoBackend:
    """A DynamoDB client and a fresh, empty table made from the template."""

    name: str  # "moto" or "dynamodb-local"
    client: Any
    table_name: str
    endpoint: str


def _table_name(test_name: str) -> str:
    # Table names: 3-255 of [a-zA-Z0-9_.-]; unique per test so nothing leaks between tests.
    readable = re.sub(r"[^a-zA-Z0-9_.-]+", "-", test_name)[:60].strip("-") or "test"
    return f"mp-{readable}-{uuid.uuid4().hex[:8]}"


def create_template_table(client: Any, table_name: str) -> None:
    """Create the template's table (keys, indexes, billing) and turn on its TTL, as CloudFormation would."""
    template = load_template()
    client.create_table(TableName=table_name, **table_definition(template))
    deadline = time.monotonic() + 30
    while True:
        table = client.describe_table(TableName=table_name)["Table"]
        statuses = [table["TableStatus"], *(i["IndexStatus"] for i in table.get("GlobalSecondaryIndexes", []))]
        if all(status == "ACTIVE" for status in statuses):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table_name} not active: {statuses}")
        time.sleep(0.05)
    attribute = ttl_attribute(template)
    if attribute:
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )


@contextlib.contextmanager
def _fresh_table(request: pytest.FixtureRequest, name: str) -> Iterator[DynamoBackend]:
    if name == "dynamodb-local":
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{SKIP_ENV}=1: DynamoDB Local tests skipped on purpose")
        endpoint = request.getfixturevalue("dynamodb_local")
    else:
        endpoint = request.getfixturevalue("moto_server")
        reset_moto(endpoint)
    client = _client(endpoint)
    table_name = _table_name(request.node.name)
    create_template_table(client, table_name)
    try:
        yield DynamoBackend(name=name, client=client, table_name=table_name, endpoint=endpoint)
    finally:
        with contextlib.suppress(BotoCoreError, ClientError):
            client.delete_table(TableName=table_name)


@pytest.fixture(params=BACKENDS)
def ddb_backend(request: pytest.FixtureRequest) -> Iterator[DynamoBackend]:
    """A fresh template table on moto, then on DynamoDB Local."""
    with _fresh_table(request, request.param) as backend:
        yield backend


# --- the same contract on the in-memory fakes ---------------------------------------------------

CONTRACT_BACKENDS = (*BACKENDS, "memory")


@dataclass(frozen=True)
class StorageBackend:
    """A repository to run a contract test on, and the DynamoDB table under it (None for the fakes)."""

    name: str  # "moto", "dynamodb-local" or "memory"
    repo: Storage
    dynamo: DynamoBackend | None

    def table(self) -> DynamoBackend:
        """The table itself, for a check of how items are stored; skips on the in-memory fakes."""
        if self.dynamo is None:
            pytest.skip("checks the stored DynamoDB items; the in-memory fakes have none")
        return self.dynamo

    def with_lead_time(self, lead_time: timedelta) -> Storage:
        """Another repository on the same storage, configured with this dispatch lead time."""
        if self.dynamo is None:
            assert isinstance(self.repo, MemoryRepository)
            return MemoryRepository(self.repo.table, lead_time=lead_time)
        return DynamoRepository(self.dynamo.client, self.dynamo.table_name, lead_time=lead_time)


@pytest.fixture(params=CONTRACT_BACKENDS)
def storage_backend(request: pytest.FixtureRequest) -> Iterator[StorageBackend]:
    """The storage ports on moto, on DynamoDB Local, and on the in-memory fakes."""
    if request.param == "memory":
        yield StorageBackend("memory", MemoryRepository(), None)
        return
    with _fresh_table(request, request.param) as backend:
        yield StorageBackend(backend.name, DynamoRepository(backend.client, backend.table_name), backend)
