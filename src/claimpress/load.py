"""YAML files to validated models, with `path:line:col: field: message` for every problem."""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import stat
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from . import yamltree
from .model import Claim, Figure, FigureName, Site, Source, SourceKey, slug_problem
from .problems import OUTSIDE, Problem
from .yamltree import Node

CLAIMS_DIR, SOURCES_DIR, FIGURES_DIR, SITE_FILE = "claims", "sources", "figures", "site.yaml"
THEME_DIR = "templates"
"""The project's own templates, overriding the default theme's."""
BUILD_DIR = "build"
"""Where `claimpress build` writes the site unless told otherwise (`--out`)."""

MAX_PROBLEMS = 50
"""Past this many problems in one file, the rest are counted, not listed."""

_SHAPES: dict[str, Any] = {
    SOURCES_DIR: dict[SourceKey, Source],
    FIGURES_DIR: dict[FigureName, Figure],
}


@dataclass(frozen=True)
class Located:
    """A validated value with the file it came from and the tree that locates its parts."""

    rel: str
    """The file's path relative to the project's root (`claims/x.yaml`), whatever the
    working folder: what the cache keeps (messages name it from there: `Problem.shown`)."""
    root: Node
    """The parsed YAML, to find the line and column of any field."""

    def at(self, *loc: str | int) -> tuple[int, int]:
        """Line and column of the field at `loc` (or of the deepest part of it that exists)."""
        node, _ = yamltree.locate(self.root, loc)
        return node.line, node.col

    def key_at(self, *loc: str | int) -> tuple[int, int]:
        """Line and column of the key naming the field at `loc`, falling back to its value."""
        key = yamltree.key_node(self.root, loc)
        return (key.line, key.col) if key else self.at(*loc)

    def problem(
        self,
        loc: tuple[str | int, ...],
        message: str,
        *,
        severity: str = "error",
        rule: str = "",
        key: bool = False,
        at: tuple[int, int] | None = None,
        names: str = "",
    ) -> Problem:
        """A problem located at the field `loc` of this file (at its key when `key`), or at
        `at`, an exact line and column inside it, when known; its message ends by naming the
        file `names`, if given (`Problem.names`)."""
        line, col = at or (self.key_at(*loc) if key else self.at(*loc))
        return Problem(self.rel, line, col, field_path(loc), message, severity, rule, names)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClaimFile(Located):
    """A claim file that parsed and validated."""

    slug: str
    claim: Claim
    digest: str
    """sha256 of the file's bytes."""
    data: bytes = field(default=b"", repr=False, compare=False)
    """The file's bytes, to locate findings inside prose and to snapshot approvals."""


@dataclass(frozen=True)
class Unvalidated(Located):
    """A claim file that parsed but did not validate: what resolving can still check in it
    (`resolve.unresolved`)."""

    value: Any
    """The file's content as plain values (dicts, lists, text...)."""
    data: bytes = field(default=b"", repr=False, compare=False)
    """The file's bytes, to locate problems inside prose."""


@dataclass(frozen=True)
class RegistryFile(Located):
    """A file of shared sources or figures."""

    sources: dict[str, Source]
    figures: dict[str, Figure]


def field_path(loc: Iterable[str | int]) -> str:
    """`('sections', 2, 'body')` as `sections[2].body`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def read(
    path: Path, rel: str, limit: int = yamltree.MAX_BYTES
) -> tuple[bytes | None, list[Problem]]:
    """A file's bytes, or a problem saying why it cannot be read; past `limit` bytes only
    one more is read (for the caller to refuse)."""
    try:
        # Not through a Python file object, which costs more than the read itself (half a
        # warm `check` at 10,000 claims went to opening and reading claim files).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # Asking for the limit allocates a megabyte for every file: a regular file is
            # read at its size, plus a byte.
            info = os.fstat(fd)
            size = info.st_size if stat.S_ISREG(info.st_mode) else limit
            data = _read_up_to(fd, min(size, limit) + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        return None, [Problem(rel, 0, 0, "", f"cannot read file: {exc.strerror or exc}")]
    return data, []


def _read_up_to(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd`, fewer only at its end (`os.read` may return less)."""
    chunks = []
    while limit > 0 and (chunk := os.read(fd, limit)):
        chunks.append(chunk)
        limit -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def parse_model(data: bytes, rel: str, shape: Any) -> tuple[Any, Node | None, list[Problem]]:
    """Parse YAML bytes and validate them against a model type, locating every problem."""
    first = {Claim: "question", Site: "title"}.get(shape, "key")
    document = yamltree.parse(data, rel, first)
    if document.root is None:
        return None, None, document.problems
    root = document.root
    try:
        value = _adapter(shape).validate_python(yamltree.to_python(root))
        return (None, root, document.problems) if document.problems else (value, root, [])
    except ValidationError as exc:
        # A value the parser already reported is not reported again by validation.
        reported = {(p.line, p.col) for p in document.problems}
        errs = exc.errors()
        problems = [_problem(rel, root, err, shape) for err in errs[:MAX_PROBLEMS]]
        problems = document.problems + [p for p in problems if (p.line, p.col) not in reported]
        if len(errs) > MAX_PROBLEMS:
            rest = _problem(rel, root, errs[MAX_PROBLEMS], shape)
            problems.append(
                Problem(
                    rel,
                    rest.line,
                    rest.col,
                    rest.field,
                    f"and {len(errs) - MAX_PROBLEMS:,} more problems in this file; "
                    "fix the ones above first",
                )
            )
        return None, root, problems


