"""Problems found in the input: one type for errors and warnings, printed like a compiler."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Literal

Severity = Literal["error", "warning"]


OUTSIDE = "symlink leads outside the project; copy the file in instead"
"""Why an input that a symlink takes outside the project is refused: nothing is read from
outside it."""

CHANGED = "changed while the site was being built; build again"
"""Why an input read twice in one run, and different the second time, is not used."""


class OutputError(Exception):
    """The output folder cannot be used; the message says why."""


class SettingError(ValueError):
    """An environment setting (CLAIMPRESS_...) holds a value it cannot take; the message
    names it and says what it takes."""


def env_int(name: str, default: int) -> int:
    """A whole-number environment setting, `default` when unset; SettingError when it is
    not a whole number."""
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number, such as 2") from None


def printable(text: str) -> str:
    """Text safe to print on one terminal line: control characters (escape sequences, line
    breaks in a file name) shown as `\\x1b`-style escapes instead of acting on the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one place in one input file."""

    path: str
    """The file: relative to the project's root as gathering finds it (`claims/x.yaml`), as
    the user names it from the working folder once `shown` (`site/claims/x.yaml`)."""
    line: int
    """1-based line of the offending value (0 when the problem concerns the whole file)."""
    col: int
    """1-based column of the offending value."""
    field: str
    """Dotted path of the field inside the file, such as `sections[2].body`; empty for the file."""
    message: str
    """What is wrong and, where we can tell, how to fix it."""
    severity: Severity = "error"
    """Errors stop a build; warnings stop it only under `--strict`."""
    rule: str = ""
    """Stable name of the lint rule that found it, for warnings and silencing."""
    names: str = ""
    """Another file the message names last (`already defined at sources/x.yaml:3:1; ...`),
    as `path` names its own: `shown` rewrites both."""

    def shown(self, show: Callable[[str], str]) -> Problem:
        """The problem as the user reads it: `path` and the file the message names, both
        relative to the project's root, named by `show` (relative to the working folder)."""
        message = self.message
        if self.names:
            head, found, tail = message.rpartition(self.names)
            if found:
                message = head + show(self.names) + tail
        # Not `dataclasses.replace`: a build shows every warning of 10,000 claims.
        return Problem(
            show(self.path), self.line, self.col, self.field, message, self.severity, self.rule
        )

    def __str__(self) -> str:
        where = f"{printable(self.path)}:{self.line}:{self.col}"
        field = printable(self.field) or "(file)"
        text = f"{where}: {field}: {printable(self.message)}"
        if self.severity == "warning":
            text = f"{where}: {field}: warning: {printable(self.message)}"
        if self.rule:
            text += f" [{self.rule}]"
        return text

    def as_json(self) -> dict[str, object]:
        """The problem as a JSON-ready mapping, for `check --format json`."""
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "field": self.field,
            "message": self.message,
            "severity": self.severity,
            "rule": self.rule,
        }


_ORDER = operator.attrgetter(*(f.name for f in fields(Problem) if f.compare))
"""What problems are ordered by: their fields, as the dataclass compares them."""


def ordered(problems: Iterable[Problem]) -> list[Problem]:
    """Each problem once, in order (as `sorted` orders them, at a third of the cost: 30,000
    warnings took 0.2 s through the dataclass's own comparisons)."""
    return sorted(set(problems), key=_ORDER)


class ProblemsFound(Exception):
    """Raised when input problems stop a command; carries every problem, sorted."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = ordered(problems)
        super().__init__(f"{len(self.problems)} problem(s)")


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """Only the problems that are errors."""
    return [p for p in problems if p.severity == "error"]
