"""The JSON Schema of claim files, generated from the model so the two cannot drift."""

from __future__ import annotations

from typing import Any

from .model import Claim

SCHEMA_ID = "https://claimpress.example.org/schema/claim.schema.json"


def claim_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a claim file."""
    schema = Claim.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "claimpress claim file",
        **schema,
    }
