"""Gather a project: read and validate every input file, then resolve every claim.

Nothing is written here: `check` is exactly `gather`, and `build` is `gather` then write.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import io
import os
import pickle
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, tokenize_pattern

from . import clock, lint
from .approvals import (
    APPROVAL_MAX_BYTES,
    APPROVALS_DIR,
    Approval,
    Read,
    approved_page,
    content_hash,
    read_approval,
    used_entries,
)
from .cache import Pack
from .load import (
    CLAIMS_DIR,
    FIGURES_DIR,
    SITE_FILE,
    SOURCES_DIR,
    ClaimFile,
    Located,
    RegistryFile,
    Unvalidated,
    load_claim,
    load_registry,
    load_site,
    read,
    slug_of,
)
from .model import Site
from .parallel import fork_map, gc_paused
from .problems import CHANGED, OUTSIDE, Problem, ProblemsFound, errors, ordered
from .resolve import (
    Facts,
    FollowUp,
    Page,
    Registry,
    build_registry,
    lazy,
    link_follow_ups,
    resolve_claim,
    unresolved,
)
from .yamltree import Node, ParsedLater


class Summary(NamedTuple):
    """What `check` needs of one claim file, kept apart from its (much larger) page."""

    path: Path
    rel: str
    """The file relative to the project's root (`claims/x.yaml`)."""
    key: str
    """The claim's cache key: its path and bytes, and what gathering it found of the shared
    registry (`Registry.fingerprint`), in the project's context."""
    slug: str | None
    """The file's slug when it validated (it then has a `ClaimFile`), else None."""
    resolved: bool
    """Whether it resolved into a `Page`."""
    status: str
    content_hash: str
    """The page's approval hash (`approvals.content_hash`), when it resolved and an
    approval of its slug was there to compare it with; else empty."""
    problems: tuple[Problem, ...]
    """What loading and resolving it found."""
    checked_on: dt.date | None
    """The claim's `checked_on`, when it validated."""
    latest: dt.date | None
    """Its latest date the review rules compare with today (`lint.latest_date`)."""
    listed: bytes
    """What the site's listings read of its page (`Page.facts`), pickled (read by `facts`;
    `check` does not), when it resolved; else empty."""

    @property
    def facts(self) -> Facts | None:
        """What the site's listings read of its page (`Page.facts`), when it resolved."""
        return pickle.loads(self.listed) if self.listed else None


class _Claims:
    """The validated claim files and their pages, loaded from the cache when first used:
    `check` needs only the summaries."""

    def __init__(self, summaries: list[Summary], pack: Pack, registry: Registry, site: Site):
        self.summaries, self.pack, self.registry, self.site = summaries, pack, registry, site
        self.locate = True
        """False: `load` keeps no claim files and pages keep no YAML tree or file bytes."""

    def entry(
        self, summary: Summary, *, render: bool = True
    ) -> tuple[ClaimFile | None, Page | None]:
        """One claim's file and page: from the cache, or loaded again if its entry is gone
        (with its prose left unrendered unless `render`); without their YAML tree and file
        bytes unless `locate`."""
        blob = self.pack.get(summary.key, once=True)
        if blob is not None:
            return _unpacked(blob, locate=self.locate)
        data, _ = read(summary.path, summary.rel)
        if data is None:
            return None, None
        claim, page, _ = load_and_resolve(
            summary.path, summary.rel, data, self.registry, self.site, render=render
        )
        if claim is not None and not self.locate:
            claim = unlocated(claim)
            page = replace(page, file=claim) if page is not None else None
        return claim, page

    def load(self) -> tuple[tuple[ClaimFile, ...], tuple[Page, ...]]:
        """Every validated file and every page, in file order; without `locate`, the pages
        load when a field other than their slug and facts is first read (`LazyPage`)."""
        claims: list[ClaimFile] = []
        pages: list[Page] = []
        with gc_paused():
            for summary in self.summaries:
                if summary.slug is None:
                    continue
                facts = summary.facts
                if not self.locate and facts is not None:
                    asks = tuple(FollowUp(q) for q in facts.asks)
                    load = functools.partial(self._page, summary)
                    pages.append(lazy(facts, load, slug=summary.slug, follow_ups=asks))
                    continue
                claim, page = self.entry(summary)
                if claim is not None and self.locate:
                    claims.append(claim)
                if page is not None:
                    if facts is not None:  # the same, as its summary has them
                        page.__dict__["facts"] = facts
                    pages.append(page)
            # Long-lived from here on: never traversed by the collector again, so neither
            # collections here nor those in forked workers touch (and copy) their memory.
            gc.freeze()
        return tuple(claims), tuple(pages)

    def _page(self, summary: Summary) -> Page:
        """The page of a claim that resolved (`entry`)."""
        page = self.entry(summary)[1]
        if page is None:  # its cache entry lost, and the file changed since it was read
            raise ProblemsFound([Problem(summary.rel, 0, 0, "", CHANGED)])
        return page


