"""`claimpress import`: articles in the house text format to claim files.

An article is read line by line (every problem located as `path:line:col`), turned into a
draft claim whose prose is escaped so it renders back exactly and whose `[n]` markers cite
placeholder sources `source-n`, and then checked the only way that proves it: the claim's
text export must reproduce the article. Nothing is written for an article that fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.dates import format_date

from . import emit, prose
from .load import CLAIMS_DIR, ClaimFile, parse_model
from .model import Claim, Site
from .problems import Problem, errors
from .project import Project, display_path
from .render import Renderer
from .resolve import resolve_claim
from .scaffold import SCHEMA_DIR, slugify, write_schema
from .schema import schema_file

SUMMARY_HEADING = "Executive summary"
FOLLOW_UP_HEADING = "Want to dive deeper?"
SOURCES_AFTER = "\n\nSources\n"
"""What follows the article in a text export when it cites sources."""
CHECKED_ON = "Checked on "
DISCLAIMER = "Disclaimer: "
_MARKER = re.compile(r"\[([1-9][0-9]*)\]")
_HEADING = re.compile(r"(\d+)\. (.*)")
_PRIVATE = re.compile("[\ue000\ue001]")
_DATE_PATTERNS = ("MMMM d, y", "MMM d, y", "d MMMM y", "d MMM y", "y-MM-dd", "M/d/y", "d/M/y")
"""Ways of writing a date that are recognized, to suggest the site's `date_format`."""


class _Stop(Exception):
    """The article's structure is broken here; nothing after it can be read."""


@dataclass
class _Reader:
    """One article, its lines and the problems found in it."""

    rel: str
    lines: list[str]
    problems: list[Problem] = field(default_factory=list)
    prose: list[tuple[int, str, str]] = field(default_factory=list)
    """Each line of prose read: its index, its field and its text."""

    def problem(self, index: int, col: int, where: str, message: str) -> None:
        """Record a problem at line `index` (0-based) and 1-based column `col`."""
        self.problems.append(Problem(self.rel, index + 1, col, where, message))

    def stop(self, index: int, where: str, message: str, col: int = 1) -> _Stop:
        """Record a problem that ends the reading, and return the exception to raise."""
        self.problem(index, col, where, message)
        return _Stop()

    def line(self, index: int, where: str, wanted: str) -> str:
        """Line `index`, or stop: the article ended where `wanted` was expected."""
        if index >= len(self.lines):
            raise self.stop(
                len(self.lines) - 1, where, f"the article ends where {wanted} was expected"
            )
        return self.lines[index]

    def text(self, index: int, where: str, wanted: str, *, prose: bool = False) -> str:
        """A line that must hold text (not blank, no surrounding spaces)."""
        value = self.line(index, where, wanted)
        if prose:
            self.prose.append((index, where, value))
        if not value.strip():
            raise self.stop(index, where, f"expected {wanted}, found a blank line")
        if value != value.strip():
            self.problem(
                index, 1, where, "starts or ends with spaces, which the site would not print"
            )
        return value

    def blank(self, index: int, where: str, after: str) -> None:
        """A line that must be blank."""
        value = self.line(index, where, f"a blank line after {after}")
        if value.strip():
            raise self.stop(index, where, f"expected a blank line after {after}")
        if value:
            self.problem(index, 1, where, "a blank line with spaces; remove them")

    def exact(self, index: int, expected: str, where: str) -> None:
        """A line that must read exactly `expected`."""
        if self.line(index, where, f"`{expected}`") != expected:
            raise self.stop(index, where, f"expected `{expected}`")


@dataclass(frozen=True)
class Article:
    """An article read from the house text format, before it becomes a claim."""

    rel: str
    text: str
    question: str
    checked_on: dt.date
    summary: str
    sections: tuple[tuple[str, str], ...]
    follow_up: tuple[str, ...]


