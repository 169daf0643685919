"""Derived data: figures computed, citations numbered, prose rendered, follow-ups linked.

Input is the validated model (`load.py`); output is one `Page` per claim, everything a
template or an export needs, plus the problems found on the way. No I/O here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import hashlib
import html
import pickle
import re
import unicodedata
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar

from markupsafe import Markup
from pydantic import ValidationError

from . import figures as fig
from . import prose
from .load import ClaimFile, Located, RegistryFile, Unvalidated, locate_in_field
from .model import Claim, Correction, Figure, Rating, Site, Source
from .problems import Problem
from .prose import Block, Cite, FigureRef

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A source or figure with the file that defines it."""

    key: str
    item: T
    file: Located
    loc: tuple[str | int, ...]
    """Where in `file` the entry is defined."""

    @property
    def shared(self) -> bool:
        """True when the entry comes from the shared registry, not the claim itself."""
        return isinstance(self.file, RegistryFile)

    def where(self) -> str:
        """`path:line:col` of the entry's key, for messages naming both places."""
        line, col = self.file.key_at(*self.loc)
        return f"{self.file.rel}:{line}:{col}"


Read = tuple[str, object]
"""One thing a claim read of the registry: `("source", key)`, `("figure", key)` or
`("value", key)`, found or not; `(table, None)` for a whole table it walked;
`("near", (value, step))` for the figures whose value a typed number matches."""


@dataclass(frozen=True)
class Registry:
    """Sources and figures defined once under `sources/` and `figures/` for every claim."""

    sources: Mapping[str, Entry[Source]] = field(default_factory=dict)
    figures: Mapping[str, Entry[Figure]] = field(default_factory=dict)
    values: Mapping[str, Decimal] = field(default_factory=dict)
    """The registry's figures, computed once."""
    answers: dict[Read, bytes] = field(default_factory=dict, repr=False, compare=False)
    """A hash of what each `Read` finds here, worked out once (`fingerprint`)."""

    def near(self, value: Decimal, step: Decimal) -> list[str]:
        """The names of the figures within half a `step` of `value` (which a number typed
        at that precision matches), sorted."""
        return sorted(name for name, v in self.values.items() if abs(v - value) * 2 <= step)

    def reading(self) -> Reading:
        """A view of this registry that notes what is read of it (`Reading.noted`)."""
        return Reading(self)

    def fingerprint(self, noted: bytes) -> str:
        """A hash of the reads `noted` (`Reading.noted`) and of what they find in this
        registry. A claim whose reads find the same resolves and lints the same, so its
        cache key holds this instead of the whole registry."""
        answers, answer = self.answers, self._answer
        found = b"".join([answers.get(read) or answer(read) for read in pickle.loads(noted)])
        return hashlib.sha256(noted + found).hexdigest()

    def _answer(self, read: Read) -> bytes:
        table, key = read
        if table == "near":
            assert isinstance(key, tuple)
            text = repr(self.near(*key))
        elif key is None:
            keys = sorted(self._table(table))
            text = "".join(f"{k!r}{self._answer((table, k)).hex()}" for k in keys)
        elif table == "value":
            text = repr(self.values.get(str(key)))
        else:
            entry = (self.sources if table == "source" else self.figures).get(str(key))
            text = "" if entry is None else entry.where() + entry.item.model_dump_json()
        self.answers[read] = answer = hashlib.sha256(text.encode()).digest()
        return answer

    def _table(self, name: str) -> Mapping[str, object]:
        tables: dict[str, Mapping[str, object]] = {
            "source": self.sources,
            "figure": self.figures,
            "value": self.values,
        }
        return tables[name]


class Reading(Registry):
    """A registry that notes in `read` every key looked up in it (found or not), every
    table walked whole and every `near` asked."""

    read: set[Read]

    def __init__(self, registry: Registry) -> None:
        read: set[Read] = set()
        super().__init__(
            _Noted(registry.sources, "source", read),
            _Noted(registry.figures, "figure", read),
            _Noted(registry.values, "value", read),
        )
        object.__setattr__(self, "read", read)

    def near(self, value: Decimal, step: Decimal) -> list[str]:
        self.read.add(("near", (value, step)))
        return super().near(value, step)

    def noted(self) -> bytes:
        """What was read so far, in a stable order, pickled: to keep with the claim, and
        for `fingerprint`."""
        return pickle.dumps(tuple(sorted(self.read, key=repr)), protocol=5)


