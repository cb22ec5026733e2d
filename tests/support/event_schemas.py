"""The JSON Schemas of docs/events.md, read from the document itself, so the published events are
checked against exactly what users are told."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """detail-type -> the schema in the first json block with a $schema under its heading."""
    found: dict[str, dict[str, Any]] = {}
    for section in re.split(r"^## ", DOC.read_text(), flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0].strip()
        for block in re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL):
            schema = json.loads(block)
            if "$schema" in schema:
                Draft202012Validator.check_schema(schema)
                found[title] = schema
                break
    return found


def validate(envelope: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the event's detail matches its documented schema."""
    assert envelope["source"] == "meetpilot", envelope["source"]
    schema = schemas()[envelope["detail-type"]]
    Draft202012Validator(schema).validate(envelope["detail"])