def _problem(rel: str, root: Node, err: Any, shape: Any) -> Problem:
    loc = tuple(part for part in err["loc"] if part != "[key]")
    kind = err["type"]
    node, found = yamltree.locate(root, loc)
    field = field_path(loc)
    if kind == "extra_forbidden":
        key = yamltree.key_node(root, loc)
        at = key or node
        allowed = sorted(_fields_at(shape, loc[:-1]))
        message = f"unknown field `{loc[-1]}`"
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        if guess:
            message += f"; did you mean `{guess[0]}`?"
        elif allowed:
            message += f"; the fields here are: {', '.join(allowed)}"
        return Problem(rel, at.line, at.col, field, message)
    if kind == "missing":
        return Problem(
            rel,
            node.line,
            node.col,
            field,
            f"missing required field `{loc[-1]}`" if loc else "missing value",
        )
    if "[key]" in err["loc"]:
        key = yamltree.key_node(root, loc) or node
        return Problem(rel, key.line, key.col, field, _clean(err["msg"]))
    return Problem(rel, node.line, node.col, field, _message(kind, err, node if found else None))


BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}
"""pydantic's error kinds for a number out of bounds: what the message says, and the bound."""


def _message(kind: str, err: Any, node: Node | None) -> str:
    got = yamltree.kind_of(node) if node is not None else "nothing"
    if kind == "string_type" and node is not None:
        if node.plain and node.value is not None and not isinstance(node.value, (list, dict)):
            raw = yamltree.shorten(node.raw)
            return f'expected text, got {got}; quote it to keep it as text: "{raw}"'
        return f"expected text, got {got}"
    if kind in ("date_type", "date_parsing", "date_from_datetime_inexact"):
        return f"expected a date written as YYYY-MM-DD without quotes, got {got}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ", ").split(",")]
        message = f"must be one of {', '.join(choices)}"
        value = yamltree.shorten(node.raw) if node is not None else ""
        guess = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        return message + (f"; did you mean `{guess[0]}`?" if guess else f", not `{value}`")
    if kind == "list_type":
        return f"expected a list (lines starting with `- `), got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of fields (`name: value` lines), got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("int_type", "float_type", "int_from_float"):
        return (
            f"expected a whole number, got {got}"
            if "int" in kind
            else f"expected a number, got {got}"
        )
    if kind in BOUNDS:
        words, key = BOUNDS[kind]
        value = f", not `{yamltree.shorten(node.raw)}`" if node is not None else ""
        return f"must be {words} {err.get('ctx', {}).get(key, '')}{value}"
    if kind == "too_short":
        return "must not be empty" if "at least 1" in err["msg"] else _clean(err["msg"])
    if kind == "string_pattern_mismatch":
        return (
            f"`{yamltree.shorten(node.raw) if node else ''}` does not have the expected form "
            f"({err.get('ctx', {}).get('pattern', '')})"
        )
    if (
        kind == "value_error"
        and node is not None
        and got != "text"
        and err.get("ctx", {}).get("error")
        and "number" not in str(err["ctx"]["error"])
    ):
        return f"expected text, got {got}"
    return _clean(err["msg"])


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _fields_at(shape: Any, loc: tuple[str | int, ...]) -> set[str]:
    """The field names the model accepts at `loc`, for "did you mean"."""
    current = shape
    for part in loc:
        current = _step(current, part)
        if current is None:
            return set()
    model = _unwrap(current)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return set(model.model_fields)
    return set()


def _unwrap(typ: Any) -> Any:
    while True:
        origin = typing.get_origin(typ)
        if origin is typing.Annotated:
            typ = typing.get_args(typ)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(typ) if a is not type(None)]
            typ = options[0] if len(options) == 1 else typ
            if len(options) != 1:
                return typ
        else:
            return typ


def _step(typ: Any, part: str | int) -> Any:
    typ = _unwrap(typ)
    if isinstance(typ, type) and issubclass(typ, BaseModel):
        info = typ.model_fields.get(str(part))
        return info.annotation if info else None
    origin = typing.get_origin(typ)
    if origin is list and isinstance(part, int):
        return typing.get_args(typ)[0]
    if origin is dict:
        return typing.get_args(typ)[1]
    return None


