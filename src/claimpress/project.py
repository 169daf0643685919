"""Gather a project: read and validate every input file, then resolve every claim.

Nothing is written here: `check` is exactly `gather`, and `build` is `gather` then write.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, tokenize_pattern

from . import clock, lint
from .approvals import Approval, approved_page, content_hash, load_approvals
from .cache import Cache
from .load import (
    CLAIMS_DIR,
    FIGURES_DIR,
    SITE_FILE,
    SOURCES_DIR,
    ClaimFile,
    Located,
    RegistryFile,
    load_claim,
    load_registry,
    load_site,
    read,
)
from .model import Site
from .parallel import fork_map, gc_paused
from .problems import Problem, ProblemsFound, errors
from .resolve import Page, Registry, build_registry, link_follow_ups, resolve_claim


@dataclass(frozen=True)
class Project:
    """Everything read from a project folder, validated and resolved."""

    root: Path
    site: Site
    site_file: Located
    claims: tuple[ClaimFile, ...]
    registry: Registry
    pages: tuple[Page, ...]
    """Every claim that resolved, whatever its status, sorted by slug."""
    problems: tuple[Problem, ...]
    """Everything found wrong, errors and warnings, sorted by file and line."""
    approvals: Mapping[str, Approval] = field(default_factory=dict)
    """The latest approval of each claim, by slug (`approvals/<slug>.json`)."""
    approved: Mapping[str, Page | None] = field(default_factory=dict)
    """Under `require_approval`: by slug, the version of each published claim the site may
    show (the current one when its approval matches, else the approved snapshot), or None."""
    today: dt.date = field(default_factory=clock.today)
    """The date the project was checked as of."""

    def published(self, *, drafts: bool = False) -> list[Page]:
        """The pages that go on the site, follow-ups linked among them, newest check first;
        under `require_approval` (drafts aside) only approved content goes out."""
        chosen = [p for p in self.pages if drafts or p.claim.status == "published"]
        if self.site.require_approval and not drafts:
            chosen = [v for p in chosen if (v := self.approved.get(p.slug)) is not None]
        chosen.sort(key=lambda p: (p.claim.checked_on, p.slug), reverse=True)
        return link_follow_ups(chosen)

    def page(self, name: str) -> Page:
        """The page for a slug or claim file path; raises KeyError with the known slugs."""
        slug = Path(name).stem if name.endswith((".yaml", ".yml")) else name
        for page in self.pages:
            if page.slug == slug:
                return link_follow_ups(self.pages)[self.pages.index(page)]
        raise KeyError(slug)


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.path.relpath(path) if path.is_absolute() else str(path)


def input_files(root: Path, folder: str) -> Iterator[tuple[Path, str, Problem | None]]:
    """The YAML files of a folder, sorted, each with a problem if it leads outside the project."""
    directory = root / folder
    if not directory.is_dir():
        return
    top = root.resolve()
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml") or path.name.startswith("."):
            continue
        rel = display_path(path)
        target = path.resolve()
        if not target.is_relative_to(top):
            yield (
                path,
                rel,
                Problem(
                    rel, 0, 0, "", "symlink leads outside the project; copy the file in instead"
                ),
            )
        elif not target.is_file():
            yield path, rel, Problem(rel, 0, 0, "", "not a regular file")
        else:
            yield path, rel, None


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


def gather(root: Path, today: dt.date | None = None) -> Project:
    """Load, resolve and lint the project at `root` as of `today` (default: the clock, or
    CLAIMPRESS_NOW); raises ProblemsFound when nothing can be built at all (no readable
    site.yaml), otherwise records problems on the project."""
    with gc_paused():
        return _gather(root, today)


def _gather(root: Path, today: dt.date | None) -> Project:
    root = root.absolute()
    today = today or clock.today()
    site, site_file, problems = load_site(root / SITE_FILE, display_path(root / SITE_FILE))
    if site is None or site_file is None:
        raise ProblemsFound(problems)
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
    context = [site.model_dump_json().encode(), str(Path.cwd()).encode()]
    for folder in (SOURCES_DIR, FIGURES_DIR):
        for path, rel, problem in input_files(root, folder):
            if problem:
                problems.append(problem)
                continue
            data, found = read(path, rel)
            context += [rel.encode(), data or b""]
            loaded, found = load_registry(path, rel, folder, data) if data else (None, found)
            problems += found
            if loaded:
                registry_files.append(loaded)
    registry, found = build_registry(registry_files)
    problems += found

    claims: list[ClaimFile] = []
    pages: list[Page] = []
    cache = Cache(root, context)

    def one(item: tuple[Path, str, Problem | None]) -> tuple[str, bytes]:
        path, rel, problem = item
        data, found = (None, [problem]) if problem else read(path, rel)
        if data is None:
            return "", pickle.dumps((None, None, found))
        key = cache.key(rel, data)
        blob = cache.get(key)
        if blob is None:
            blob = pickle.dumps(_load_and_resolve(path, rel, data, registry, site), protocol=5)
            cache.put(key, blob)
        return key, blob

    used: set[str] = set()
    keys: dict[str, str] = {}
    results = fork_map(one, list(input_files(root, CLAIMS_DIR)))
    results.reverse()
    while results:  # popped one by one: each pickle is freed once loaded
        key, blob = results.pop()
        used.add(key)
        claim, page, found = pickle.loads(blob)
        problems += found
        if claim is not None:
            claims.append(claim)
        if page is not None:
            pages.append(page)
            keys[page.file.rel] = key
    cache.prune(used)
    seen: dict[str, ClaimFile] = {}
    for claim in claims:
        if claim.slug in seen:
            problems.append(
                Problem(
                    claim.rel,
                    0,
                    0,
                    "",
                    f"slug `{claim.slug}` is also the slug "
                    f"of {seen[claim.slug].rel}; rename one of the files",
                )
            )
        seen.setdefault(claim.slug, claim)
    approvals, found = load_approvals(root, display_path)
    problems += found
    problems += lint.lint_registry(registry, today)
    approved: dict[str, Page | None] = {}
    lint_cache = Cache(root, context, "lint")
    for page in pages:
        approval = approvals.get(page.slug)
        matches = approval is not None and approval.content_hash == content_hash(page, registry)
        problems += _lint(
            lint_cache,
            lint_cache.key(keys[page.file.rel], today.isoformat(), repr(approval), str(matches)),
            lint.Context(page, registry, site, today, approval, matches),
        )
        if page.claim.status != "published" or not site.require_approval:
            continue
        approved[page.slug] = page if matches else None
        if approval is not None and not matches:
            approved[page.slug], found = approved_page(approval, site)
            problems += found
    lint_cache.prune(lint_cache.used)
    return Project(
        root,
        site,
        site_file,
        tuple(claims),
        registry,
        tuple(pages),
        tuple(sorted(set(problems))),
        approvals,
        approved,
        today,
    )


Loaded = tuple[ClaimFile | None, Page | None, list[Problem]]
"""One claim file gathered: the validated file, its resolved page, the problems found."""


def _load_and_resolve(path: Path, rel: str, data: bytes, registry: Registry, site: Site) -> Loaded:
    """One claim file from its bytes: validated, then resolved."""
    claim, found = load_claim(path, rel, data)
    if claim is None:
        return None, None, found
    page, more = resolve_claim(claim, registry, site)
    return claim, page, found + more


def _lint(cache: Cache, key: str, context: lint.Context) -> list[Problem]:
    """The review rules' findings on one claim, from the cache when nothing they read changed."""
    cache.used.add(key)
    blob = cache.get(key)
    if blob is not None:
        found: list[Problem] = pickle.loads(blob)
        return found
    found = lint.lint_claim(context)
    cache.put(key, pickle.dumps(found, protocol=5))
    return found


def require_clean(project: Project, *, strict: bool = False) -> None:
    """Raise ProblemsFound when the project has errors (or, when strict, any problem)."""
    bad = list(project.problems) if strict else errors(project.problems)
    if bad:
        raise ProblemsFound(project.problems)