@dataclass(frozen=True)
class Project:
    """Everything read from a project folder, validated and resolved."""

    root: Path
    site: Site
    site_file: Located
    registry: Registry
    summaries: tuple[Summary, ...]
    """One per claim file that could be read, in file order."""
    problems: tuple[Problem, ...]
    """Everything found wrong, errors and warnings, sorted by file and line; shown: their
    files named from the working folder (`Problem.shown`)."""
    _claims: _Claims = field(repr=False, compare=False)
    approvals: Mapping[str, Approval] = field(default_factory=dict)
    """The latest approval of each claim, by slug (`approvals/<slug>.json`)."""
    _approved: Mapping[str, Page | bool] = field(default_factory=dict, repr=False)
    today: dt.date = field(default_factory=clock.today)
    """The date the project was checked as of."""
    registry_digest: str = ""
    """A hash of the paths and bytes of every source and figure file."""

    @functools.cached_property
    def _loaded(self) -> tuple[tuple[ClaimFile, ...], tuple[Page, ...]]:
        return self._claims.load()

    @property
    def claims(self) -> tuple[ClaimFile, ...]:
        """Every claim file that validated, in file order."""
        if not self._claims.locate:
            raise RuntimeError("the claim files were dropped (`without_locations`)")
        return self._loaded[0]

    @property
    def slugs(self) -> list[str]:
        """The slug of every claim file that validated, in file order."""
        return [s.slug for s in self.summaries if s.slug is not None]

    def claim(self, slug: str) -> tuple[ClaimFile, Page | None] | None:
        """The first claim file of `slug` that validated, and its page when it resolved,
        loaded alone (a command about one claim need not load them all); None when no
        file of that slug validated."""
        summary = next((s for s in self.summaries if s.slug == slug), None)
        if summary is None:
            return None
        file, page = self._claims.entry(summary)
        return None if file is None else (file, page)

    @property
    def pages(self) -> tuple[Page, ...]:
        """Every claim that resolved, whatever its status, sorted by slug."""
        return self._loaded[1]

    @functools.cached_property
    def approved(self) -> Mapping[str, Page | None]:
        """Under `require_approval`: by slug, the version of each published claim the site
        may show (the current one when its approval matches, else the approved snapshot),
        or None."""
        current = (
            {p.slug: p for p in self.pages}
            if any(v is True for v in self._approved.values())
            else {}
        )
        return {
            slug: current.get(slug) if v is True else (v or None)
            for slug, v in self._approved.items()
        }

    def problems_in(self, path: str, entry: str | None = None) -> tuple[Problem, ...]:
        """The problems of the file messages call `path` (`show`), in order; only those of
        its entry `entry` (a shared source or figure: the first part of their field) when
        given."""
        return self._problems_by_place.get((path, entry), ())

    @functools.cached_property
    def _problems_by_place(self) -> Mapping[tuple[str, str | None], tuple[Problem, ...]]:
        grouped: dict[tuple[str, str | None], list[Problem]] = {}
        for problem in self.problems:
            grouped.setdefault((problem.path, None), []).append(problem)
            grouped.setdefault((problem.path, problem.field.split(".")[0]), []).append(problem)
        return {place: tuple(found) for place, found in grouped.items()}

    @functools.cached_property
    def content_hashes(self) -> Mapping[str, str]:
        """By claim file (`ClaimFile.rel`): its page's approval hash (`content_hash`), for
        each claim that resolved and has an approval."""
        return {s.rel: s.content_hash for s in self.summaries if s.content_hash}

    def as_is(self, slug: str, *, drafts: bool = False) -> bool:
        """Whether the site shows the claim `slug` as its file is now: always, but under
        `require_approval` (drafts aside), where only a claim whose approval matches its file
        is; another is shown as approved (`approved`), or not at all."""
        return drafts or not self.site.require_approval or self._approved.get(slug) is True

    def show(self, rel: str) -> str:
        """A file of the project named relative to its root (`ClaimFile.rel`), as messages
        name it: from the working folder (`display_path`)."""
        return self._shown(rel)

    @functools.cached_property
    def _shown(self) -> Callable[[str], str]:
        return shown_paths(self.root)

    def without_locations(self) -> Project:
        """This project, its pages loaded without what only locating a problem in their
        file needs (its YAML tree and bytes: a third of a page's memory), and without
        `claims`; for a build, which holds every page at once and reports no new problems."""
        if "_loaded" not in self.__dict__:
            self._claims.locate = False
        return self

    def published(self, *, drafts: bool = False) -> list[Page]:
        """The pages that go on the site, follow-ups linked among them, newest check first;
        under `require_approval` (drafts aside) only approved content goes out."""
        chosen = [p for p in self.pages if drafts or p.facts.status == "published"]
        if self.site.require_approval and not drafts:
            chosen = [v for p in chosen if (v := self.approved.get(p.slug)) is not None]
        chosen.sort(key=lambda p: (p.facts.checked_on, p.slug), reverse=True)
        return link_follow_ups(chosen)

    def page(self, name: str) -> Page:
        """The page for a slug or claim file path (`slug_of`); KeyError when there is none."""
        slug = slug_of(name)
        for page in self.pages:
            if page.slug == slug:
                return link_follow_ups(self.pages)[self.pages.index(page)]
        raise KeyError(slug)