class _Noted(Mapping[str, T]):
    """A table of the registry that notes what is read of it."""

    def __init__(self, table: Mapping[str, T], name: str, read: set[Read]) -> None:
        self.table, self.name, self.read = table, name, read

    def __getitem__(self, key: str) -> T:
        self.read.add((self.name, key))
        return self.table[key]

    def __contains__(self, key: object) -> bool:
        self.read.add((self.name, key))
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        self.read.add((self.name, None))
        return iter(self.table)

    def __len__(self) -> int:
        self.read.add((self.name, None))
        return len(self.table)


@dataclass(frozen=True)
class ShownFigure:
    """A figure as reviewers see it: value, provenance and derivation."""

    name: str
    value: Decimal
    shown: str
    """How prose shows it without a format: its display, or the plain value."""
    source: str | None
    formula: str | None
    derivation: str | None
    """The formula with its inputs' values: `63,892 ÷ 36,200,000`."""
    note: str | None
    shared: bool
    used: bool
    """Whether the claim's prose shows it."""


@dataclass(frozen=True)
class CitedSource:
    """A source on a page, numbered in order of first citation."""

    number: int
    key: str
    source: Source
    shared: bool
    citations: int
    """How many times the page cites it."""


@dataclass(frozen=True)
class Section:
    """A numbered section, rendered."""

    number: int
    heading: Block
    body: Block


@dataclass(frozen=True)
class FollowUp:
    """A follow-up question, linked to the claim that answers it when there is one."""

    question: str
    slug: str | None = None
    target_question: str | None = None


@dataclass(frozen=True)
class CorrectionNote:
    """A correction or update, rendered."""

    correction: Correction
    note: Block


@dataclass(frozen=True)
class Page:
    """One claim, resolved: what every output format renders."""

    file: ClaimFile
    claim: Claim
    slug: str
    summary: Block
    sections: tuple[Section, ...]
    limitations: tuple[Block, ...]
    corrections: tuple[CorrectionNote, ...]
    sources: tuple[CitedSource, ...]
    figures: tuple[ShownFigure, ...]
    follow_ups: tuple[FollowUp, ...]
    rating: Rating | None

    @property
    def updated_on(self) -> dt.date | None:
        """The date of the latest correction or update, if any."""
        return max((c.date for c in self.claim.corrections), default=None)

    @functools.cached_property
    def facts(self) -> Facts:
        """What the site's listings read of the page (`Facts`)."""
        claim = self.claim
        changed_on = max(self.updated_on or claim.checked_on, claim.checked_on)
        cites = tuple(
            (c.key, _digest(repr(c.source.__dict__)), c.source.title, c.number)
            for c in self.sources
        )
        return Facts(
            self.file.rel,
            self.file.digest,
            claim.status,
            claim.checked_on,
            changed_on,
            claim.question,
            tuple(claim.topics),
            tuple(claim.follow_up),
            cites,
            _digest(self.summary.html),
            question_key(claim.question),
            tuple(map(question_key, claim.follow_up)),
        )


class Facts(NamedTuple):
    """What the site's listings read of a page: small, and kept in its claim's summary, so
    that a build can order, group and list every page without loading it (`LazyPage`)."""

    rel: str
    """The claim file (`ClaimFile.rel`)."""
    digest: str
    """A digest of its bytes (`ClaimFile.digest`)."""
    status: str
    checked_on: dt.date
    changed_on: dt.date
    """When the page last changed for readers: its latest correction or update, else its
    check."""
    question: str
    topics: tuple[str, ...]
    asks: tuple[str, ...]
    """Its follow-up questions, as written."""
    cites: tuple[tuple[str, str, str, int], ...]
    """Each source it cites: key, a digest of the source's content, title and number."""
    summary: str
    """A digest of its summary as rendered (empty when it was not)."""
    question_key: str
    """`question_key(question)`: worked out once, not by every build for every page (with
    `ask_keys`, 0.2 s of a rebuild at 10,000 claims)."""
    ask_keys: tuple[str, ...]
    """`question_key` of each of `asks`."""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


