"""The Jinja environment and one entry per output format.

Templates come from the project's `templates/` first, then the default theme, file by
file. Claim text reaches templates only as escaped strings or as `Block.html`, which
`prose.py` has sanitized: that is the one place markup is trusted.
"""

from __future__ import annotations

import array
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, SupportsBytes, TypeVar
from urllib.parse import urlsplit

import jinja2
import lz4.block  # type: ignore[import-untyped]
from babel.dates import format_date
from jinja2 import meta, nodes
from markupsafe import Markup

from . import __version__, prose
from .listing import Citing, Pager, SourceEntry, Topic, last_change, slugify
from .load import THEME_DIR
from .model import Site
from .problems import OUTSIDE, Problem
from .resolve import OpenQuestion, Page
from .yamltree import decode

T = TypeVar("T")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


FragmentKey = bytes
"""A digest of a fragment's template, of what it uses of the theme and of its values'
identity (`Renderer.fragment`): short, so the table of fragments is quick to read and look
up."""
Fragment = tuple[str, tuple[FragmentKey, ...]]
"""A fragment rendered (`Renderer.fragment`), and the fragments it was joined from."""

_KEY_SIZE = 16
_COUNT = struct.Struct("<Q")
_END, _JOINED = "Q", "I"
"""The array types of where each record ends and of how many fragments each was joined from."""


