"""JSON Schemas of the project's files, generated from the model so the two cannot drift.

Editors use them for completion and live errors (yaml-language-server reads the
`# yaml-language-server: $schema=...` line at the top of a file); `schema/` in the
repository holds a copy of each, kept equal to this output by a test.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .model import Claim, Figure, FigureName, Site, Source, SourceKey

SCHEMA_BASE = "https://claimpress.example.org/schema/"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, tuple[Any, str]] = {
    "claim": (Claim, "claimpress claim file (claims/*.yaml)"),
    "sources": (dict[SourceKey, Source], "claimpress shared sources (sources/*.yaml)"),
    "figures": (dict[FigureName, Figure], "claimpress shared figures (figures/*.yaml)"),
    "site": (Site, "claimpress site settings (site.yaml)"),
}
"""Each schema's name (its file is `schema/NAME.schema.json`), model and title."""


class _EditorSchema(GenerateJsonSchema):
    """An optional field is one to leave out, not to set to null: the schema says its type
    alone, so editors name the real mistake instead of "not valid under any of anyOf"."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        """The inner type of `X | None`."""
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """A field's schema with its default, unless the default is "absent" (None)."""
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema


def schema_file(name: str) -> str:
    """The file name of a schema, such as `claim.schema.json`."""
    return f"{name}.schema.json"


def project_schema(name: str) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one kind of project file, named as in SCHEMAS."""
    shape, title = SCHEMAS[name]
    schema = _closed(
        TypeAdapter(shape).json_schema(mode="validation", schema_generator=_EditorSchema)
    )
    schema.pop("title", None)
    return {"$schema": DIALECT, "$id": SCHEMA_BASE + schema_file(name), "title": title, **schema}


def schema_json(name: str) -> str:
    """A schema as `claimpress schema NAME` prints it and `schema/NAME.schema.json` holds it."""
    return json.dumps(project_schema(name), indent=2, ensure_ascii=False) + "\n"


def claim_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a claim file."""
    return project_schema("claim")


def _closed(node: Any) -> Any:
    """Every object schema refuses keys it does not name, so editors flag typos."""
    if isinstance(node, dict):
        node = {k: _closed(v) for k, v in node.items()}
        if node.get("type") == "object" and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node