_PAGE_FIELDS = frozenset(f.name for f in fields(Page))


class LazyPage(Page):
    """A page whose fields are read from the cache when first used, its `facts` and slug
    aside: a rebuild lists every page of the site, and renders again only a few of them.

    Made by `lazy`; it acts as a `Page` in every way, pickles as one and, once loaded, is
    one (so reading its fields costs no more than a page's)."""

    def __getattr__(self, name: str) -> Any:
        # Called only for what the page lacks: the fields it has not loaded yet.
        if name not in _PAGE_FIELDS:
            raise AttributeError(name)
        page = self.__dict__["_load"]()
        for key in _PAGE_FIELDS:
            self.__dict__.setdefault(key, getattr(page, key))
        del self.__dict__["_load"]
        object.__setattr__(self, "__class__", Page)  # loaded: a page like any other
        return self.__dict__[name]

    def __reduce__(self) -> tuple[Any, ...]:
        return Page, tuple(getattr(self, f.name) for f in fields(Page))

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, Page) and _same(self, other))

    __hash__ = Page.__hash__


def _same(a: Page, b: Page) -> bool:
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(Page))


def lazy(facts: Facts, load: Callable[[], Page], **known: Any) -> Page:
    """A page with `facts` and the fields `known` (its slug among them), the others loaded
    by `load` when one of them is first read."""
    page = object.__new__(LazyPage)
    page.__dict__.update(facts=facts, _load=load, **known)
    return page


def loaded(page: Page) -> Page:
    """`page`, every field of it loaded now (a `LazyPage` loads when first read)."""
    _ = page.claim
    return page


def detached(page: Page) -> Page:
    """`page` loaded, as another object when it is a `LazyPage` not loaded yet (which stays
    so): for work done once with it, such as rendering it in a forked worker, which then
    frees what it loaded."""
    load = page.__dict__.get("_load")
    return page if load is None else _replaced(load(), **_known(page), facts=page.facts)


def _known(page: Page) -> dict[str, Any]:
    """The fields of `page` loaded or given."""
    return {k: v for k, v in page.__dict__.items() if k in _PAGE_FIELDS}


def _replaced(page: Page, **changes: Any) -> Page:
    """`replace(page, **changes)`, keeping its facts (which the changes leave as they are,
    or give) and, for a page not loaded yet, not loading it."""
    facts = changes.pop("facts", None) or page.__dict__.get("facts")
    if "_load" in page.__dict__:
        assert facts is not None
        return lazy(facts, page.__dict__["_load"], **{**_known(page), **changes})
    new = replace(page, **changes)
    if facts is not None:
        new.__dict__["facts"] = facts
    return new


def build_registry(files: Sequence[RegistryFile]) -> tuple[Registry, list[Problem]]:
    """Merge the registry files, refusing a key defined twice, and compute shared figures."""
    sources: dict[str, Entry[Source]] = {}
    figures: dict[str, Entry[Figure]] = {}
    problems: list[Problem] = []
    for file in files:
        problems += _merge(sources, file.sources, file, (), "source")
        problems += _merge(figures, file.figures, file, (), "figure")
    for name, entry in figures.items():
        source = entry.item.source
        if source is not None and source not in sources:
            problems.append(
                entry.file.problem((name, "source"), _unknown("source", source, sources))
            )
    values, figure_problems = _compute(figures, {})
    return Registry(sources, figures, values), problems + figure_problems


_UNRENDERED = Block(Markup(""), "", "")


