"""The JSON Schemas editors use: generated from the model, checked in under schema/, closed
to typos, and accepting the example project. Regenerate the checked-in copies with:

    for n in claim sources figures site; do claimpress schema $n > schema/$n.schema.json; done
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from claimpress.schema import SCHEMAS, project_schema, schema_file
from conftest import CLAIM_YAML, REPO, run_cli

SCHEMA_DIR = REPO / "schema"
REGENERATE = ("for n in claim sources figures site; "
              "do claimpress schema $n > schema/$n.schema.json; done")


def as_json(value: Any) -> Any:
    """YAML data as an editor's JSON view of it: dates are strings."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / schema_file(name)).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def errors(name: str, text: str) -> list[str]:
    data = as_json(yaml.safe_load(text))
    return sorted(f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(data))


@pytest.mark.parametrize("name", SCHEMAS)
def test_checked_in_schema_is_the_generated_one(name: str, tmp_path: Path) -> None:
    result = run_cli("schema", name, cwd=tmp_path)
    assert result.code == 0, result.err
    assert (SCHEMA_DIR / schema_file(name)).read_text() == result.out, (
        f"schema/{schema_file(name)} is stale; regenerate: {REGENERATE}")


def _objects(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_object_is_closed_and_every_field_documented(name: str) -> None:
    schema = project_schema(name)
    objects = list(_objects(schema))
    assert objects
    for path, node in objects:
        assert node["additionalProperties"] is False, path
        for field, spec in node.get("properties", {}).items():
            if "$ref" in spec and "description" not in spec:  # same text as the definition's
                spec = schema["$defs"][spec["$ref"].rpartition("/")[2]]
            assert spec.get("description"), f"{path}/properties/{field} has no description"


def test_the_example_project_validates() -> None:
    for claim in sorted((REPO / "claims").glob("*.yaml")):
        assert errors("claim", claim.read_text()) == [], claim.name
    for name in ("sources", "figures"):
        for path in sorted((REPO / name).glob("*.yaml")):
            assert errors(name, path.read_text()) == [], path.name
    assert errors("site", (REPO / "site.yaml").read_text()) == []


@pytest.mark.parametrize(("edit", "expected"), [
    (("summary:", "sumary:"), [
        "$: 'summary' is a required property",
        "$: Additional properties are not allowed ('sumary' was unexpected)"]),
    (("status: published", "status: publshed"),
     ["$.status: 'publshed' is not one of ['draft', 'review', 'published']"]),
    (("  clear: {value: 300", "  2clear: {value: 300"),
     ["$.figures: '2clear' does not match any of the regexes: '^[A-Za-z_][A-Za-z0-9_]*$'"]),
    (("  share: {formula: clear / days}", "  share: {formula: clear / days, value: 1}"),
     ["$.figures.share: {'formula': 'clear / days', 'value': 1} is valid under each of "
      "{'required': ['formula']}, {'required': ['value']}"]),
    (("    url: https://sky", "    url: ftp://sky"),
     ["$.sources.survey.url: 'ftp://sky.example.org/survey' does not match "
      "'^[Hh][Tt][Tt][Pp][Ss]?://'"]),
    (("question: Is the sky blue?", "question: '  '"),
     ["$.question: '  ' does not match '^[^\\\\r\\\\n]*\\\\S[^\\\\r\\\\n]*$'"]),
    (("checked_on: 2026-01-16", "checked_on: 2026-02-30"),
     ["$.checked_on: '2026-02-30' is not a 'date'"]),
])
def test_the_schema_flags_typos(edit: tuple[str, str], expected: list[str]) -> None:
    assert errors("claim", CLAIM_YAML) == []
    assert edit[0] in CLAIM_YAML
    text = CLAIM_YAML.replace(*edit)
    if "2026-02-30" in text:  # PyYAML refuses an impossible date; an editor sees a string
        text = text.replace("2026-02-30", "'2026-02-30'")
    assert errors("claim", text) == expected
