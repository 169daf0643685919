"""Site-wide listings derived from the pages on the site: topics and the sources index.

Pure functions over resolved pages (`resolve.Page`); no I/O, no rendering.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .model import WINDOWS_DEVICES, Source
from .resolve import Page

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
T = TypeVar("T")


def slugify(text: str) -> str:
    """A URL segment for a name: `CyberTipline` -> `cybertipline`, `Día de Muertos` ->
    `dia-de-muertos`; a name with no Latin letters or digits gets a short stable hash."""
    ascii_text = (
        text  # as most names are: NFKD leaves ASCII as it is
        if text.isascii()
        else unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    )
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:60].strip("-")
    if slug in WINDOWS_DEVICES:  # `topics/con/` cannot exist on a Windows checkout
        slug += "-topic"
    return slug or "t-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class Topic:
    """A topic and the pages listed under it, newest check first."""

    name: str
    slug: str
    pages: tuple[Page, ...]


def topics(pages: Iterable[Page]) -> list[Topic]:
    """Every topic of `pages`, sorted by name; topics that differ only in case or accents
    share one page, named as most of their claims spell it."""
    grouped: dict[str, list[tuple[str, Page]]] = {}
    slugs: dict[str, str] = {}  # a few names, each on many pages
    for page in pages:
        for name in dict.fromkeys(page.facts.topics):
            slug = slugs.get(name) or slugs.setdefault(name, slugify(name))
            grouped.setdefault(slug, []).append((name, page))
    found = []
    for slug, entries in grouped.items():
        names = [name for name, _ in entries]
        name = min(set(names), key=lambda n: (-names.count(n), n))
        by_slug = {page.slug: page for _, page in entries}
        found.append(Topic(name, slug, tuple(by_slug.values())))
    return sorted(found, key=lambda t: (t.name.casefold(), t.slug))


@dataclass(frozen=True)
class Citing:
    """A page citing a source, with the source's number on that page."""

    page: Page
    number: int


@dataclass(frozen=True)
class SourceEntry:
    """One source of the sources index and every page citing it."""

    key: str
    anchor: str
    """The entry's id on the sources page, unique even when two claims use one key."""
    cited_by: tuple[Citing, ...]

    @property
    def source(self) -> Source:
        """The source, as its first citing page has it (as every citing page has it)."""
        first = self.cited_by[0]
        return next(c.source for c in first.page.sources if c.number == first.number)


def source_index(pages: Iterable[Page]) -> list[SourceEntry]:
    """Every source cited by `pages`, sorted by title: shared sources once, a claim's own
    source once per distinct content."""
    grouped: dict[tuple[str, str], tuple[str, list[Citing]]] = {}
    for page in pages:
        for key, digest, title, number in page.facts.cites:
            found = grouped.get((key, digest))
            if found is None:
                found = grouped[key, digest] = (title, [])
            found[1].append(Citing(page, number))
    ordered = sorted(grouped.items(), key=lambda kv: (kv[1][0].casefold(), kv[0][0]))
    used: set[str] = set()
    entries = []
    for (key, _), (_, citing) in ordered:
        anchor = base = "source-" + slugify(key)
        n = 1
        while anchor in used:
            n += 1
            anchor = f"{base}-{n}"
        used.add(anchor)
        entries.append(SourceEntry(key, anchor, tuple(citing)))
    return entries


@dataclass(frozen=True)
class Pager:
    """Where one page of a listing sits among the listing's pages: the first at the
    listing's own path (`topics/x/`), the others at `page/<number>/` under it."""

    base: str
    """The listing's path from the site's root: `` for the front page, `topics/x/`."""
    number: int
    count: int
    first: int
    """The place in the whole listing of this page's first entry, from 1."""

    def path(self, number: int) -> str:
        """The path of the listing's page `number`, from the site's root."""
        return self.base if number == 1 else f"{self.base}page/{number}/"

    @property
    def here(self) -> str:
        """This page's path from the site's root."""
        return self.path(self.number)

    @property
    def root(self) -> str:
        """The way back to the site's root from this page (`../../` from `topics/x/`)."""
        return "../" * self.here.count("/")


def paged(base: str, items: Sequence[T], size: int) -> Iterator[tuple[Pager, Sequence[T]]]:
    """A listing cut into pages of `size` items, each with its `Pager`; an empty listing
    still has its first page."""
    count = max(1, -(-len(items) // size))
    for number in range(1, count + 1):
        start = (number - 1) * size
        yield Pager(base, number, count, start + 1), items[start : start + size]


def last_change(page: Page) -> dt.date:
    """When a page last changed for readers: its latest correction or update, else its check."""
    return page.facts.changed_on
