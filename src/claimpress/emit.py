"""Claim files written for people: field order of the model, prose folded at a readable
width, every value quoted only when YAML would misread it. Round trip is verified."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

SCHEMA_COMMENT = "# yaml-language-server: $schema={schema}\n"
WIDTH = 88


def scalar(value: Any) -> str:
    """One scalar as YAML reads it back unchanged: plain where safe, else double-quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, dt.date)):
        return str(value)
    text = str(value)
    if (
        text
        and text == text.strip()
        and "\n" not in text
        and "#" not in text
        and ": " not in text
        and not text.endswith(":")
    ):
        try:
            if yaml.safe_load(f"k: {text}") == {"k": text}:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def folded(text: str, indent: int) -> str:
    """Prose as a folded block (`>-`) wrapped to WIDTH, or quoted when folding would alter it."""
    pad = " " * indent
    if (
        "\n" in text
        or "  " in text
        or text != text.strip()
        or not text
        or "\t" in text
        or any(ord(c) < 32 or c in "\x85\u2028\u2029\ufeff" for c in text)
    ):
        return scalar(text)
    lines = textwrap.wrap(
        text, width=WIDTH - indent, break_long_words=False, break_on_hyphens=False
    )
    return ">-\n" + "\n".join(pad + line for line in lines)


def _key(key: str) -> str:
    return scalar(key)


def emit(data: Mapping[str, Any], *, prose: Sequence[str] = (), indent: int = 0) -> str:
    """A mapping as block YAML; keys named in `prose` (at any depth) are folded blocks."""
    pad = " " * indent
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            if not value:
                out.append(f"{pad}{_key(key)}: {{}}")
                continue
            if (
                all(not isinstance(v, (Mapping, list)) for v in value.values())
                and key not in prose
                and all(k not in prose for k in value)
                and len(json.dumps(value, default=str)) < WIDTH - indent - 10
            ):
                inner = ", ".join(f"{_key(k)}: {scalar(v)}" for k, v in value.items())
                out.append(f"{pad}{_key(key)}: {{{inner}}}")
                continue
            out.append(f"{pad}{_key(key)}:")
            out.append(emit(value, prose=prose, indent=indent + 2).rstrip("\n"))
        elif isinstance(value, list):
            if not value:
                out.append(f"{pad}{_key(key)}: []")
                continue
            out.append(f"{pad}{_key(key)}:")
            for item in value:
                if isinstance(item, Mapping):
                    body = emit(item, prose=prose, indent=indent + 4).rstrip("\n")
                    out.append(f"{pad}  - " + body[indent + 4 :])
                elif key in prose:
                    out.append(f"{pad}  - {folded(str(item), indent + 4)}")
                else:
                    out.append(f"{pad}  - {scalar(item)}")
        elif key in prose and isinstance(value, str):
            out.append(f"{pad}{_key(key)}: {folded(value, indent + 2)}")
        else:
            out.append(f"{pad}{_key(key)}: {scalar(value)}")
    return "\n".join(out) + "\n"


def claim_yaml(data: Mapping[str, Any], *, schema: str | None = None) -> str:
    """A whole claim file; raises ValueError if it would not read back as `data`."""
    text = (SCHEMA_COMMENT.format(schema=schema) if schema else "") + emit(
        data, prose=("summary", "body", "limitations", "note")
    )
    if (
        yaml.safe_load(text) != json.loads(json.dumps(data, default=str))
        and yaml.safe_load(text) != data
    ):
        raise ValueError("claim would not read back unchanged")
    return text
