"""Safe YAML reading that keeps the line and column of every value.

PyYAML's C event parser does the parsing; this module builds the tree itself so it
can refuse what a claim file never needs (aliases, tags, deep nesting, duplicate
keys) at the exact place it occurs, before any value is constructed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .problems import Problem

try:  # The C parser is an order of magnitude faster; fall back when libyaml is absent.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 1_000_000
"""A claim file is a few kilobytes; anything past a megabyte is refused unread."""
MAX_DEPTH = 12
"""No claim file nests deeper than a handful of levels."""
MAX_KEY = 200
"""Field names, source keys and figure names are short; a longer key is a mistake."""

_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_IMPLICIT_FIRST = frozenset(
    "" if None in _RESOLVER.yaml_implicit_resolvers else _RESOLVER.yaml_implicit_resolvers
)
"""The first characters of a plain scalar that YAML may read as something other than text
(a number, date, boolean, null); any other plain scalar is text without asking."""
_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
}


@dataclass(slots=True)
class Node:
    """A YAML value with where it starts in the file."""

    value: Any
    """str, int, float, bool, None, date, list[Node] or dict[str, Entry]."""
    line: int
    """1-based line."""
    col: int
    """1-based column."""
    raw: str = ""
    """The scalar as written, for messages about YAML's type guessing."""
    plain: bool = False
    """True for an unquoted scalar, whose type YAML guessed."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Positional state: pickling (the build cache, worker results) is 4x faster.
        return Node, (self.value, self.line, self.col, self.raw, self.plain)


class ParsedLater(Node):
    """The root of a claim file's tree, parsed from the file's bytes when first read (a claim
    file loaded from the cache, as `review`, `approve` and `serve` load them, which locate
    few of its fields if any): keeping every claim's tree in the cache cost a build from
    nothing about 0.2 ms per claim to pickle, and a quarter of the claims pack. Only for
    bytes that parsed without a problem (a claim file that validated), whose tree parsing
    them again gives. Read, it holds what the root node does."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:  # Node's fields stay unset until read
        self.data = data

    def __getattr__(self, name: str) -> Any:  # only called for a field not set yet
        if name not in Node.__slots__ or not self.data:
            raise AttributeError(name)
        root, self.data = parse(self.data, "").root, b""
        assert root is not None, "a claim file that validated parses"
        for name_ in Node.__slots__:
            setattr(self, name_, getattr(root, name_))
        return getattr(self, name)

    def __eq__(self, other: object) -> bool:  # (Node's own compares only with a Node)
        if not isinstance(other, Node):
            return NotImplemented
        fields = Node.__slots__
        return [getattr(self, f) for f in fields] == [getattr(other, f) for f in fields]


@dataclass(slots=True)
class Entry:
    """One key of a mapping: the key's node and the value's node."""

    key: Node
    value: Node

    def __reduce__(self) -> tuple[Any, ...]:
        return Entry, (self.key, self.value)


@dataclass(slots=True)
class Document:
    """A parsed file: the root node, or the problems that stopped parsing."""

    root: Node | None
    problems: list[Problem] = field(default_factory=list)


