"""Settings come from the environment once, with errors that name the variable; the Lambda bundle's
requirements agree with the package's, and the locks pin versions inside the declared ranges."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from meetpilot.errors import ConfigurationError
from meetpilot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS_LAMBDA = ROOT / "requirements-lambda.txt"
DEV_LOCK = ROOT / "requirements-dev.lock"
LAYER_LOCK = ROOT / "requirements-lambda.lock"
# The command-line tools kept in virtualenvs of their own (scripts/<tool>.sh), each with a lock.
TOOL_LOCKS = sorted((ROOT / "scripts").glob("*.lock"))
# The python3.13 runtime ships these; the layer must not carry a second copy.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}


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


def _requirements(lines: Iterable[str]) -> dict[NormalizedName, Requirement]:
    reqs = [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]
    return {canonicalize_name(r.name): r for r in reqs}


def test_lambda_requirements_match_runtime_dependencies():
    runtime = _requirements(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    bundled = _requirements(REQUIREMENTS_LAMBDA.read_text().splitlines())
    # boto3 ships with the Lambda runtime; everything else must be bundled, pinned the same way.
    assert set(runtime) - {"boto3"} == set(bundled)
    for name, req in bundled.items():
        assert req.specifier == runtime[name].specifier and req.extras == runtime[name].extras, name
    assert str(bundled["meetstream-sdk"].specifier) == "==1.0.0"


# --- the locks ------------------------------------------------------------------------------------


def _locked(text: str) -> dict[NormalizedName, list[tuple[Requirement, list[str]]]]:
    """A hashed lock as `make lock` writes it: each entry's requirement (``name==version ; marker``) and hashes.

    pip's own requirements-file parser is internal to pip, so the file's two layout rules (backslash
    continuations, ``--hash`` options after the requirement) are undone here; the requirement itself
    is parsed by ``packaging``.
    """
    entries: dict[NormalizedName, list[tuple[Requirement, list[str]]]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        spec, *options = line.split(" --")
        req = Requirement(spec)
        hashes = [o.strip().removeprefix("hash=") for o in options if o.startswith("hash=")]
        entries.setdefault(canonicalize_name(req.name), []).append((req, hashes))
    return entries


def _locked_version(req: Requirement) -> str:
    (pin,) = req.specifier
    assert pin.operator == "==", f"{req} is not pinned to one version"
    return pin.version


def _disagreements(
    declared: dict[NormalizedName, Requirement], locked: dict[NormalizedName, list[tuple[Requirement, list[str]]]]
) -> list[str]:
    """What is wrong between declared ranges and a lock: a declared package missing, a pin out of range."""
    problems = []
    for name, want in sorted(declared.items()):
        if name not in locked:
            problems.append(f"{want} is declared but not in the lock")
        for req, _ in locked.get(name, []):
            if not want.specifier.contains(_locked_version(req), prereleases=True):
                problems.append(f"{name} is locked at {_locked_version(req)}, outside the declared {want}")
    return problems


def _dev_declared() -> dict[NormalizedName, Requirement]:
    """[project.dependencies] plus the dev extra, with meetpilot's own extras (meetpilot[local,bench]) expanded."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    declared = _requirements(project["dependencies"])
    pending, seen = ["dev"], set()
    while pending:
        extra = pending.pop()
        seen.add(extra)
        for name, req in _requirements(extras[extra]).items():
            if name == canonicalize_name(project["name"]):
                pending.extend(sorted(req.extras - seen))
            else:
                declared[name] = req
    return declared


def test_dev_lock_pins_every_declared_dependency_inside_its_range():
    declared = _dev_declared()
    assert {"boto3", "moto", "pytest", "pytest-xdist", "matplotlib"} <= set(declared)
    assert _disagreements(declared, _locked(DEV_LOCK.read_text())) == [], "run `make lock`"


def test_layer_lock_pins_every_bundled_requirement_inside_its_range_and_no_runtime_package():
    locked = _locked(LAYER_LOCK.read_text())
    assert _disagreements(_requirements(REQUIREMENTS_LAMBDA.read_text().splitlines()), locked) == [], "run `make lock`"
    assert not RUNTIME_PROVIDED & set(locked), "the layer lock carries packages the Lambda runtime provides"


def test_layer_lock_ships_the_versions_the_dev_environment_tests():
    dev = {name: {_locked_version(r) for r, _ in entries} for name, entries in _locked(DEV_LOCK.read_text()).items()}
    for name, entries in _locked(LAYER_LOCK.read_text()).items():
        for req, _ in entries:
            assert _locked_version(req) in dev.get(name, set()), f"{req} in the layer, {dev.get(name)} in the dev lock"


@pytest.mark.parametrize("lock", [DEV_LOCK, LAYER_LOCK, *TOOL_LOCKS], ids=lambda p: p.name)
def test_every_locked_package_is_pinned_with_hashes(lock: Path):
    entries = _locked(lock.read_text())
    assert entries, f"{lock.name} locks nothing"
    for name, found in entries.items():
        for req, hashes in found:
            _locked_version(req)
            assert hashes and all(h.startswith("sha256:") for h in hashes), f"{name}: no hashes"


@pytest.mark.parametrize("lock", TOOL_LOCKS, ids=lambda p: p.name)
def test_each_tool_lock_pins_what_its_script_asks_for(lock: Path):
    script = lock.with_suffix(".sh")
    spec = subprocess.run([str(script), "spec"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert _disagreements(_requirements(spec.splitlines()), _locked(lock.read_text())) == [], "run `make lock`"


def test_every_tool_script_has_its_lock():
    assert {p.stem for p in TOOL_LOCKS} == {"sam", "checkov", "uv"}


def test_a_pin_outside_its_range_or_a_missing_package_is_reported():
    declared = _requirements(["moto[server]>=5.1,<6", "httpx>=0.27,<1"])
    lock = "moto==6.0.0 \\\n    --hash=sha256:00\n    # via meetpilot\nidna==3.2 --hash=sha256:11\n"
    assert _disagreements(declared, _locked(lock)) == [
        "httpx<1,>=0.27 is declared but not in the lock",
        "moto is locked at 6.0.0, outside the declared moto[server]<6,>=5.1",
    ]
