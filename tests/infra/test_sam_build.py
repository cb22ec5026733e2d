"""`sam build` gives every function in template.yaml a deployable artifact, offline (no AWS account,
no Docker), and the same artifacts import on the host's Python with nothing but themselves.

Two builds, each once per module:

- the real one: ``sam build`` with the build settings of samconfig.example.toml, as the deploy guide
  in README.md runs it: arm64 wheels for Python 3.13 in DependenciesLayer, the meetpilot package in
  each function's directory;
- a host build of the same layout (the Makefile's targets with ``LAMBDA_WHEELS=`` empty, so pip picks
  wheels for the Python running the tests), whose handler modules are then imported with ``python -S``:
  no site-packages, so nothing from the dev environment can stand in for a missing dependency.

The SAM CLI lives in its own virtualenv (``scripts/sam.sh install``, done by ``make test``). Set
MEETPILOT_SKIP_SAM_BUILD=1 to leave the first group out on a machine without it; the host build needs
only pip and the package index.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.cfn import TEMPLATE_PATH

ROOT = Path(__file__).resolve().parents[2]
SAM_SCRIPT = ROOT / "scripts" / "sam.sh"
SAM_VENV = Path(os.environ.get("MEETPILOT_SAM_VENV") or ROOT / ".venv-sam")
SAMCONFIG_EXAMPLE = ROOT / "samconfig.example.toml"
REQUIREMENTS_LAMBDA = ROOT / "requirements-lambda.txt"
PYPROJECT = ROOT / "pyproject.toml"
LAYER = "DependenciesLayer"
# The python3.13 runtime ships these; a copy in the layer would only add megabytes and a second boto3.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
ELF_MACHINE_AARCH64 = 183
BUILD_TIMEOUT = 600


@dataclass(frozen=True)
class Function:
    logical_id: str
    module: str  # "meetpilot.handlers.dispatch"
    attribute: str  # "handler"

    @property
    def module_file(self) -> Path:
        return Path(*self.module.split(".")).with_suffix(".py")


def _functions(template: Mapping[str, Any]) -> list[Function]:
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        module, _, attribute = resource["Properties"]["Handler"].rpartition(".")
        found.append(Function(logical_id, module, attribute))
    return found


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]
    return {canonicalize_name(r.name): r for r in reqs}


def _offline_env(**extra: str) -> dict[str, str]:
    """The caller's environment without AWS credentials or profiles: a build must not need them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        SAM_CLI_TELEMETRY="0",
        # The Makefile's pip runs under the interpreter running the tests (it has pip; any 3.9+ would do).
        PYTHON=sys.executable,
    )
    env.update(extra)
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}", pytrace=False)
    return proc


def _need_sam() -> None:
    if os.environ.get("MEETPILOT_SKIP_SAM_BUILD") == "1":
        pytest.skip("MEETPILOT_SKIP_SAM_BUILD=1")
    if not (SAM_VENV / "bin" / "sam").exists() or not (SAM_VENV / ".installed").exists():
        pytest.fail(
            f"the SAM CLI is not installed in {SAM_VENV}: run `scripts/sam.sh install` once "
            "(or set MEETPILOT_SKIP_SAM_BUILD=1 to leave these tests out)",
            pytrace=False,
        )


# --- the real build ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sam build`` as the deploy guide runs it; the build directory."""
    _need_sam()
    work = tmp_path_factory.mktemp("sam-build")
    build_dir = work / "build"
    # Run from a scratch directory so SAM's own bookkeeping (build.toml, .aws-sam/) stays out of the tree.
    _run(
        [
            str(SAM_SCRIPT),
            "run",
            "build",
            "--config-file",
            str(SAMCONFIG_EXAMPLE),
            "--template-file",
            str(TEMPLATE_PATH),
            "--build-dir",
            str(build_dir),
        ],
        cwd=work,
        env=_offline_env(),
        what="sam build",
    )
    return build_dir


@pytest.fixture(scope="module")
def built_template(sam_build: Path) -> dict[str, Any]:
    from meetpilot_dev.stack.template import load_template

    return load_template(sam_build / "template.yaml")