def resolve_claim(
    file: ClaimFile, registry: Registry, site: Site, *, render: bool = True
) -> tuple[Page | None, list[Problem]]:
    """Resolve one claim against the registry and site settings. With `render=False` the
    prose blocks are left empty (rendering finds no problems): for `check`, which needs
    only the problems and the page's structure, never its prose."""
    claim = file.claim
    fields = _prose_fields(
        claim.summary,
        [(s.heading, s.body) for s in claim.sections],
        claim.limitations,
        [c.note for c in claim.corrections],
    )
    figure_sources = {name: item.source for name, item in claim.figures.items() if item.source}
    refs = _References(file, claim.sources, claim.figures, figure_sources, registry)
    problems = refs.problems
    sources, figures = refs.sources, refs.figures
    local = {name: figures[name] for name in claim.figures}
    values, figure_problems = _compute(local, registry.values)
    problems += figure_problems
    rating = refs.rating(claim.verdict, site)

    # Every prose field, in page order: citations are numbered by first use.
    parsed = [refs.parse(loc, text) for loc, text, _ in fields]
    numbers: dict[str, int] = {}
    counts: dict[str, int] = {}
    used_figures: set[str] = set()
    for (loc, _, _), parsed_text in zip(fields, parsed, strict=True):
        for token in parsed_text.tokens:
            if isinstance(token, Cite):
                for key in token.keys:
                    if key in sources:
                        numbers.setdefault(key, len(numbers) + 1)
                        counts[key] = counts.get(key, 0) + 1
            elif token.name in figures:
                used_figures.add(token.name)
                if token.name in values or token.name in registry.values:
                    value = values.get(token.name, registry.values.get(token.name))
                    assert value is not None
                    try:
                        _show(token, figures[token.name].item, value)
                    except fig.FigureError as exc:
                        problems.append(
                            file.problem(
                                loc,
                                f"{{{token.name}{':' + token.spec if token.spec else ''}}}: {exc}",
                            )
                        )
    if any(p.severity == "error" for p in problems):
        return None, problems

    all_values = ChainMap(values, registry.values)  # type: ignore[arg-type]
    occurrences: dict[int, int] = {}

    def occurrence(number: int) -> int:
        occurrences[number] = occurrences.get(number, 0) + 1
        return occurrences[number]

    blocks = [
        _render(item, figures, all_values, numbers, occurrence, inline) if render else _UNRENDERED
        for item, (_, _, inline) in zip(parsed, fields, strict=True)
    ]
    summary, rest = blocks[0], blocks[1:]
    sections = tuple(
        Section(i + 1, rest[2 * i], rest[2 * i + 1]) for i in range(len(claim.sections))
    )
    rest = rest[2 * len(claim.sections) :]
    limitations = tuple(rest[: len(claim.limitations)])
    corrections = tuple(
        CorrectionNote(c, b)
        for c, b in zip(claim.corrections, rest[len(claim.limitations) :], strict=True)
    )
    cited = tuple(
        CitedSource(n, key, sources[key].item, sources[key].shared, counts[key])
        for key, n in numbers.items()
    )
    shown = _shown_figures(claim, figures, all_values, used_figures)
    page = Page(
        file,
        claim,
        file.slug,
        summary,
        sections,
        limitations,
        corrections,
        cited,
        shown,
        tuple(FollowUp(q) for q in claim.follow_up),
        rating,
    )
    return page, problems