def unlocated(file: ClaimFile) -> ClaimFile:
    """A claim file without its YAML tree and bytes (a third of a page's memory): it can
    no longer locate a field."""
    return replace(file, root=Node(None, 0, 0), data=b"")


def _packed_entry(claim: ClaimFile, page: Page | None) -> bytes:
    """A claim's validated file and page as the claims pack keeps them: both pickled without
    the file's YAML tree and bytes, then the bytes, so that a build loads its pages without
    reading what it would drop (`_unpacked`). The tree is parsed again from the bytes when
    read (`ParsedLater`)."""
    light = unlocated(claim)
    head = (light, replace(page, file=light) if page is not None else None)
    return pickle.dumps(head, protocol=5) + claim.data


def _unpacked(blob: bytes, *, locate: bool) -> tuple[ClaimFile, Page | None]:
    """A claims pack entry (`_packed_entry`), with the file's bytes and YAML tree (parsed
    when first read) when `locate`."""
    stream = io.BytesIO(blob)
    claim, page = pickle.load(stream)
    if locate:
        data = stream.read()
        claim = replace(claim, root=ParsedLater(data), data=data)
        page = replace(page, file=claim) if page is not None else None
    return claim, page


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.path.relpath(path) if path.is_absolute() else str(path)


def shown_paths(root: Path) -> Callable[[str], str]:
    """How messages name the files of the project at `root`: a path relative to the root
    (`claims/x.yaml`) as `display_path` names it (`site/claims/x.yaml` from the parent)."""
    folders: dict[str, str] = {}

    def show(rel: str) -> str:
        folder, _, name = rel.rpartition("/")
        where = folders.get(folder)
        if where is None:
            where = folders[folder] = display_path(root / folder)
        return name if where == "." else f"{where}/{name}"

    return show