class Listed(NamedTuple):
    """A page of a listing (`Renderer._listing`): how the fragments know it (None when its
    values cannot be told apart), and its text, or its bytes as the stored table has them
    (`FragmentTable.packed`) when reused whole."""

    key: FragmentKey | None
    text: str | None
    packed: bytes | None = None

    def __bytes__(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        data: bytes = lz4.block.decompress(self.packed)
        return data


class FragmentTable(Mapping[FragmentKey, Fragment]):
    """The listing fragments of an earlier build, as `encode` stored them in one blob, each
    read from it only when looked up, over the fragments in `newer` (all there are, for
    `serve`'s listings, which keep theirs in memory): at 10,000 claims a
    build looks up every one of 80,000 but reads a few hundred (reusing a listing's page
    whole only marks its entries used), where unpickling them all took half a second.

    The blob: their number; their keys (16 bytes each); where each one's record ends; how
    many fragments each was joined from; then the records, each the keys of those and its
    text LZ4-compressed."""

    def __init__(self, blob: bytes = b"", newer: Mapping[FragmentKey, Fragment] | None = None):
        self.blob = blob
        self.newer = newer if newer is not None else {}
        count = _COUNT.unpack_from(blob)[0] if blob else 0
        start, ends = _COUNT.size, _COUNT.size + count * _KEY_SIZE
        self.at = {blob[i : i + _KEY_SIZE]: n for n, i in enumerate(range(start, ends, _KEY_SIZE))}
        self.ends = array.array(_END)
        self.ends.frombytes(blob[ends : ends + count * self.ends.itemsize])
        joined = ends + count * self.ends.itemsize
        self.joined = array.array(_JOINED)
        self.joined.frombytes(blob[joined : joined + count * self.joined.itemsize])
        self.base = joined + count * self.joined.itemsize

    def stored(self, key: FragmentKey) -> bool:
        """Whether `key` is in the blob (not only in `newer`)."""
        return key in self.at

    def _record(self, n: int) -> bytes:
        return self.blob[self.base + (self.ends[n - 1] if n else 0) : self.base + self.ends[n]]

    def parts(self, key: FragmentKey) -> tuple[FragmentKey, ...]:
        """The fragments `key` was joined from, its text left unread."""
        if key in self.newer:
            return self.newer[key][1]
        n = self.at[key]
        if not self.joined[n]:
            return ()
        record = self._record(n)
        return tuple(
            record[i : i + _KEY_SIZE] for i in range(0, self.joined[n] * _KEY_SIZE, _KEY_SIZE)
        )

    def packed(self, key: FragmentKey) -> bytes | None:
        """The text of a fragment stored in the blob, unread: its UTF-8 bytes as
        `lz4.block.compress` gives them. None for one in `newer`, or not stored."""
        n = self.at.get(key)
        if n is None or key in self.newer:
            return None
        return self._record(n)[self.joined[n] * _KEY_SIZE :]

    def __getitem__(self, key: FragmentKey) -> Fragment:
        packed = self.packed(key)
        if packed is None:
            return self.newer[key]
        return lz4.block.decompress(packed).decode(), self.parts(key)

    def __contains__(self, key: object) -> bool:
        return key in self.newer or key in self.at

    def __iter__(self) -> Iterator[FragmentKey]:
        return iter(self.at.keys() | self.newer.keys())

    def __len__(self) -> int:
        return len(self.at.keys() | self.newer.keys())

    def __bool__(self) -> bool:  # (without the set `__len__` makes)
        return bool(self.at or self.newer)

    def encode(self, fragments: Mapping[FragmentKey, Fragment | None]) -> bytes:
        """A blob of `fragments` (None: as this table has it, its record copied unread)."""
        records, joined = [], array.array(_JOINED)
        for key, fragment in fragments.items():
            if len(key) != _KEY_SIZE:
                raise ValueError(f"a fragment key of {len(key)} bytes")
            if fragment is None and self.stored(key):
                n = self.at[key]
                records.append(self._record(n))
                joined.append(self.joined[n])
                continue
            text, parts = fragment if fragment is not None else self[key]
            records.append(b"".join(parts) + lz4.block.compress(text.encode()))
            joined.append(len(parts))
        ends = array.array(_END, itertools.accumulate(map(len, records)))
        head = _COUNT.pack(len(records)) + b"".join(fragments)
        return b"".join([head, ends.tobytes(), joined.tobytes(), *records])


def default_theme() -> Path:
    """The default theme: shipped inside the package, or the checkout's top-level templates/."""
    packaged = Path(__file__).parent / THEME_DIR
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / THEME_DIR


def theme_dirs(root: Path) -> list[Path]:
    """Template folders in lookup order: the project's overrides, then the default theme."""
    dirs = [root / THEME_DIR, default_theme()]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def theme_digest(root: Path) -> bytes:
    """A hash of every file of the theme in use (the project's overrides and the default),
    and of whether each lies where a theme file may (`theme_roots`)."""
    digest = hashlib.sha256()
    allowed = theme_roots(root)
    for i, theme in enumerate(theme_dirs(root)):  # where the folders are does not count
        for path in sorted(theme.rglob("*")):
            if path.is_file():
                digest.update(f"{i}\0{path.relative_to(theme)}\0".encode())
                data = path.read_bytes()
                digest.update(b"\1" if inside(path, allowed) else b"\0")
                digest.update(len(data).to_bytes(8, "big") + data)
    return digest.digest()


def _referenced(tree: nodes.Template) -> set[str] | None:
    """The templates a parsed template names (extends, include, import and `fragment()`);
    None when it names one by a variable."""
    found: set[str] = set()
    for name in meta.find_referenced_templates(tree):
        if name is None:
            return None
        found.add(name)
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "fragment":
            named = [k.value for k in call.kwargs if k.key == "template"]
            first = call.args[0] if call.args else named[0] if named else None
            if not (isinstance(first, nodes.Const) and isinstance(first.value, str)):
                return None
            found.add(first.value)
    return found


@functools.lru_cache(maxsize=8192)
def _format_date(value: dt.date, pattern: str, locale: str) -> str:
    return format_date(value, format=pattern, locale=locale)


class ThemeLoader(jinja2.FileSystemLoader):
    """Templates from the theme folders, refusing any that a symlink takes outside the
    project or the default theme (a theme must not publish files from elsewhere)."""

    def __init__(self, root: Path) -> None:
        dirs = theme_dirs(root)
        super().__init__([str(d) for d in dirs])
        self.allowed = theme_roots(root)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        """The template's source, once its real path is known to be inside the theme."""
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except UnicodeDecodeError:
            path = next(p for d in self.searchpath if (p := Path(d, template)).is_file())
            line, _, message = decode(path.read_bytes())[1] or (0, 0, "not UTF-8")
            raise jinja2.TemplateSyntaxError(message, line, template, str(path)) from None
        if not inside(Path(filename), self.allowed):
            raise jinja2.TemplateError(f"{os.path.relpath(filename)}: {OUTSIDE}")
        return source, filename, uptodate


def theme_roots(root: Path) -> tuple[Path, ...]:
    """Where the real path of a theme file may lie: in the project or the default theme."""
    return root.resolve(), default_theme().resolve()


def inside(path: Path, folders: tuple[Path, ...]) -> bool:
    """Whether `path`, symlinks resolved, lies in one of `folders` (already resolved)."""
    real = path.resolve()
    return any(real.is_relative_to(folder) for folder in folders)


TEMPLATE_SUFFIXES = (".html", ".xml", ".txt", ".md", ".json")
"""The files of a theme, outside `static/`, that are templates."""
RENDERED = (
    "claim.html",
    "claim.txt",
    "claim.md",
    "index.html",
    "open_questions.html",
    "topics.html",
    "topic.html",
    "sources.html",
    "about.html",
    "search.html",
    "404.html",
    "feed.xml",
    "sitemap.xml",
    "robots.txt",
    "review/index.html",
    "review/sheet.html",
)
"""The templates claimpress renders by name; a theme's other templates are used only
through these (extended, included, imported or rendered with `fragment()`)."""


def _reached(
    env: jinja2.Environment, names: Iterable[str], *, strict: bool = False
) -> dict[str, str] | None:
    """The templates `names` and those they use, directly or through others, each with its
    source, in a stable order; None when one names another by a variable (any template
    could be used). A template that does not compile raises when `strict`; else it is
    listed (with its source, or "" when it cannot be read), but not what it names."""
    assert env.loader is not None
    found: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in found:
            continue
        found[name] = ""
        try:
            source, filename, _ = env.loader.get_source(env, name)
            found[name] = source
            used = _referenced(env.parse(source, name, filename))  # errors name the file
        except jinja2.TemplateError:
            if strict:
                raise
            continue
        if used is None:
            return None
        todo += sorted(used)
    return found


def theme_problems(root: Path, site: Site) -> list[Problem]:
    """What `build` stops at in the project's own theme, for `check`: a template it uses
    that does not compile, a file that a symlink takes outside the project."""
    folder = root / THEME_DIR
    if not folder.is_dir():
        return []
    env = Renderer(root, site).env
    used = _reached(env, RENDERED)  # (not a theme's README.md holding `{{`)
    allowed = theme_roots(root)
    problems = []
    for path in sorted(folder.rglob("*")):  # a symlinked folder is listed, not entered
        rel, name = os.path.relpath(path), path.relative_to(folder).as_posix()
        template = path.suffix in TEMPLATE_SUFFIXES and not name.startswith("static/")
        if not inside(path, allowed):
            problems.append(Problem(rel, 0, 0, "", OUTSIDE))
        elif template and path.is_file() and (used is None or name in used):
            try:
                env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                line = exc.lineno or 0
                problems.append(
                    Problem(rel, line, 1 if line else 0, "", f"template error: {exc.message}")
                )
    return problems


def template_error(exc: jinja2.TemplateError) -> str:
    """`templates/x.html:3: template error: ...`: where a theme template failed, for users
    who override the default theme."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
        where = f"{os.path.relpath(exc.filename or exc.name or '?')}:{exc.lineno}: "
        return f"{where}template error: {exc.message}"
    where = ""
    tb = exc.__traceback__
    while tb is not None:  # Jinja maps its frames to template files and lines
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".html", ".xml", ".txt", ".md")):
            where = f"{os.path.relpath(name)}:{tb.tb_lineno}: "
        tb = tb.tb_next
    return f"{where}template error: {exc}"


class Renderer:
    """Renders pages of one project with one compiled environment."""

    def __init__(self, root: Path, site: Site, *, live: bool = False) -> None:
        self.root = root
        self.site = site
        self.live = live
        self.env = jinja2.Environment(
            loader=ThemeLoader(root),
            autoescape=jinja2.select_autoescape(["html", "xml"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["date"] = self.format_date
        self.env.filters["md"] = prose.escape_markdown
        # A checked URL holds no space or `<>`; only parentheses could end a Markdown link.
        self.env.filters["mdurl"] = lambda url: url.replace("(", "%28").replace(")", "%29")
        self.env.filters["isodate"] = lambda d: d.isoformat() if d else ""
        self.env.globals.update(site=site, disclaimer=self.disclaimer, version=__version__)
        # `livereload` is always false: `serve` adds its script as it serves a page. Kept for
        # the base.html of themes made from an earlier default theme, which tests it.
        self.env.globals.update(livereload=False, slugify=slugify, last_change=last_change)
        self.env.globals["fragment"] = self.fragment
        self.known_json: dict[int, tuple[Page, SupportsBytes]] = {}
        """claim_json() results already rendered (by forked workers), by page."""
        self.page_keys: dict[int, tuple[Page, str]] = {}
        """By page: a key that changes whenever anything of the page changes (its cache key)."""
        self.topic_keys: dict[int, tuple[Topic, Any]] = {}
        """By topic: its identity, once worked out (each of its listing's pages needs it)."""
        self.fragments = FragmentTable()
        """Fragments rendered by an earlier build, by template and identity of their values."""
        self.fragments_used: dict[FragmentKey, Fragment | None] = {}
        """The fragments this renderer's pages used: what the next build can reuse. None for
        one kept as `fragments` has it, unread (an entry of a listing page reused whole)."""
        self._joined: list[FragmentKey] | None = None
        """The fragments used so far by the fragment being rendered."""
        self.pause: Callable[[], object] | None = None
        """Called before each template and fragment: may wait for more urgent work."""
        self.digests: dict[tuple[str, ...], str] = {}
        """`templates_digest` results, by the templates named."""

    def templates_digest(self, *names: str) -> str:
        """A hash of the templates `names` and of every template they extend, include,
        import or render with `fragment()`, as this theme has them: all an output made from
        them depends on besides its values. Of the whole theme when one names another by a
        variable (what it uses cannot be told without rendering it)."""
        key = tuple(sorted(names))
        if key not in self.digests:
            self.digests[key] = self._closure_digest(key)
        return self.digests[key]

    def _closure_digest(self, names: tuple[str, ...]) -> str:
        found = _reached(self.env, names, strict=True)
        if found is None:
            return "theme " + theme_digest(self.root).hex()
        digest = hashlib.sha256()
        for name, source in found.items():
            for part in (name, source):
                data = part.encode()
                digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def paced(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, calling `pause` before every 256th: for a listing's loops outside its
        templates (grouping the sources of every claim takes a second at 10,000 claims)."""
        for i, item in enumerate(items):
            if self.pause is not None and not i % 256:
                self.pause()
            yield item

    def release(self) -> None:
        """Drop the tables of pages and fragments now: the renderer is part of a cycle (its
        environment calls its methods), which only a collection would free, over every
        object in them."""
        self.fragments, self.fragments_used = FragmentTable(), {}
        self.known_json, self.page_keys = {}, {}
        self.topic_keys = {}

    def format_date(self, value: dt.date) -> str:
        """A date in the site's language and format: `January 16, 2026`."""
        return _format_date(value, self.site.date_format, self.site.language.replace("-", "_"))

    @cached_property
    def disclaimer(self) -> prose.Block:
        """The site's disclaimer line, rendered (Markdown, no figures or citations)."""
        parsed = prose.Parsed(self.site.disclaimer.replace("\ue000", "").replace("\ue001", ""), ())
        return prose.render(parsed, html_values=(), text_values=(), markdown_values=(), inline=True)

    def render(self, template: str, **context: Any) -> str:
        """Render one template with the given context."""
        if self.pause is not None:
            self.pause()
        return self.env.get_template(template).render(**context)

    def fragment(self, template: str, **values: Any) -> Markup:
        """`template` rendered with `values` alone, for a listing template: one claim's entry
        in a list of every claim. Reused from `fragments` when its values are the same (pages
        by their key), so a listing renders again only the entries of claims that changed.
        A page of a listing is kept so too (`_listing`)."""
        if self.pause is not None:
            self.pause()
        key = self._fragment_key(template, values)
        if key is None:  # a value whose sameness cannot be told: rendered every time
            return Markup(self.render(template, **values))
        return Markup(self._fragment(key, template, values))

    def _fragment_key(self, template: str, values: dict[str, Any]) -> FragmentKey | None:
        """How `fragments` know `template` rendered with `values`; None when their sameness
        cannot be told."""
        try:
            identity = sorted((k, self._identity(v)) for k, v in values.items())
        except LookupError:
            return None
        return _digest(repr((template, self.templates_digest(template), identity)))

    def _fragment(self, key: FragmentKey, template: str, values: dict[str, Any]) -> str:
        """The text of the fragment `key`: reused, or rendered now and kept."""
        known = self.fragments_used.get(key)  # (None too when kept unread)
        if known is None:
            known = self.fragments.get(key)
            if known is None:
                outer, self._joined = self._joined, []
                try:
                    text = self.render(template, **values)
                finally:
                    joined, self._joined = self._joined, outer
                known = text, tuple(joined)
            else:
                self._keep(known[1])
            self.fragments_used[key] = known
        if self._joined is not None:
            self._joined.append(key)
        return known[0]

    def _keep(self, parts: tuple[FragmentKey, ...]) -> None:
        """Keep in use the fragments that one reused whole was joined from (the entries of a
        listing page), for the next build that has to render it again."""
        used, table = self.fragments_used, self.fragments
        for part in parts:
            if part not in used and part in table:
                used[part] = None
                if joined := table.parts(part):  # (an entry is joined from none)
                    self._keep(joined)

    def used_fragments(self) -> dict[FragmentKey, Fragment]:
        """`fragments_used`, each one read."""
        return {k: self.fragments[k] if v is None else v for k, v in self.fragments_used.items()}

    def _identity(self, value: Any) -> Any:
        """What makes `value` the same across builds, as `fragment` keys it (a value `repr`
        tells apart); LookupError when it cannot be told."""
        # The kinds most looked at first: lists of entries, the sources index's entries.
        if isinstance(value, (list, tuple)):
            return tuple([self._identity(v) for v in value])
        if isinstance(value, SourceEntry):
            # Its source is the one its first citing page has under its key. (57,000 entries
            # citing 76,000 times at 10,000 claims: no call per citing but a lookup.)
            keys = self.page_keys
            try:
                citing = [(keys[id(c.page)][1], c.number) for c in value.cited_by]
            except KeyError:
                raise LookupError(value.key) from None
            return value.key, value.anchor, citing
        if value is None or isinstance(value, (str, int, Pager)):
            return type(value).__name__, value
        if isinstance(value, Page):
            return self._page_identity(value)
        if isinstance(value, Citing):
            return self._page_identity(value.page), value.number
        if isinstance(value, Topic):
            known = self.topic_keys.get(id(value))
            if known is None or known[0] is not value:
                identity = value.name, value.slug, self._identity(value.pages)
                known = value, _digest(repr(identity))  # once, for each page of its listing
                self.topic_keys[id(value)] = known
            return known[1]
        if isinstance(value, OpenQuestion):
            return value.question, self._identity(value.asked_by)
        raise LookupError(type(value).__name__)

    def _page_identity(self, page: Page) -> str:
        # `page_keys` holds the pages it knows, so no other page can have one's id.
        known = self.page_keys.get(id(page))
        if known is None:
            raise LookupError(page.slug)
        return known[1]

    def claim_html(self, page: Page, *, root: str = "../../", draft: bool = False) -> str:
        """The claim's page on the site."""
        return self.render(
            "claim.html",
            page=page,
            root=root,
            draft=draft,
            path=f"claims/{page.slug}/",
            data=claim_data(page, self.site),
            jsonld=Markup(dumps(claim_jsonld(page, self.site)).rstrip("\n")),
        )

    def claim_text(self, page: Page) -> str:
        """The claim in the house plain-text format, followed by its sources."""
        return self.render("claim.txt", page=page)

    def claim_markdown(self, page: Page) -> str:
        """The claim as a Markdown document."""
        return self.render("claim.md", page=page)

    def claim_json(self, page: Page) -> str:
        """The resolved claim as JSON: numbered citations, computed figures."""
        return dumps(claim_data(page, self.site))

    def _claim_json_bytes(self, page: Page) -> bytes:
        """`claim_json` encoded, as rendered already (by forked workers) when it was."""
        known = self.known_json.get(id(page))
        return bytes(known[1]) if known and known[0] is page else self.claim_json(page).encode()

    def _listing(self, template: str, pager: Pager, *, drafts: bool, **context: Any) -> Listed:
        """One page of a listing cut into pages (`listing.paged`); kept whole, as a fragment
        is, so an edit renders again only the pages that show its claim. A page the stored
        table has is handed on as it is stored, unread."""
        if self.pause is not None:
            self.pause()
        values = dict(pager=pager, root=pager.root, path=pager.here, draft=drafts, **context)
        key = self._fragment_key(template, values)
        if key is None:
            return Listed(None, self.render(template, **values))
        if key not in self.fragments_used and (packed := self.fragments.packed(key)) is not None:
            self._keep((key,))  # kept with its entries, unread
            return Listed(key, None, packed)
        return Listed(key, self._fragment(key, template, values))

    def index_html(self, pages: Sequence[Page], pager: Pager, *, drafts: bool = False) -> Listed:
        """A page of the site's front page: the claims on the site, newest check first."""
        return self._listing("index.html", pager, drafts=drafts, pages=pages)

    def open_questions_html(
        self, questions: Sequence[OpenQuestion], pager: Pager, *, drafts: bool = False
    ) -> Listed:
        """A page of the open questions: follow-ups no claim answers yet, with who asks them."""
        return self._listing("open_questions.html", pager, drafts=drafts, questions=questions)

    def topics_html(self, topics: list[Topic], *, drafts: bool = False) -> str:
        """The topics index: every topic with its number of checks."""
        return self.render("topics.html", topics=topics, root="../", path="topics/", draft=drafts)

    def topic_html(
        self, topic: Topic, pages: Sequence[Page], pager: Pager, *, drafts: bool = False
    ) -> Listed:
        """A page of one topic's checks, newest first (`pages`, of `topic.pages`)."""
        return self._listing("topic.html", pager, drafts=drafts, topic=topic, pages=pages)

    def sources_html(
        self, entries: Sequence[SourceEntry], pager: Pager, *, drafts: bool = False
    ) -> Listed:
        """A page of the sources index: sources and the checks citing them, by title."""
        return self._listing("sources.html", pager, drafts=drafts, entries=entries)

    def about_html(self, about: Markup | None, *, drafts: bool = False) -> str:
        """The about page: the project's about.md, then the rating scale."""
        return self.render("about.html", about=about, root="../", path="about/", draft=drafts)

    def search_html(self, *, drafts: bool = False) -> str:
        """The search page; results come from the Pagefind index, in the browser."""
        return self.render("search.html", root="../", path="search/", draft=drafts)

    def not_found_html(self) -> str:
        """The 404 page; served at any depth, so its links start at the site's own path (at
        `/` under `serve`, which serves the site at the root)."""
        root = "/" if self.live else site_root(self.site)
        return self.render("404.html", root=root, path="404.html", draft=False)

    def feed_xml(self, pages: list[Page]) -> str:
        """The Atom feed of published checks, corrections and updates in their entries: the
        `page_size` last changed."""
        published = [p for p in pages if p.facts.status == "published"]
        published.sort(key=lambda p: (last_change(p), p.slug), reverse=True)
        updated = last_change(published[0]) if published else dt.date(1970, 1, 1)
        latest = published[: self.site.page_size]
        return self.render("feed.xml", pages=latest, updated=updated) + "\n"

    def sitemap_xml(self, pages: list[Page], topics: list[Topic]) -> str:
        """sitemap.xml: every published page, with its last change where it has one."""
        published = [p for p in pages if p.facts.status == "published"]
        return (
            self.render(
                "sitemap.xml",
                pages=published,
                topics=topics,
                newest=lambda chosen: max(last_change(p) for p in chosen),
            )
            + "\n"
        )

    def robots_txt(self) -> str:
        """robots.txt: everything may be crawled; points at the sitemap."""
        return self.render("robots.txt") + "\n"

    def claims_json(self, pages: list[Page]) -> list[bytes]:
        """claims.json, in parts (joined, 150 MB at 10,000 claims): every published claim
        resolved, for partners."""
        published = [p for p in pages if p.facts.status == "published"]
        text = dumps(
            {
                "site": {
                    "title": self.site.title,
                    "url": self.site.base_url,
                    "organization": self.site.organization,
                    "language": self.site.language,
                    "rating_scale": [r.name for r in self.site.rating_scale],
                },
                "claims": [],
            }
        ).encode()
        if not published:
            return [text]
        # Each claim as claim_json() wrote it (often already rendered), indented into the list:
        # byte for byte what dumps() of the whole document gives, at a fraction of the cost.
        # In bytes, neither decoded nor encoded again, and never joined: the writer hashes
        # and writes the parts (joining them held a second copy at the build's peak).
        head, _, tail = text.rpartition(b'"claims": []')
        parts = [head, b'"claims": [\n']
        for p in self.paced(published):
            parts += (b"    ", self._claim_json_bytes(p).rstrip(b"\n").replace(b"\n", b"\n    "))
            parts.append(b",\n")
        parts[-1] = b"\n  ]"
        parts.append(tail)
        return parts


def site_root(site: Site) -> str:
    """The path of the site on its server, from `base_url`: `/` or `/sub/path/`."""
    path = urlsplit(site.base_url).path.strip("/")
    return f"/{path}/" if path else "/"


def claim_url(page: Page, site: Site) -> str:
    """The absolute URL of a claim's page."""
    return site.base_url.rstrip("/") + f"/claims/{page.slug}/"


def claim_jsonld(page: Page, site: Site) -> dict[str, Any]:
    """schema.org markup for a claim's page: a ClaimReview when the claim has a verdict,
    otherwise an Article with its citations."""
    claim = page.claim
    url = claim_url(page, site)
    organization = {"@type": "Organization", "name": site.organization, "url": site.base_url}
    common: dict[str, Any] = {
        "url": url,
        "datePublished": claim.checked_on,
        "dateModified": last_change(page),
        "inLanguage": site.language,
        "author": organization,
        "publisher": organization,
    }
    if page.rating is not None:
        scale = [r.name for r in site.rating_scale]
        item: dict[str, Any] = {"@type": "Claim"}
        if claim.claimant:
            item["author"] = {"@type": claim.claimant_type.title(), "name": claim.claimant}
        if claim.appeared is not None:
            if claim.appeared.date:
                item["datePublished"] = claim.appeared.date
            appearance = {"@type": "CreativeWork"}
            if claim.appeared.url:
                appearance["url"] = claim.appeared.url
            if claim.appeared.where:
                appearance["name"] = claim.appeared.where
            if len(appearance) > 1:
                item["appearance"] = appearance
                item["firstAppearance"] = appearance
        return {
            "@context": "https://schema.org",
            "@type": "ClaimReview",
            **common,
            "claimReviewed": claim.question,
            "itemReviewed": item,
            "reviewRating": {
                "@type": "Rating",
                "ratingValue": len(scale) - scale.index(page.rating.name),
                "bestRating": len(scale),
                "worstRating": 1,
                "alternateName": page.rating.name,
            },
        }
    return {
        "@context": "https://schema.org",
        "@type": "Article",
        **common,
        "headline": claim.question[:110],
        "name": claim.question,
        "description": page.summary.text,
        "keywords": claim.topics,
        "citation": [
            {
                "@type": "CreativeWork",
                "name": s.source.title,
                **({"url": s.source.url} if s.source.url else {}),
                **({"publisher": s.source.publisher} if s.source.publisher else {}),
                **({"datePublished": s.source.published} if s.source.published else {}),
            }
            for s in page.sources
        ],
    }


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def claim_data(page: Page, site: Site) -> dict[str, Any]:
    """The resolved claim as plain data: what `index.json`, `claims.json` and exports carry."""
    claim = page.claim
    return {
        "slug": page.slug,
        "url": claim_url(page, site),
        "question": claim.question,
        "checked_on": claim.checked_on,
        "updated_on": page.updated_on,
        "status": claim.status,
        "topics": claim.topics,
        "verdict": claim.verdict,
        "claimant": claim.claimant,
        "appeared": claim.appeared.model_dump() if claim.appeared else None,
        "author": claim.author,
        "editor": claim.editor,
        "summary": {"text": page.summary.text, "html": page.summary.html},
        "sections": [
            {
                "number": s.number,
                "heading": s.heading.text,
                "text": s.body.text,
                "html": s.body.html,
            }
            for s in page.sections
        ],
        "limitations": [b.text for b in page.limitations],
        "corrections": [
            {"date": c.correction.date, "kind": c.correction.kind, "note": c.note.text}
            for c in page.corrections
        ],
        "follow_up": [{"question": f.question, "slug": f.slug} for f in page.follow_ups],
        "sources": [
            {"number": s.number, "key": s.key, **s.source.model_dump()} for s in page.sources
        ],
        "figures": {
            f.name: {
                "value": _number(f.value),
                "shown": f.shown,
                "source": f.source,
                "formula": f.formula,
                "derivation": f.derivation,
            }
            for f in page.figures
        },
    }


def _default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _number(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(data: Any) -> str:
    """Deterministic, readable JSON, safe to embed in HTML (`<`, `>` and `&` escaped)."""
    text = json.dumps(data, default=_default, ensure_ascii=False, indent=2, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