class _Stop(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        self.line, self.col, self.message = line, col, message
        self.field = ""


class _Soft(_Stop):
    """A problem with one value (an impossible date, a duplicate key) that does not stop
    parsing: the rest of the file is still read and validated, so every problem is reported."""


def shorten(text: str, limit: int = 40) -> str:
    """Text quoted in a message: long values cut, so one huge value cannot flood the terminal."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode(data: bytes) -> tuple[str | None, tuple[int, int, str] | None]:
    """Bytes to text: UTF-8 only (a BOM is allowed); otherwise where and why not."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return None, (1, 1, "file is UTF-32; save it as UTF-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(data):
        return None, (1, 1, "file is UTF-16; save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        return None, (
            line,
            col,
            f"byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8",
        )
    nul = text.find("\0")
    if nul >= 0:
        return None, (*_position(text, nul), "NUL character in file; is it a binary file?")
    odd = _ODD_BREAK.search(text)
    if odd:
        return None, (
            *_position(text, odd.start()),
            f"U+{ord(odd[0]):04X} is read by YAML as a line break; "
            "replace it with a space or a real line break",
        )
    return text, None


_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
"""Characters YAML counts as line breaks though editors do not: they would shift every
line number after them and silently fold text."""


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: ASCII text with a NUL after (or before) every byte."""
    head = data[:64]
    return len(head) >= 4 and (
        head[1::2].count(0) == len(head[1::2]) or head[::2].count(0) == len(head[::2])
    )


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index, lines split as editors split them."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def parse(data: bytes, path: str, first: str = "question") -> Document:
    """Parse one YAML document into a tree of `Node`s, or say precisely why not; `first` is
    the field such a file starts with, for the messages about an empty or non-mapping file."""

    def fail(line: int, col: int, message: str) -> Document:
        return Document(None, [Problem(path, line, col, "", message)])

    if len(data) > MAX_BYTES:
        return fail(
            1, 1, f"file is larger than {MAX_BYTES:,} bytes, the limit for a YAML file here"
        )
    text, bad = decode(data)
    if bad:
        return fail(*bad)
    assert text is not None
    soft: list[_Soft] = []
    try:
        root = _build(yaml.parse(text, Loader=_Loader), soft)
    except _Stop as stop:
        return Document(None, [Problem(path, stop.line, stop.col, stop.field, stop.message)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        tab = mark is not None and text[mark.index : mark.index + 1] == "\t"
        return fail(
            line,
            col,
            "YAML syntax: tab character; indent with spaces, not tabs"
            if tab
            else _syntax_message(exc),
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow in a file
        return fail(
            *_position(text, exc.position),
            f"control character U+{exc.character:04X} is not allowed in YAML; remove it"
            if isinstance(exc.character, int)
            else f"YAML cannot read this file: {exc.reason}",
        )
    except yaml.YAMLError as exc:
        return fail(1, 1, f"YAML cannot read this file: {exc}")
    if root is None:
        return fail(1, 1, f"file is empty; it should be a mapping that starts with `{first}:`")
    if not isinstance(root.value, dict):
        return fail(
            root.line,
            root.col,
            f"file must be a mapping of fields (`{first}: ...`), not {kind_of(root)}",
        )
    return Document(root, [Problem(path, s.line, s.col, s.field, s.message) for s in soft])


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    context = f" {exc.context}" if exc.context else ""
    return f"YAML syntax: {problem}{context}"


def _pos(event: Any) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _build(events: Any, soft: list[_Soft]) -> Node | None:
    """Turn the event stream into nodes, iteratively so depth never exhausts the stack;
    problems that do not stop parsing go to `soft`."""
    stack: list[tuple[Node, Node | None]] = []  # (container, pending key for mappings)
    try:
        return _build_events(events, stack, soft)
    except _Stop as stop:
        stop.field = stop.field or _field(stack)
        raise


def _field(stack: list[tuple[Node, Node | None]]) -> str:
    """The dotted path of the value being built, for messages."""
    out = ""
    for depth, (container, key) in enumerate(stack):
        inner = depth == len(stack) - 1  # outer containers already hold the child being built
        if isinstance(container.value, list):
            out += f"[{len(container.value) - (0 if inner else 1)}]"
            continue
        if key is None and not inner and container.value:
            key = list(container.value.values())[-1].key
        if key is not None:
            out += f".{key.value}" if out else str(key.value)
    return out


def _build_events(
    events: Any, stack: list[tuple[Node, Node | None]], soft: list[_Soft]
) -> Node | None:
    root: Node | None = None
    documents = 0
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Stop(
                    *_pos(event),
                    "several YAML documents in one file; "
                    "keep one claim per file and remove the `---` line",
                )
            continue
        if isinstance(event, yaml.AliasEvent):
            raise _Stop(
                *_pos(event), f"YAML alias `*{event.anchor}` is not allowed; write the value out"
            )
        if isinstance(event, yaml.ScalarEvent):
            try:
                node = _scalar(event)
            except _Soft as problem:  # kept as the text it is, so the file reads on
                problem.field = _field(stack)
                soft.append(problem)
                node = Node(event.value, problem.line, problem.col, event.value)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            _check_tag(event, event.tag)
            if len(stack) >= MAX_DEPTH:
                raise _Stop(*_pos(event), f"nested more than {MAX_DEPTH} levels deep")
            container = Node([] if isinstance(event, yaml.SequenceStartEvent) else {}, *_pos(event))
            _attach(stack, container, soft)
            stack.append((container, None))
            continue
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node, _ = stack.pop()
            if not stack:
                root = node
            continue
        else:
            continue
        if not stack:
            root = node
        else:
            _attach(stack, node, soft)
    return root


@dataclass(slots=True)
class _Duplicate(Node):
    """A duplicate key: its value is read, then dropped (the first one stands)."""


def _attach(stack: list[tuple[Node, Node | None]], node: Node, soft: list[_Soft]) -> None:
    if not stack:
        return
    parent, key = stack[-1]
    if isinstance(parent.value, list):
        parent.value.append(node)
    elif key is None:
        if isinstance(node.value, (list, dict)):
            raise _Stop(node.line, node.col, "a mapping key must be a plain name")
        name = node.raw
        if len(name) > MAX_KEY:
            raise _Stop(
                node.line, node.col, f"key of {len(name):,} characters; keys are short names"
            )
        node.value = name
        previous = parent.value.get(name)
        if previous is not None:
            problem = _Soft(
                node.line,
                node.col,
                f"duplicate key `{name}` (first at line {previous.key.line}); remove one of them",
            )
            parent_field = _field(stack)
            problem.field = f"{parent_field}.{name}" if parent_field else name
            soft.append(problem)
            node = _Duplicate(name, node.line, node.col, node.raw, node.plain)
        stack[-1] = (parent, node)
    else:
        if not isinstance(key, _Duplicate):
            parent.value[key.value] = Entry(key, node)
        stack[-1] = (parent, None)


def _check_tag(event: Any, tag: str | None) -> None:
    if tag and tag not in ("!", *_ALLOWED_TAGS):
        raise _Stop(
            *_pos(event),
            f"YAML tag `{tag.replace(_TAG, '!!')}` is not allowed; "
            "claim files hold plain text, numbers, dates, lists and mappings",
        )


def _scalar(event: Any) -> Node:
    line, col = _pos(event)
    _check_tag(event, event.tag)
    text: str = event.value
    plain = event.implicit[0] and not event.style
    if event.tag and event.tag != "!":
        tag = event.tag
    elif plain and text[:1] not in _IMPLICIT_FIRST and _IMPLICIT_FIRST:
        tag = _TAG + "str"
    elif plain:
        tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    else:
        tag = _TAG + "str"
    value: Any = text
    if tag == _TAG + "merge":
        raise _Stop(line, col, "YAML merge key `<<` is not allowed; write the fields out")
    if tag != _TAG + "str":
        scalar = yaml.ScalarNode(tag, text)
        try:
            value = _CONSTRUCTOR.construct_object(scalar, deep=True)
        except (ValueError, OverflowError, yaml.constructor.ConstructorError) as exc:
            shown = shorten(text)
            if tag == _TAG + "timestamp":
                reason = str(exc) if len(str(exc)) <= 40 else "out of range"
                raise _Soft(
                    line, col, f"`{shown}` is not a real date ({reason}); write it as YYYY-MM-DD"
                ) from None
            raise _Soft(line, col, f"`{shown}` is not a valid {tag.replace(_TAG, '')}") from None
        if isinstance(value, dt.datetime):
            value = value.date() if value.time() == dt.time() and value.tzinfo is None else value
    return Node(value, line, col, text, plain)


def kind_of(node: Node) -> str:
    """How a user would name the node's YAML type, for messages."""
    value = node.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"a boolean (`{shorten(node.raw)}` is read as {str(value).lower()})"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, dt.datetime):
        return "a date and time"
    if isinstance(value, dt.date):
        return "a date"
    return "text"


def to_python(node: Node) -> Any:
    """The plain Python value of a node, for validation."""
    value = node.value
    if isinstance(value, list):
        return [to_python(item) for item in value]
    if isinstance(value, dict):
        return {key: to_python(entry.value) for key, entry in value.items()}
    return value


def locate(root: Node, loc: tuple[str | int, ...]) -> tuple[Node, bool]:
    """The deepest node along `loc`, and whether the whole path was found."""
    node = root
    for part in loc:
        value = node.value
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            node = value[part].value
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            node = value[part]
        else:
            return node, False
    return node, True


def key_node(root: Node, loc: tuple[str | int, ...]) -> Node | None:
    """The key node of the last mapping key in `loc`, when there is one."""
    if not loc or not isinstance(loc[-1], str):
        return None
    parent, found = locate(root, loc[:-1])
    if found and isinstance(parent.value, dict) and loc[-1] in parent.value:
        entry: Entry = parent.value[loc[-1]]
        return entry.key
    return None