def read_article(rel: str, text: str, renderer: Renderer) -> tuple[Article | None, list[Problem]]:
    """Read one article, or every problem that stops it (the structure's first, then
    the date, the disclaimer and citation order), for the site `renderer` prints."""
    lines = text.split("\n")
    reader = _Reader(rel, lines)
    site = renderer.site
    for index, value in enumerate(lines):
        if "\r" in value:
            reader.problem(
                index,
                value.index("\r") + 1,
                "",
                "Windows line ending (CR LF); save the file with LF line endings",
            )
            return None, reader.problems
        if bad := _PRIVATE.search(value):
            reader.problem(
                index,
                bad.start() + 1,
                "",
                f"private-use character U+{ord(bad[0]):04X}, which claimpress reserves; remove it",
            )
    if reader.problems:
        return None, reader.problems
    try:
        question = reader.text(0, "question", "the question")
        reader.blank(1, "question", "the question")
        checked = reader.line(2, "checked_on", "`Checked on <date>`")
        if not checked.startswith(CHECKED_ON):
            raise reader.stop(2, "checked_on", "expected `Checked on <date>`")
        checked_on = _checked_on(reader, checked[len(CHECKED_ON) :], site, renderer)
        _disclaimer(reader, reader.line(3, "disclaimer", "`Disclaimer: ...`"), renderer)
        reader.blank(4, "summary", "the disclaimer")
        reader.exact(5, SUMMARY_HEADING, "summary")
        reader.blank(6, "summary", f"`{SUMMARY_HEADING}`")
        summary = reader.text(7, "summary", "the summary paragraph", prose=True)
        reader.blank(8, "summary", "the summary (it is one paragraph)")
        sections: list[tuple[str, str]] = []
        index = 9
        while reader.line(index, "follow_up", f"`{FOLLOW_UP_HEADING}`") != FOLLOW_UP_HEADING:
            where = f"sections[{len(sections)}]"
            number = len(sections) + 1
            match = _HEADING.fullmatch(lines[index])
            if match is None or int(match[1]) != number:
                raise reader.stop(
                    index,
                    f"{where}.heading",
                    f"expected section {number} (`{number}. Heading`) or `{FOLLOW_UP_HEADING}`",
                )
            heading = reader.text(index, f"{where}.heading", "a heading", prose=True)[
                len(match[1]) + 2 :
            ]
            if not heading.strip():
                raise reader.stop(index, f"{where}.heading", "the section has no heading")
            reader.blank(index + 1, f"{where}.heading", "the heading")
            body = reader.text(index + 2, f"{where}.body", "the section's paragraph", prose=True)
            reader.blank(index + 3, f"{where}.body", "the paragraph (a section has one)")
            sections.append((heading, body))
            index += 4
        if not sections:
            raise reader.stop(index, "sections", "expected at least one section (`1. Heading`)")
        follow_up = tuple(lines[index + 1 :])
        if not follow_up:
            raise reader.stop(index, "follow_up", "expected follow-up questions, one a line")
        for i, question_line in enumerate(follow_up):
            if not question_line.strip():
                raise reader.stop(
                    index + 1 + i,
                    f"follow_up[{i}]",
                    "blank line among the follow-up questions; they end the article",
                )
    except _Stop:
        return None, reader.problems
    _citation_order(reader)
    if reader.problems:
        return None, reader.problems
    article = Article(rel, text, question, checked_on, summary, tuple(sections), follow_up)
    return article, []


def _checked_on(reader: _Reader, written: str, site: Site, renderer: Renderer) -> dt.date:
    """The date of a `Checked on` line, which must be printed as the site prints dates."""
    locale = site.language.replace("-", "_")
    found = _find_date(written, site.date_format, locale)
    if found is not None:
        return found
    example = renderer.format_date(dt.date(2026, 1, 16))
    message = (
        f"`{written}` is not a date as this site prints them: date_format "
        f"`{site.date_format}` in site.yaml prints `{example}`"
    )
    for pattern in _DATE_PATTERNS:
        for other in dict.fromkeys((locale, "en")):
            if _find_date(written, pattern, other) is not None:
                message += f"; to import this article, set `date_format: {pattern}`"
                if other != locale:
                    message += f" and `language: {other}`"
                message += " in site.yaml"
                break
        else:
            continue
        break
    raise reader.stop(2, "checked_on", message, len(CHECKED_ON) + 1)