def unresolved(file: Unvalidated, registry: Registry, site: Site) -> list[Problem]:
    """What resolving finds wrong with a claim file that did not validate, as far as its
    fields that are what they should be tell: citations and figures its prose names that
    neither it nor the registry defines, keys the registry defines too, a figure's unknown
    source, a formula that does not parse or compute, an unknown verdict, broken prose.
    Validation reports the rest, so that one run reports every problem of the file."""
    data = file.value if isinstance(file.value, dict) else {}

    def table(name: str) -> dict[str, Any]:
        found = data.get(name)
        return found if isinstance(found, dict) else {}

    def items(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    def get(item: Any, key: str) -> Any:
        return item.get(key) if isinstance(item, dict) else None

    figures = table("figures")
    figure_sources = {name: get(item, "source") for name, item in figures.items()}
    refs = _References(file, table("sources"), figures, figure_sources, registry)
    fields = _prose_fields(
        data.get("summary"),
        [(get(s, "heading"), get(s, "body")) for s in items(data.get("sections"))],
        items(data.get("limitations")),
        [get(c, "note") for c in items(data.get("corrections"))],
    )
    for loc, text, _ in fields:
        if isinstance(text, str):
            refs.parse(loc, text)
    if isinstance(data.get("verdict"), str):
        refs.rating(data["verdict"], site)
    entries: dict[str, Entry[Figure]] = {}
    for name, raw in figures.items():
        with contextlib.suppress(ValidationError):  # (reported by validation)
            entries[name] = Entry(name, Figure.model_validate(raw), file, ("figures", name))
    return refs.problems + _compute(entries, registry.values, figures.keys() - entries)[1]


ProseField = tuple[tuple[str | int, ...], Any, bool]
"""A field of prose: where it is, its text, whether it is inline (a heading)."""


def _prose_fields(
    summary: Any, sections: list[tuple[Any, Any]], limitations: list[Any], notes: list[Any]
) -> list[ProseField]:
    """The prose fields of a claim in page order."""
    fields: list[ProseField] = [(("summary",), summary, False)]
    for i, (heading, body) in enumerate(sections):
        fields += [
            (("sections", i, "heading"), heading, True),
            (("sections", i, "body"), body, False),
        ]
    fields += [(("limitations", i), text, False) for i, text in enumerate(limitations)]
    fields += [(("corrections", i, "note"), note, False) for i, note in enumerate(notes)]
    return fields


class _References:
    """A claim's sources and figures looked up in it and in the registry, and the problems
    found in what names them: `problems` grows with each `parse` and `rating`."""

    def __init__(
        self,
        file: ClaimFile | Unvalidated,
        sources: Mapping[str, Any],
        figures: Mapping[str, Any],
        figure_sources: Mapping[str, Any],
        registry: Registry,
    ) -> None:
        self.file = file
        # The registry's tables are looked into, never copied: a `Reading` notes what is used.
        self.sources: ChainMap[str, Entry[Source]] = ChainMap({}, registry.sources)  # type: ignore[arg-type]
        self.figures: ChainMap[str, Entry[Figure]] = ChainMap({}, registry.figures)  # type: ignore[arg-type]
        self.problems = _merge(self.sources, sources, file, ("sources",), "source")
        self.problems += _merge(self.figures, figures, file, ("figures",), "figure")
        for name, source in figure_sources.items():
            if isinstance(source, str) and source not in self.sources:
                message = _unknown("source", source, self.sources)
                self.problems.append(file.problem(("figures", name, "source"), message))

    def rating(self, verdict: str | None, site: Site) -> Rating | None:
        """The site's rating named `verdict`; a problem when there is none."""
        if verdict is None:
            return None
        rating = next((r for r in site.rating_scale if r.name == verdict), None)
        if rating is None:
            names = [r.name for r in site.rating_scale]
            message = (
                _unknown("verdict", verdict, names)
                if names
                else "no verdict in site.yaml's rating_scale"
            )
            self.problems.append(self.file.problem(("verdict",), message))
        return rating

    def parse(self, loc: tuple[str | int, ...], text: str) -> prose.Parsed:
        """A field of prose parsed (empty when it does not parse, a problem then), each
        source and figure it names that is not defined a problem."""
        try:
            parsed = prose.parse(text)
        except prose.ProseError as exc:
            self.problems.append(self.file.problem(loc, str(exc)))
            return prose.Parsed("", ())
        for token in parsed.tokens:
            if isinstance(token, Cite):
                for key in token.keys:
                    if key not in self.sources:
                        known = [f"[@{k}]" for k in self.sources]
                        message = _unknown("source", f"[@{key}]", known)
                        self.problems.append(
                            _at_token(self.file, loc, text, token, message, "@" + key)
                        )
            elif token.name not in self.figures:
                known = [f"{{{n}}}" for n in self.figures]
                message = _unknown("figure", f"{{{token.name}}}", known)
                self.problems.append(_at_token(self.file, loc, text, token, message))
        return parsed


def link_follow_ups(pages: Iterable[Page]) -> list[Page]:
    """Link each follow-up that matches another page's question (case, punctuation, spacing
    ignored) to that page."""
    pages = list(pages)
    by_question = {p.facts.question_key: p for p in pages}
    linked = []
    for page in pages:
        follow_ups = []
        for question, key in zip(page.facts.asks, page.facts.ask_keys, strict=True):
            target = by_question.get(key)
            if target is not None and target.slug != page.slug:
                follow_ups.append(FollowUp(question, target.slug, target.facts.question))
            else:
                follow_ups.append(FollowUp(question))
        # Most follow-ups stay open: the page as it is, not a copy (9,500 at 10,000 claims).
        same = all(f.slug is None for f in follow_ups) and not _linked(page)
        linked.append(page if same else _replaced(page, follow_ups=tuple(follow_ups)))
    return linked


def _linked(page: Page) -> bool:
    """Whether any follow-up of the page is linked already (pages are resolved unlinked)."""
    known = page.__dict__.get("follow_ups", ())
    return any(f.slug is not None for f in known)


@dataclass(frozen=True)
class OpenQuestion:
    """A follow-up no claim answers yet, with the claims that ask it."""

    question: str
    """The question as the first claim asking it words it."""
    asked_by: tuple[Page, ...]
    """The claims listing it under "Want to dive deeper?", in the order given."""


def open_questions(pages: Iterable[Page]) -> list[OpenQuestion]:
    """Every follow-up of linked `pages` that no page answers, once per question (case,
    punctuation, spacing ignored), sorted by question."""
    asked: dict[str, tuple[str, list[Page]]] = {}
    for page in pages:
        for follow_up in page.follow_ups:
            if follow_up.slug is not None:
                continue
            _, askers = asked.setdefault(question_key(follow_up.question), (follow_up.question, []))
            if not askers or askers[-1] is not page:  # (a page's follow-ups come together)
                askers.append(page)
    return [
        OpenQuestion(question, tuple(askers)) for key, (question, askers) in sorted(asked.items())
    ]


_NOT_WORD = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=65536)
def question_key(question: str) -> str:
    """A question reduced to its words, for matching follow-ups to claims."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


def _merge(
    table: MutableMapping[str, Entry[T]],
    items: Mapping[str, T],
    file: Located,
    prefix: tuple[str, ...],
    kind: str,
) -> list[Problem]:
    """Add a file's entries to a table, refusing a key that is already there."""
    problems = []
    for key, item in items.items():
        if key in table:
            problems.append(
                file.problem(
                    (*prefix, key),
                    f"{kind} `{key}` is already defined at "
                    f"{table[key].where()}; use that one or rename this one",
                    key=True,
                    names=table[key].file.rel,
                )
            )
        table[key] = Entry(key, item, file, (*prefix, key))
    return problems