def _files(package: Path) -> list[str]:
    """Every file under a package, relative to it, without bytecode caches."""
    return sorted(
        p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def test_sam_build_gives_every_function_its_handler_and_nothing_else(
    sam_build: Path, built_template: dict[str, Any], template: dict[str, Any]
) -> None:
    functions = _functions(template)
    assert len(functions) >= 2, "template.yaml declares no functions?"
    service = _files(ROOT / "src" / "meetpilot")
    assert "handlers/dispatch.py" in service and not [f for f in service if f.startswith(("local/", "simulator/"))]
    for fn in functions:
        artifact = sam_build / fn.logical_id
        assert (artifact / fn.module_file).is_file(), f"{fn.logical_id}: {fn.module_file} missing from its artifact"
        # The built template points the function at its artifact, which `sam deploy` zips and uploads.
        assert built_template["Resources"][fn.logical_id]["Properties"]["CodeUri"] == fn.logical_id
        # Third-party code belongs to the layer; the artifact is the service package exactly, and the
        # workbench (the embedded stack, the simulator, the CLI) never ships.
        assert sorted(p.name for p in artifact.iterdir()) == ["meetpilot"], f"{fn.logical_id}: unexpected files"
        assert _files(artifact / "meetpilot") == service, f"{fn.logical_id}: not the service package"
        assert not list(artifact.rglob("__pycache__"))
        assert not [p for p in artifact.rglob("*") if "meetpilot_dev" in p.parts]


def test_dependencies_layer_holds_every_requirement_as_arm64_wheels_for_python_3_13(
    sam_build: Path, built_template: dict[str, Any]
) -> None:
    site = sam_build / LAYER / "python"
    assert built_template["Resources"][LAYER]["Properties"]["ContentUri"] == LAYER
    installed = {
        canonicalize_name(re.sub(r"-[^-]+\.dist-info$", "", p.name)) for p in site.glob("*.dist-info") if p.is_dir()
    }
    wanted = set(_requirements(REQUIREMENTS_LAMBDA.read_text().splitlines()))
    assert wanted <= installed, f"missing from the layer: {sorted(wanted - installed)}"
    assert not installed & RUNTIME_PROVIDED, "the layer carries packages the Lambda runtime already provides"
    # Host-compiled bytecode is for the wrong Python; the runtime compiles its own.
    assert not list(site.rglob("*.pyc"))

    extensions = list(site.rglob("*.so"))
    assert extensions, "no compiled extension in the layer (pydantic-core has one): did pip pick pure wheels only?"
    for so in extensions:
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        machine = int.from_bytes(header[18:20], "little")
        assert machine == ELF_MACHINE_AARCH64, f"{so.relative_to(site)} is not an arm64 binary (ELF machine {machine})"
        tag = re.search(r"\.(cpython-\d+)-", so.name)
        assert tag is None or tag.group(1) == "cpython-313", f"{so.name} is built for another Python"


def test_every_function_gets_the_dependencies_layer(translated: dict[str, Any], template: dict[str, Any]) -> None:
    # The translator renames the layer to LogicalId + content hash; each function must reference it.
    layer_ids = [k for k, v in translated["Resources"].items() if v["Type"] == "AWS::Lambda::LayerVersion"]
    assert len(layer_ids) == 1 and layer_ids[0].startswith(LAYER), layer_ids
    for fn in _functions(template):
        layers = translated["Resources"][fn.logical_id]["Properties"].get("Layers", [])
        assert {"Ref": layer_ids[0]} in layers, f"{fn.logical_id} does not use {LAYER}"


def test_sam_validate_lint_passes_offline() -> None:
    _need_sam()
    proc = _run(
        [str(SAM_SCRIPT), "run", "validate", "--lint", "--template-file", str(TEMPLATE_PATH)],
        cwd=ROOT,
        env=_offline_env(AWS_DEFAULT_REGION="us-east-1"),
        what="sam validate --lint",
    )
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


# --- requirements ----------------------------------------------------------------------------------


def test_requirements_lambda_matches_the_runtime_dependencies_in_pyproject() -> None:
    declared = _requirements(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    bundled = _requirements(REQUIREMENTS_LAMBDA.read_text().splitlines())
    expected = {name: req for name, req in declared.items() if name not in RUNTIME_PROVIDED}
    assert sorted(bundled) == sorted(expected), (
        "requirements-lambda.txt and [project.dependencies] list different packages "
        f"(only in requirements-lambda.txt: {sorted(set(bundled) - set(expected))}, "
        f"only in pyproject.toml: {sorted(set(expected) - set(bundled))})"
    )
    for name, req in bundled.items():
        assert str(req.specifier) == str(expected[name].specifier), f"{name}: {req} here, {expected[name]} in pyproject"
        assert req.extras == expected[name].extras, f"{name}: extras differ"


# --- the host build: imports without the dev environment --------------------------------------------


@dataclass(frozen=True)
class HostBuild:
    artifacts: Path  # one directory per function, as sam build lays them out
    layer: Path  # the layer's python/ directory
    runtime: Path  # stands in for what the Lambda runtime provides (boto3)


def _make(target: str, artifacts_dir: Path, **variables: str) -> None:
    settings = [f"{k}={v}" for k, v in {"ARTIFACTS_DIR": str(artifacts_dir), **variables}.items()]
    _run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), target, *settings],
        cwd=ROOT,
        env=_offline_env(),
        what=f"make {target}",
    )


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory, template: dict[str, Any]) -> HostBuild:
    work = tmp_path_factory.mktemp("host-build")
    # The same target `sam build` calls, with wheels for the Python running this test.
    _make(f"build-{LAYER}", work / LAYER, LAMBDA_WHEELS="", PYTHON=sys.executable)
    for fn in _functions(template):
        _make(f"build-{fn.logical_id}", work / fn.logical_id)
    # The Lambda runtime brings boto3; install the version the dev environment tests against.
    from importlib.metadata import version

    runtime = work / "runtime"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(runtime),
            f"boto3=={version('boto3')}",
        ],
        cwd=work,
        env=_offline_env(),
        what="pip install boto3 (the runtime's own)",
    )
    return HostBuild(artifacts=work, layer=work / LAYER / "python", runtime=runtime)