def input_files(
    root: Path, folder: str, suffixes: tuple[str, ...] = (".yaml", ".yml")
) -> Iterator[tuple[Path, str, Problem | None]]:
    """The YAML files (or files of other `suffixes`) of a folder, sorted, each with its path
    relative to the project's root and a problem if it leads outside the project."""
    directory = root / folder
    if not directory.is_dir():
        return
    top = root.resolve()
    # Only symlinks need resolving one by one: a plain file's real path is in the folder's.
    inside = directory.resolve().is_relative_to(top)
    with os.scandir(directory) as found:
        entries = sorted(
            (e for e in found if e.name.endswith(suffixes) and e.name[0] != "."),
            key=lambda e: e.name,
        )
    for entry in entries:
        path = directory / entry.name
        rel = f"{folder}/{entry.name}"
        if entry.is_symlink() or not inside:
            yield path, rel, input_problem(path, rel, top)
        elif not entry.is_file(follow_symlinks=False):
            yield path, rel, Problem(rel, 0, 0, "", "not a regular file")
        else:
            yield path, rel, None


def input_problem(path: Path, rel: str, top: Path) -> Problem | None:
    """Why the input file at `path` cannot be read as part of the project whose resolved
    root is `top` (a symlink out of it, or not a regular file), or None."""
    target = path.resolve()
    if not target.is_relative_to(top):
        return Problem(rel, 0, 0, "", OUTSIDE)
    if not target.is_file():
        return Problem(rel, 0, 0, "", "not a regular file")
    return None


_DATE_FIELDS = set("GyYuUQqMLlwWdDFgEec")
"""CLDR pattern letters that a date (with no time of day) can fill."""


def date_format_problem(site: Site) -> str | None:
    """Why the site's `date_format` cannot show a date, or None when it can."""
    try:
        fields = [v for kind, v in tokenize_pattern(site.date_format) if kind == "field"]
        bad = [f"{v[0]}" * int(v[1]) for v in fields if v[0] not in _DATE_FIELDS]
        if bad:
            return f"`{bad[0]}` is not part of a date; use a pattern such as `MMMM d, y`"
        format_date(dt.date(2026, 1, 16), site.date_format, locale=site.language.replace("-", "_"))
    except (ValueError, KeyError, UnknownLocaleError) as exc:
        return f"not a date pattern ({exc}); use a pattern such as `MMMM d, y`"
    return None


def gather(root: Path, today: dt.date | None = None, *, render: bool = True) -> Project:
    """Load, resolve and lint the project at `root` as of `today` (default: the clock, or
    CLAIMPRESS_NOW); raises ProblemsFound when nothing can be built at all (no readable
    site.yaml), otherwise records problems on the project. Without `render` (`check`),
    prose is not rendered ahead of need: the project's pages are then made when first used."""
    # Pages an earlier gather froze (`_Claims.load`) may be garbage now: collectable again.
    gc.unfreeze()
    with gc_paused():
        return _gather(root, today, render)