def slug_of(name: str) -> str:
    """The slug of a claim named on the command line by its slug or by its file's path
    (`claims/x.yaml`: `x`)."""
    return Path(name).stem if name.endswith((".yaml", ".yml")) else name


def one_of(items: Sequence[str]) -> str:
    """`a`, `a or b`, `a, b or c`..."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def no_claim(name: str, slugs: Sequence[str]) -> str:
    """What to say of a claim named on the command line that is not among `slugs`: all of
    them when they are few, else the closest (a desk has thousands)."""
    if len(slugs) <= 10:
        return f"no claim `{name}`; known: {', '.join(slugs)}"
    close = [f"`{s}`" for s in difflib.get_close_matches(slug_of(name), slugs, n=3)]
    if close:
        return f"no claim `{name}`; did you mean {one_of(close)}?"
    return f"no claim `{name}` among the {len(slugs)} in {CLAIMS_DIR}/"


def load_claim(
    path: Path, rel: str, data: bytes | None = None
) -> tuple[ClaimFile | Unvalidated | None, list[Problem]]:
    """One claim file (its bytes when already read), validated, or every problem in it
    (and, when it parsed, the file as parsed: resolving may find more)."""
    problem = slug_problem(path.stem)
    if problem:
        return None, [Problem(rel, 0, 0, "", problem)]
    if data is None:
        data, problems = read(path, rel)
    if data is None:
        return None, problems
    claim, root, problems = parse_model(data, rel, Claim)
    if root is None:
        return None, problems
    if claim is None:
        return Unvalidated(rel, root, yamltree.to_python(root), data), problems
    return ClaimFile(rel, root, path.stem, claim, hashlib.sha256(data).hexdigest(), data), []


def load_registry(
    path: Path, rel: str, kind: str, data: bytes | None = None
) -> tuple[RegistryFile | None, list[Problem]]:
    """A file under `sources/` or `figures/` (its bytes when already read): a mapping of
    keys to sources or figures."""
    if data is None:
        data, problems = read(path, rel)
    if data is None:
        return None, problems
    value, root, problems = parse_model(data, rel, _SHAPES[kind])
    if value is None or root is None:
        return None, problems
    sources = value if kind == SOURCES_DIR else {}
    figures = value if kind == FIGURES_DIR else {}
    return RegistryFile(rel, root, sources, figures), []


def load_site(path: Path, rel: str) -> tuple[Site | None, Located | None, list[Problem]]:
    """The site settings from `site.yaml`."""
    if not path.is_file():
        return (
            None,
            None,
            [
                Problem(
                    rel,
                    0,
                    0,
                    "",
                    "no site.yaml here; run claimpress in a "
                    "project folder (one with site.yaml and claims/)",
                )
            ],
        )
    if not path.resolve().is_relative_to(path.parent.resolve()):
        return None, None, [Problem(rel, 0, 0, "", OUTSIDE)]
    data, problems = read(path, rel)
    if data is None:
        return None, None, problems
    site, root, problems = parse_model(data, rel, Site)
    if site is None or root is None:
        return None, None, problems
    return site, Located(rel, root), []


def locate_in_field(
    file: ClaimFile | Unvalidated, loc: tuple[str | int, ...], value: str, offset: int
) -> tuple[int, int] | None:
    """Line and column of `value[offset]` in the file, for a field written plain, quoted or
    as a block (`>-`, `|`); None when the layout cannot be mapped with certainty."""
    node, found = yamltree.locate(file.root, loc)
    if not found or not file.data:
        return None
    lines = file.data.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
    if node.line < 1 or node.line > len(lines):
        return None
    first = lines[node.line - 1]
    start_col = node.col - 1
    if first[start_col : start_col + 1] in (">", "|"):
        row, col0 = node.line, None  # content starts on the next line
    elif first[start_col : start_col + 1] in ("'", '"'):
        row, col0 = node.line - 1, start_col + 1
    else:
        row, col0 = node.line - 1, start_col
    quote = first[start_col] if col0 == start_col + 1 else ""
    pos, blanks = 0, 0
    while row < len(lines) and pos <= len(value):
        line = lines[row]
        begin = col0 if col0 is not None else len(line) - len(line.lstrip(" "))
        chunk = line[begin:].rstrip()
        if quote and chunk.endswith(quote):
            chunk = chunk[:-1]
        col0 = None
        row += 1
        if not chunk:
            blanks += 1
            continue
        found_at = value.find(chunk, pos)
        if found_at < 0 or found_at > pos + 1 + blanks:
            return None
        if found_at <= offset < found_at + len(chunk):
            col = begin + (offset - found_at)
            word = value[offset:].split(None, 1)[0] if value[offset:].strip() else ""
            return (row, col + 1) if line[col:].startswith(word) else None
        pos, blanks = found_at + len(chunk), 0
    return None