def _find_date(written: str, pattern: str, locale: str) -> dt.date | None:
    """The date that `pattern` in `locale` prints as `written`, searching the years the text
    names (four digits, or two as 19xx/20xx)."""
    years: set[int] = set()
    for digits in re.findall(r"\d+", written):
        if len(digits) == 4:
            years.add(int(digits))
        elif len(digits) == 2:
            years |= {2000 + int(digits), 1900 + int(digits)}
    for year in sorted(years):
        if not dt.MINYEAR <= year <= dt.MAXYEAR:
            continue
        day = dt.date(year, 1, 1)
        while day.year == year:
            try:
                if format_date(day, format=pattern, locale=locale) == written:
                    return day
            except (ValueError, KeyError):
                return None
            day += dt.timedelta(days=1)
    return None


def _disclaimer(reader: _Reader, line: str, renderer: Renderer) -> None:
    """The disclaimer line must be the one the site prints under every claim."""
    expected = DISCLAIMER + renderer.disclaimer.text
    if line == expected:
        return
    if not line.startswith(DISCLAIMER):
        raise reader.stop(3, "disclaimer", f"expected `{DISCLAIMER}...` (the site's disclaimer)")
    col = next(
        (i for i, (a, b) in enumerate(zip(line, expected, strict=False)) if a != b),
        min(len(line), len(expected)),
    )
    reader.problem(
        3,
        col + 1,
        "disclaimer",
        f"not the disclaimer this site prints, which is `{expected}`; "
        "change `disclaimer` in site.yaml to match the article",
    )


def _citation_order(reader: _Reader) -> None:
    """`[n]` markers must be numbered by first use, as claimpress numbers them."""
    seen: set[int] = set()
    for index, where, text in reader.prose:
        for match in _MARKER.finditer(text):
            number = int(match[1])
            if number in seen:
                continue
            if number != len(seen) + 1:
                reader.problem(
                    index,
                    match.start() + 1,
                    where,
                    f"source [{number}] is cited before [{len(seen) + 1}]; sources are "
                    "numbered in order of first citation, so this article cannot come back "
                    "exactly; renumber its citations",
                )
                return
            seen.add(number)


def source_key(number: int) -> str:
    """The key a `[n]` marker becomes: `source-n`."""
    return f"source-{number}"


def prose_text(text: str) -> str:
    """A line of the article as claim prose: escaped, `[n]` markers as `[@source-n]`."""
    out, last = [], 0
    for match in _MARKER.finditer(text):
        out.append(_escape(text[last : match.start()]))
        out.append(f"[@{source_key(int(match[1]))}]")
        last = match.end()
    out.append(_escape(text[last:]))
    return "".join(out)


def _escape(text: str) -> str:
    return prose.escape_braces(prose.escape_markdown(text))


def claim_data(article: Article) -> dict[str, Any]:
    """The claim an article becomes: a draft with placeholder sources for its markers."""
    texts = [article.summary, *(part for pair in article.sections for part in pair)]
    numbers = dict.fromkeys(int(m[1]) for text in texts for m in _MARKER.finditer(text))
    return {
        "question": article.question,
        "checked_on": article.checked_on,
        "status": "draft",
        "summary": prose_text(article.summary),
        "sections": [
            {"heading": prose_text(heading), "body": prose_text(body)}
            for heading, body in article.sections
        ],
        "follow_up": list(article.follow_up),
        "sources": {
            source_key(n): {"title": f"TODO: identify source [{n}] of {Path(article.rel).name}"}
            for n in numbers
        },
    }


@dataclass(frozen=True)
class Imported:
    """A claim file made from an article, ready to write."""

    article: str
    path: Path
    text: str


def import_articles(
    project: Project, inputs: Sequence[Path], out: Path | None = None
) -> tuple[list[Imported], list[Problem]]:
    """Read, convert and verify every article named (files, or folders of `.txt` files); write
    the claim files of those that round-trip exactly, never replacing a file."""
    out = out if out is not None else project.root / CLAIMS_DIR
    schema_path = Path(os.path.relpath(project.root / SCHEMA_DIR / schema_file("claim"), out))
    problems: list[Problem] = []
    ready: list[Imported] = []
    taken: set[Path] = set()
    for path in _articles(inputs, problems):
        rel = display_path(path)
        imported, found = _import_one(project, path, rel, out, schema_path.as_posix())
        problems += found
        if imported is None:
            continue
        if imported.path in taken:
            problems.append(
                Problem(
                    rel, 1, 1, "question", f"another article here also becomes {imported.path.name}"
                )
            )
            continue
        taken.add(imported.path)
        ready.append(imported)
    written = []
    for imported in ready:
        imported.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(imported.path, "x", encoding="utf-8") as handle:
                handle.write(imported.text)
        except FileExistsError:
            problems.append(Problem(imported.article, 1, 1, "question", _exists(imported.path)))
            continue
        written.append(imported)
    if written:
        write_schema(project.root)
    return written, problems