def _gather(root: Path, today: dt.date | None, render: bool) -> Project:
    root = root.absolute()
    today = today or clock.today()
    # Every file is named relative to the root, whatever the working folder, in what is
    # gathered and cached; the problems are named from the working folder once found.
    show = shown_paths(root)
    site, site_file, problems = load_site(root / SITE_FILE, SITE_FILE)
    if site is None or site_file is None:
        raise ProblemsFound(p.shown(show) for p in problems)
    try:
        Locale.parse(site.language.replace("-", "_"))
        bad_format = date_format_problem(site)
    except (UnknownLocaleError, ValueError):
        bad_format = None
        problems.append(
            site_file.problem(
                ("language",),
                f"unknown language `{site.language}`; use a tag such as `en` or `en-GB`",
            )
        )
    if bad_format:
        problems.append(site_file.problem(("date_format",), bad_format))
    registry_files: list[RegistryFile] = []
    registry_digest = hashlib.sha256()
    # Neither where the project is nor the working folder is part of any key: a project
    # moved along, or gathered from another folder (`-C`), keeps its cache.
    context = [site.model_dump_json().encode()]
    for folder in (SOURCES_DIR, FIGURES_DIR):
        for path, rel, problem in input_files(root, folder):
            if problem:
                problems.append(problem)
                continue
            data, found = read(path, rel)
            for part in (rel.encode(), data or b""):
                registry_digest.update(len(part).to_bytes(8, "big") + part)
            loaded, found = load_registry(path, rel, folder, data) if data else (None, found)
            problems += found
            if loaded:
                registry_files.append(loaded)
    registry, found = build_registry(registry_files)
    problems += found

    summaries = Pack(root, context, "summaries")
    approvals, found = _approvals(root, summaries)
    problems += found
    pack = Pack(root, context, "claims")
    lints = Pack(root, context, "lint")

    def lint_key(summary: Summary) -> tuple[str, Approval | None, bool]:
        """The key of a claim's findings (today's date in it only when it changes them)."""
        assert summary.slug and summary.checked_on and summary.latest
        approval = approvals.get(summary.slug)
        matches = approval is not None and approval.content_hash == summary.content_hash
        when = (
            today.isoformat() if lint.dated(summary.checked_on, summary.latest, site, today) else ""
        )
        known = "" if approval is None else approval.known
        return lints.key(summary.key, when, known, str(matches)), approval, matches

    def findings(summary: Summary, page: Page, registry: Registry = registry) -> bytes:
        """The review rules' findings on one claim, pickled for the lint pack."""
        _, approval, matches = lint_key(summary)
        context = lint.Context(page, registry, site, today, approval, matches)
        return pickle.dumps(lint.lint_claim(context), protocol=5)

    def keyed(base: str) -> str | None:
        """The key of the claim file whose path and bytes have the key `base`, given what
        gathering it read of the registry (as of this run's registry); None before that."""
        reads = summaries.get(base)
        return None if reads is None else summaries.key(base, registry.fingerprint(reads))

    def compute(
        item: tuple[Path, str, str, bytes],
    ) -> tuple[bytes, str, bytes, bytes | None, bytes | None]:
        path, rel, base, data = item
        reading = registry.reading()
        claim, page, found = load_and_resolve(path, rel, data, reading, site, render=render)
        content = ""
        if page is not None:
            # What the approval hash reads is read whether or not it is needed now, so
            # that a claim approved later is hashed against the registry its key holds.
            used_entries(page, reading)
            content = content_hash(page, reading) if page.slug in approvals else ""
        status, checked_on, latest = (
            (claim.claim.status, claim.claim.checked_on, lint.latest_date(claim.claim))
            if claim is not None
            else ("", None, None)
        )
        summary = Summary(
            path,
            rel,
            "",
            claim.slug if claim else None,
            page is not None,
            status,
            content,
            tuple(found),
            checked_on,
            latest,
            pickle.dumps(page.facts, protocol=5) if page is not None else b"",
        )
        entry = _packed_entry(claim, page) if claim and render else None
        found_by_rules = findings(summary, page, reading) if page is not None else None
        reads = reading.noted()
        return (
            reads,
            summaries.key(base, registry.fingerprint(reads)),
            _packed(summary),
            entry,
            found_by_rules,
        )

    files: list[Summary | tuple[Path, str, str]] = []
    todo: list[tuple[Path, str, str, bytes]] = []
    # By claim file: its stat, the key of its path and bytes, and its own key as of the
    # registry files whose digest is `then` (the same now: no fingerprints to work out).
    stats_key = summaries.key("file stats")
    blob = summaries.get(stats_key)
    known: dict[str, tuple[Stat, str, str]]
    then, known = pickle.loads(blob) if blob is not None else ("", {})
    same_registry = then == registry_digest.hexdigest()
    seen_as: dict[str, tuple[Stat, str]] = {}
    settled = time.time_ns() - SETTLED_NS
    for path, rel, problem in input_files(root, CLAIMS_DIR):
        if problem:
            problems.append(problem)
            continue
        stat, recorded = _stat(path), known.get(rel)
        key: str | None
        if recorded is not None and recorded[0] == stat:
            _, base, key = recorded
            data, seen_as[rel] = None, (stat, base)
            if not same_registry:
                key = keyed(base)
            elif not summaries.has(base):  # (which keeps what it read for the next run)
                key = None
        else:
            data, found = read(path, rel)
            if data is None:
                problems += found
                continue
            base = summaries.key(rel, data)
            if stat is not None and max(stat[3:]) < settled:
                # Read after `stat`: a change since came later, and changed its times.
                seen_as[rel] = (stat, base)
            key = keyed(base)
        blob = summaries.get(key) if key is not None else None
        if key is not None and blob is not None:
            summary = Summary(path, rel, key, *pickle.loads(blob))
            if summary.slug is None or not render or pack.has(key):
                files.append(summary)
                continue
        if data is None:
            data, found = read(path, rel)
            if data is None:
                problems += found
                continue
            base = summaries.key(rel, data)  # the same, unless it changed since `stat`
        files.append((path, rel, base))
        todo.append((path, rel, base, data))
    computed = iter(fork_map(compute, todo))
    del todo
    gathered: list[Summary] = []
    for item in files:
        if not isinstance(item, Summary):
            reads, key, blob, entry, found_by_rules = next(computed)
            summaries.put(item[2], reads)
            summaries.put(key, blob)
            item = Summary(item[0], item[1], key, *pickle.loads(blob))
            if entry is not None:
                pack.put(item.key, entry)
            if found_by_rules is not None:
                lints.put(lint_key(item)[0], found_by_rules)
        gathered.append(item)
        problems += item.problems
    del computed  # the pickles now live in the packs only (saved: read from disk when used)
    keys = {summary.rel: summary.key for summary in gathered}
    stats = {rel: (*seen, keys[rel]) for rel, seen in seen_as.items() if rel in keys}
    if not same_registry or stats != known:
        summaries.put(stats_key, pickle.dumps((registry_digest.hexdigest(), stats), protocol=5))
    claims = _Claims(gathered, pack, registry, site)
    for i, summary in enumerate(gathered):
        if summary.resolved and not summary.content_hash and summary.slug in approvals:
            # Approved since its summary was made: hash it now, once.
            _, page = claims.entry(summary, render=False)
            if page is not None:
                gathered[i] = summary._replace(content_hash=content_hash(page, registry))
                summaries.put(summary.key, _packed(gathered[i]))

    seen: dict[str, str] = {}
    for summary in gathered:
        if summary.slug is None:
            continue
        if summary.slug in seen:
            problems.append(
                Problem(
                    summary.rel,
                    0,
                    0,
                    "",
                    f"slug `{summary.slug}` is also the slug "
                    f"of {seen[summary.slug]}; rename one of the files",
                    names=seen[summary.slug],
                )
            )
        seen.setdefault(summary.slug, summary.rel)
    problems += lint.lint_registry(registry, today)

    def lint_one(summary: Summary) -> bytes:
        _, page = claims.entry(summary, render=render)
        assert page is not None
        return findings(summary, page)

    unlinted: list[tuple[Summary, str]] = []
    approved: dict[str, Page | bool] = {}
    for summary in gathered:
        if not summary.resolved:
            continue
        assert summary.slug is not None
        key, approval, matches = lint_key(summary)
        blob = lints.get(key)
        if blob is None:
            unlinted.append((summary, key))
        else:
            problems += pickle.loads(blob)
        if summary.status != "published" or not site.require_approval:
            continue
        approved[summary.slug] = matches
        if approval is not None and not matches:
            page, found = approved_page(approval, site)
            approved[summary.slug] = page or False
            problems += found
    blobs = fork_map(lint_one, [summary for summary, _ in unlinted])
    for (_, key), blob in zip(unlinted, blobs, strict=True):
        lints.put(key, blob)
        problems += pickle.loads(blob)
    for kept in (summaries, pack, lints) if render else (summaries, lints):
        kept.save()
    return Project(
        root,
        site,
        site_file,
        registry,
        tuple(gathered),
        tuple(ordered(p.shown(show) for p in problems)),
        claims,
        approvals,
        approved,
        today,
        registry_digest.hexdigest(),
    )


