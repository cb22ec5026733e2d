"""Downstream events come from the table's stream alone: no handler but the stream publisher
imports the EventBridge publisher or asks the composition root for it, and no use case other than
the stream's takes one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[3] / "src" / "meetpilot"
PUBLISHER_HANDLER = SERVICE / "handlers" / "stream_publisher.py"
STREAM_USE_CASE = SERVICE / "app" / "stream_events.py"


def _names(path: Path) -> tuple[set[str], set[str]]:
    """Modules imported, and attribute / identifier names used, in one source file."""
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            used.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Name):
            used.add(node.id)
    return imported, used


def test_no_handler_but_the_stream_publisher_reaches_the_event_bus() -> None:
    offenders = []
    for path in (SERVICE / "handlers").rglob("*.py"):
        imported, used = _names(path)
        if path == PUBLISHER_HANDLER:
            assert "event_publisher" in used  # the one that does
            continue
        if "meetpilot.adapters.eventbridge" in imported or "event_publisher" in used:
            offenders.append(path.relative_to(SERVICE))
    assert offenders == []


def test_no_use_case_but_the_streams_takes_an_event_publisher() -> None:
    offenders = []
    for path in (SERVICE / "app").rglob("*.py"):
        if path in (STREAM_USE_CASE, SERVICE / "app" / "ports.py"):
            continue
        _, used = _names(path)
        if any(name.endswith("EventPublisher") for name in used) or "publish" in used:
            offenders.append(path.relative_to(SERVICE))
    assert offenders == []


def test_the_composition_root_gives_the_publisher_to_nothing_else() -> None:
    source = (SERVICE / "composition.py").read_text()
    # Defined once; never handed to another adapter or use case's wiring.
    assert source.count("event_publisher") == 1


@pytest.mark.parametrize(
    "module",
    sorted(
        f"meetpilot.handlers.{p.stem}"
        for p in (SERVICE / "handlers").glob("*.py")
        if p.stem not in ("__init__", "stream_publisher")
    ),
)
def test_importing_a_handler_does_not_load_the_eventbridge_adapter(module: str) -> None:
    code = f"import sys, {module}; print('meetpilot.adapters.eventbridge' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