_IMPORT_PROBE = """
import importlib, sys
module = importlib.import_module(sys.argv[1])
handler = getattr(module, sys.argv[2])
assert callable(handler), f"{sys.argv[1]}.{sys.argv[2]} is not callable"
leaked = sorted(name for name in ("pytest", "moto", "typer", "rich", "yaml") if name in sys.modules)
assert not leaked, f"imported dev-only packages: {leaked}"
"""


def _import_in_artifact(fn: Function, path: list[Path]) -> subprocess.CompletedProcess[str]:
    # -S: no site module, so no site-packages at all; only the stdlib and PYTHONPATH.
    env = {
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": fn.logical_id,
        "POWERTOOLS_SERVICE_NAME": "meetpilot",
        "POWERTOOLS_METRICS_NAMESPACE": "meetpilot",
    }
    return subprocess.run(
        [sys.executable, "-S", "-c", _IMPORT_PROBE, fn.module, fn.attribute],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _each_function(template: dict[str, Any]) -> Iterator[Function]:
    functions = _functions(template)
    assert functions
    yield from functions


def test_every_handler_imports_from_its_artifact_without_dev_dependencies(
    host_build: HostBuild, template: dict[str, Any]
) -> None:
    failures = []
    for fn in _each_function(template):
        proc = _import_in_artifact(fn, [host_build.artifacts / fn.logical_id, host_build.layer, host_build.runtime])
        if proc.returncode != 0:
            failures.append(f"{fn.logical_id} ({fn.module}.{fn.attribute}):\n{proc.stderr.strip()[-2000:]}")
    assert not failures, "handlers that do not import from their artifact:\n\n" + "\n\n".join(failures)


def test_the_import_check_notices_a_missing_dependency(host_build: HostBuild, template: dict[str, Any]) -> None:
    # Without the layer a handler cannot import: proof that the check above sees nothing from the dev venv.
    fn = next(_each_function(template))
    proc = _import_in_artifact(fn, [host_build.artifacts / fn.logical_id, host_build.runtime])
    assert proc.returncode != 0
    assert "ModuleNotFoundError" in proc.stderr