def _approvals(root: Path, summaries: Pack) -> tuple[dict[str, Approval], list[Problem]]:
    """Every approval file of the project, by slug, and the problems of those unusable. A
    file whose `Stat` is as recorded is known by what was read of it then, as a claim file
    is: reading and validating 9,500 approval files cost every run a second at 10,000
    claims."""
    approvals: dict[str, Approval] = {}
    problems: list[Problem] = []
    stats_key = summaries.key("approval stats")
    blob = summaries.get(stats_key)
    known: dict[str, tuple[Stat, str, Read | Problem]] = pickle.loads(blob) if blob else {}
    seen: dict[str, tuple[Stat, str, Read | Problem]] = {}
    settled = time.time_ns() - SETTLED_NS
    for path, rel, problem in input_files(root, APPROVALS_DIR, (".json",)):
        if problem:
            problems.append(problem)
            continue
        stat, recorded = _stat(path), known.get(rel)
        if recorded is not None and recorded[0] == stat:
            _, digest, found = recorded
        else:
            data, unread = read(path, rel, APPROVAL_MAX_BYTES)
            if data is None:
                problems += unread
                continue
            digest, found = hashlib.sha256(data).hexdigest(), read_approval(data, rel, path.stem)
        if stat is not None and max(stat[3:]) < settled:
            # Read after `stat`: a change since came later, and changed its times.
            seen[rel] = (stat, digest, found)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            approvals[found[0]] = Approval(*found, path=rel, digest=digest, file=path)
    if seen != known:
        summaries.put(stats_key, pickle.dumps(seen, protocol=5))
    return approvals, problems