def _at_token(
    file: ClaimFile | Unvalidated,
    loc: tuple[str | int, ...],
    text: str,
    token: prose.Token,
    message: str,
    part: str = "",
) -> Problem:
    """A problem at the token's first place in the field (at `part` of it when given), or at
    the field when the file's layout does not say where that is."""
    start = next((a for a, _, t in prose.token_spans(text) if t == token), -1)
    offset = text.find(part, start) if start >= 0 and part else start
    at = locate_in_field(file, loc, text, offset) if offset >= 0 else None
    return file.problem(loc, message, at=at)


def _unknown(kind: str, name: str, known: Iterable[str], note: str = "") -> str:
    guess = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"unknown {kind} `{name}`{note}" + (f"; did you mean `{guess[0]}`?" if guess else "")


def _compute(
    entries: Mapping[str, Entry[Figure]],
    known: Mapping[str, Decimal],
    invalid: Iterable[str] = (),
) -> tuple[dict[str, Decimal], list[Problem]]:
    """Values of the figures in `entries`, each formula over `known` and the others, in
    dependency order; unknown names, cycles and bad arithmetic are problems. The figures
    `invalid` exist but have no value (nor do the formulas using them)."""
    values: dict[str, Decimal] = {}
    problems: list[Problem] = []
    failed: set[str] = set(invalid)
    formulas: dict[str, fig.Formula] = {}
    for name, entry in entries.items():
        item = entry.item
        loc = entry.loc
        if (item.value is None) == (item.formula is None):
            problems.append(
                entry.file.problem(
                    loc,
                    "a figure has either `value` (with its "
                    "`source`) or `formula`, not "
                    + ("both" if item.value is not None else "neither"),
                    key=True,
                )
            )
            failed.add(name)
        elif item.formula is not None:
            if item.display is not None:
                problems.append(
                    entry.file.problem(
                        (*loc, "display"),
                        "`display` is for sourced "
                        "values; format a formula where prose uses it, "
                        "such as {name:.2%}",
                    )
                )
            try:
                formulas[name] = fig.parse_formula(item.formula)
            except fig.FigureError as exc:
                problems.append(entry.file.problem((*loc, "formula"), str(exc)))
                failed.add(name)
        else:
            assert item.value is not None
            values[name] = fig.to_decimal(item.value)

    def visit(name: str, stack: tuple[str, ...]) -> Decimal | None:
        if name in values:
            return values[name]
        if name in known:
            return known[name]
        if name in failed or name not in formulas:
            return None
        entry = entries[name]
        if name in stack:
            cycle = " → ".join((*stack[stack.index(name) :], name))
            problems.append(
                entry.file.problem(
                    (*entry.loc, "formula"), f"formula refers to itself through {cycle}"
                )
            )
            failed.add(name)
            return None
        inputs: dict[str, Decimal] = {}
        for ref in formulas[name].names:
            if ref not in entries and ref not in known and ref not in failed:
                # Shared figures are computed once for every claim: no claim's own figures.
                note = (
                    " (a shared formula uses only figures under figures/)" if entry.shared else ""
                )
                message = _unknown("figure", ref, [*entries, *known], note)
                problems.append(entry.file.problem((*entry.loc, "formula"), message))
                failed.add(name)
                return None
            value = visit(ref, (*stack, name))
            if value is None:
                failed.add(name)
                return None
            inputs[ref] = value
        if name in failed:
            return None
        try:
            values[name] = fig.evaluate(formulas[name], inputs)
        except fig.FigureError as exc:
            problems.append(entry.file.problem((*entry.loc, "formula"), str(exc)))
            failed.add(name)
            return None
        return values[name]

    for name in formulas:
        visit(name, ())
    return values, problems