def _articles(inputs: Sequence[Path], problems: list[Problem]) -> Iterator[Path]:
    """The article files named: files as given, folders' `.txt` files sorted by name."""
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix == ".txt" and p.is_file())
            if not found:
                problems.append(
                    Problem(display_path(path), 0, 0, "", "no .txt articles in this folder")
                )
            yield from found
        elif path.is_file():
            yield path
        else:
            problems.append(Problem(display_path(path), 0, 0, "", "no such file or folder"))


def _exists(path: Path) -> str:
    return f"{display_path(path)} already exists; remove it or import into another --out"


def _import_one(
    project: Project, path: Path, rel: str, out: Path, schema: str
) -> tuple[Imported | None, list[Problem]]:
    """One article to a verified claim file's text, or the problems that prevent it."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem(rel, line, col, "", "not UTF-8 text; save the article as UTF-8")]
    if text.startswith("\ufeff"):
        return None, [
            Problem(rel, 1, 1, "", "starts with a byte-order mark; save as UTF-8 without BOM")
        ]
    # A final newline is how text files end; the article is what comes before it.
    renderer = Renderer(project.root, project.site)
    article, found = read_article(rel, text.removesuffix("\n"), renderer)
    if article is None:
        return None, found
    slug = slugify(article.question)
    if not slug:
        return None, [Problem(rel, 1, 1, "question", "cannot make a file name from the question")]
    target = out / f"{slug}.yaml"
    if target.exists() or target.with_suffix(".yml").exists():
        return None, [Problem(rel, 1, 1, "question", _exists(target))]
    try:
        yaml_text = emit.claim_yaml(claim_data(article), schema=schema)
    except ValueError as exc:
        return None, [Problem(rel, 1, 1, "", f"cannot write this article as YAML: {exc}")]
    return _verify(project, renderer, article, target, yaml_text)


def _verify(
    project: Project, renderer: Renderer, article: Article, target: Path, yaml_text: str
) -> tuple[Imported | None, list[Problem]]:
    """The claim's text export must be the article, then only its sources."""
    rel = article.rel
    claim_rel = display_path(target)
    claim, root, problems = parse_model(yaml_text.encode(), claim_rel, Claim)
    if claim is None or root is None:
        return None, [_moved(rel, p, project) for p in problems]
    file = ClaimFile(
        claim_rel, root, target.stem, claim, hashlib.sha256(yaml_text.encode()).hexdigest()
    )
    page, problems = resolve_claim(file, project.registry, project.site)
    if page is None or errors(problems):
        return None, [_moved(rel, p, project) for p in errors(problems)]
    exported = renderer.claim_text(page)
    rest = exported[len(article.text) :]
    if exported.startswith(article.text) and (not rest or rest.startswith(SOURCES_AFTER)):
        return Imported(rel, target, yaml_text), []
    theirs = article.text.split("\n")
    ours = exported.split("\n")[: len(theirs)]
    index = _differ(theirs, ours)
    line = theirs[index] if index < len(theirs) else ""
    mine = ours[index] if index < len(ours) else ""
    return None, [
        Problem(
            rel,
            index + 1,
            _differ(line, mine) + 1,
            "",
            "claimpress cannot reproduce this line exactly; "
            f"`claimpress export --format text` would print {mine!r}",
        )
    ]


def _differ(a: Sequence[str], b: Sequence[str]) -> int:
    """The index of the first item where `a` and `b` differ (the shorter length if one is
    the start of the other)."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _moved(rel: str, problem: Problem, project: Project) -> Problem:
    """A problem of the claim an article became, reported on the article (a file of the
    project its message names, named as messages name it)."""
    message = problem.shown(project.show).message
    return Problem(rel, 1, 1, problem.field, f"the imported claim: {message}")