Stat = tuple[int, int, int, int, int]
"""What `os.stat` tells of a file that changes when its content does: its device, inode,
size, and the times of its last change of content and of status (`_stat`)."""

SETTLED_NS = 2_000_000_000
"""How long ago a file must have last changed for its `Stat` to stand for its content: a
file's times have the resolution of the kernel's clock tick, so a second write within the
tick of the first can leave them as they were."""


def _stat(path: Path) -> Stat | None:
    """The `Stat` of a claim file, or None when it cannot be had.

    A warm run reads a claim file again only when its `Stat` differs from the one recorded
    with its cache key (as git's index does): the time of the last change of status cannot
    be set back by a program, and it moves with every write, rename or change of times."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _packed(summary: Summary) -> bytes:
    """A summary as the summaries pack keeps it: without the path, name and key it is
    stored under (`Summary(path, rel, key, *pickle.loads(blob))` restores it)."""
    return pickle.dumps(tuple(summary)[3:], protocol=5)


Loaded = tuple[ClaimFile | None, Page | None, list[Problem]]
"""One claim file gathered: the validated file, its resolved page, the problems found."""


def load_and_resolve(
    path: Path, rel: str, data: bytes, registry: Registry, site: Site, *, render: bool = True
) -> Loaded:
    """One claim file from its bytes: validated, then resolved (its prose rendered when
    `render`)."""
    claim, found = load_claim(path, rel, data)
    if isinstance(claim, Unvalidated):
        return None, None, found + unresolved(claim, registry, site)
    if claim is None:
        return None, None, found
    page, more = resolve_claim(claim, registry, site, render=render)
    return claim, page, found + more


def require_clean(project: Project, *, strict: bool = False) -> None:
    """Raise ProblemsFound when the project has errors (or, when strict, any problem)."""
    bad = list(project.problems) if strict else errors(project.problems)
    if bad:
        raise ProblemsFound(project.problems)