def _show(token: FigureRef, item: Figure, value: Decimal) -> str:
    """The text of a figure reference in prose."""
    if token.spec is None:
        if item.display is not None:
            return item.display
        if value != value.to_integral_value():
            raise fig.FigureError(
                f"the value is {fig.plain(value)}; give a format, such as "
                f"{{{token.name}:.2%}} or {{{token.name}:.1f}}"
            )
        return fig.plain(value)
    return fig.format_value(value, token.spec)


def default_shown(item: Figure, value: Decimal) -> str:
    """A figure's value as a reviewer reads it: its display, or grouped digits."""
    if item.display is not None:
        return item.display
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return fig.plain(value)


def _shown_figures(
    claim: Claim,
    figures: Mapping[str, Entry[Figure]],
    values: Mapping[str, Decimal],
    used: set[str],
) -> tuple[ShownFigure, ...]:
    names = list(claim.figures)
    names += sorted(n for n in used if n not in claim.figures)
    # A shared figure feeding a formula is part of the derivation too.
    queue = list(names)
    while queue:
        entry = figures[queue.pop()]
        if entry.item.formula:
            for ref in fig.parse_formula(entry.item.formula).names:
                if ref not in names:
                    names.append(ref)
                    queue.append(ref)
    shown = []
    for name in names:
        entry = figures[name]
        item, value = entry.item, values[name]
        derivation = None
        if item.formula:
            formula = fig.parse_formula(item.formula)
            derivation = fig.derivation(
                formula, {n: default_shown(figures[n].item, values[n]) for n in formula.names}
            )
        shown.append(
            ShownFigure(
                name,
                value,
                default_shown(item, value),
                item.source,
                item.formula,
                derivation,
                item.note,
                entry.shared,
                name in used,
            )
        )
    return tuple(shown)


def _render(
    parsed: prose.Parsed,
    figures: Mapping[str, Entry[Figure]],
    values: Mapping[str, Decimal],
    numbers: Mapping[str, int],
    occurrence: object,
    inline: bool,
) -> Block:
    html_values, text_values, md_values = [], [], []
    for token in parsed.tokens:
        if isinstance(token, Cite):
            h, t, m = prose.cite_values(numbers.__getitem__, token, occurrence)  # type: ignore[arg-type]
        else:
            t = _show(token, figures[token.name].item, values[token.name])
            h, m = html.escape(t), prose.escape_markdown(t)
        html_values.append(h)
        text_values.append(t)
        md_values.append(m)
    return prose.render(
        parsed,
        html_values=html_values,
        text_values=text_values,
        markdown_values=md_values,
        inline=inline,
    )
