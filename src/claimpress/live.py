"""The site `claimpress serve` previews, kept in memory and updated edit by edit.

An edit of claim files re-reads only those files (`reload_claims`), re-renders only the
claims whose page changed and writes only the files that differ, at once; the listing
pages (front page, topics, sources, feed...) and the search index follow in a background
thread a moment later. Any other change (registry, templates, site.yaml, about.md) builds
the whole site again. Every file's version is tracked, so an open tab reloads only when
its own page changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import lint, search
from .approvals import content_hash
from .load import CLAIMS_DIR, ClaimFile, load_claim, read
from .parallel import gc_paused
from .problems import Problem
from .project import Project, display_path
from .render import Renderer
from .resolve import Page, link_follow_ups, question_key, resolve_claim
from .site import (
    MANIFEST,
    Plan,
    _exchange,
    _manifest,
    claim_outputs,
    claim_paths,
    file_digest,
    plan_listings,
    plan_site,
    write_site,
)


def claim_file(root: Path, path: Path) -> bool | None:
    """Whether `path` is a claim file of the project at `root` (True), a file `gather`
    ignores (False), or something only a full `gather` can judge (None)."""
    if path.parent != root / CLAIMS_DIR:
        return None
    return path.suffix in (".yaml", ".yml") and not path.name.startswith(".")


@dataclass(frozen=True)
class Claims:
    """A project's claims as `serve` last read them; the rest (site, registry, approvals)
    as `gather` found it."""

    project: Project = field(compare=False)
    files: Mapping[str, ClaimFile]
    """Every claim file that validated, by path."""
    pages: Mapping[str, Page]
    """Every claim that resolved, unlinked, by path."""
    problems: tuple[Problem, ...]
    """Everything found wrong, as `Project.problems`."""

    @classmethod
    def of(cls, project: Project) -> Claims:
        """The claims of a gathered project."""
        return cls(
            project,
            {c.rel: c for c in project.claims},
            {p.file.rel: p for p in project.pages},
            project.problems,
        )


def reload_claims(claims: Claims, paths: Iterable[Path]) -> Claims | None:
    """`claims` with the claim files at `paths` read again (edited, added or deleted):
    what `gather` would give, at the cost of those files alone. None when only a full
    `gather` can tell (another kind of file, slugs shared by two files, approvals required)."""
    project = claims.project
    root = project.root
    changed: dict[str, Path] = {}
    for path in paths:
        kind = claim_file(root, path)
        if kind is None:
            return None
        if kind:
            changed[display_path(path)] = path
    slugs = {c.slug for c in claims.files.values()}
    if project.site.require_approval or len(slugs) < len(claims.files):
        return None
    files = {rel: c for rel, c in claims.files.items() if rel not in changed}
    pages = {rel: p for rel, p in claims.pages.items() if rel not in changed}
    problems = [p for p in claims.problems if p.path not in changed]
    for rel, path in sorted(changed.items()):
        if not os.path.lexists(path):
            continue
        if not path.resolve().is_relative_to(root.resolve()):
            outside = "symlink leads outside the project; copy the file in instead"
            problems.append(Problem(rel, 0, 0, "", outside))
            continue
        if not path.resolve().is_file():
            problems.append(Problem(rel, 0, 0, "", "not a regular file"))
            continue
        data, found = read(path, rel)
        problems += found
        if data is None:
            continue
        claim, found = load_claim(path, rel, data)
        problems += found
        if claim is None:
            continue
        files[rel] = claim
        page, found = resolve_claim(claim, project.registry, project.site)
        problems += found
        if page is None:
            continue
        pages[rel] = page
        approval = project.approvals.get(page.slug)
        matches = approval is not None and approval.content_hash == content_hash(
            page, project.registry
        )
        context = lint.Context(
            page, project.registry, project.site, project.today, approval, matches
        )
        problems += lint.lint_claim(context)
    if len({c.slug for c in files.values()}) < len(files):
        return None
    return Claims(project, files, pages, tuple(sorted(set(problems))))


def _fingerprint(page: Page) -> tuple[Any, ...]:
    """What a claim's files depend on while the registry, site and theme stay the same:
    its file, and the follow-ups linked to other claims."""
    return page.file.rel, page.file.digest, page.follow_ups


def _listed(path: str) -> bool:
    """Whether a file of the site is one of `plan_listings`' (not a claim's, not static)."""
    return not path.startswith(("claims/", "static/"))


class LiveSite:
    """The files of the previewed site, in memory and in `out`, and their versions.

    `full` and `update` run in the watching thread; listings and the search index are
    brought up to date by a background thread that `start` runs. `changed` is told the
    paths each write changed (None: possibly all of them)."""

    def __init__(self, out: Path, changed: Callable[[set[str] | None], None]) -> None:
        self.out = out
        self.changed = changed
        self.files: dict[str, bytes] = {}
        """What `out` holds (the search index aside)."""
        self.digests: dict[str, str] = {}
        """The manifest of `out`: the digest of each of `files`."""
        self.shown: dict[str, tuple[Any, ...]] = {}
        """By slug: the fingerprint of the claim whose files `out` holds."""
        self.claims: Claims | None = None
        """The claims `out` shows."""
        self.pages: list[Page] = []
        """The claims on the site, follow-ups linked, as `Project.published` gives them."""
        self.linked: dict[str, Page] = {}
        """`pages` by claim file."""
        self.renderer: Renderer | None = None
        self.generation = 0
        """Moves with every write; background work for an older one is thrown away."""
        self.write_lock = threading.Lock()
        self.pending = threading.Event()
        self.idle = threading.Event()
        self.idle.set()

    def full(self, project: Project) -> int:
        """Build the whole site into `out` (atomically); the search index follows."""
        with gc_paused():
            plan = plan_site(project, drafts=True, live=True)
        with self.write_lock:
            write_site(plan, self.out, before_swap=self._keep_search)
            self.files = plan.files
            self.digests = _manifest(self.out)
            self._remember(Claims.of(project), plan.pages)
            self.renderer = Renderer(project.root, project.site, live=True)
        self.changed(None)
        self._catch_up()
        return len(plan.files)

    def update(self, claims: Claims) -> int:
        """Write the claims whose page changed since the last write; the
        listings and the search index follow. Only valid when nothing but claim files
        changed since `full`. Returns how many files changed."""
        assert self.renderer is not None
        pages = self._link(claims)
        files: dict[str, bytes | None] = {}
        shown = dict(self.shown)
        for page in pages:
            if self.linked.get(page.file.rel) is not page:
                shown[page.slug] = _fingerprint(page)
                if self.shown.get(page.slug) != shown[page.slug]:
                    outputs = claim_outputs(self.renderer, page)
                    files.update(zip(claim_paths(page.slug), outputs, strict=True))
        for slug in self.shown.keys() - {page.slug for page in pages}:
            del shown[slug]
            files.update(dict.fromkeys(claim_paths(slug)))
        with self.write_lock:
            written = self._write(files)
            self._remember(claims, pages, shown)
        self.changed(written)
        self._catch_up()
        return len(written)

    def _link(self, claims: Claims) -> list[Page]:
        """What `Project.published(drafts=True)` gives, reusing the linked pages of the
        last write where neither the claim nor the claims its follow-ups ask about changed."""
        before = self.claims.pages if self.claims else {}
        now = claims.pages
        pages = sorted(now.values(), key=lambda p: (p.claim.checked_on, p.slug), reverse=True)
        changed = [p for p in pages if before.get(p.file.rel) is not p]
        gone = [p for rel, p in before.items() if now.get(rel) is not p]
        asked = {question_key(p.claim.question) for p in (*changed, *gone)}
        affected = {id(p) for p in changed} | {
            id(p) for p in pages if any(question_key(f.question) in asked for f in p.follow_ups)
        }
        needed = {
            question_key(f.question) for p in pages if id(p) in affected for f in p.follow_ups
        }
        subset = [p for p in pages if id(p) in affected or question_key(p.claim.question) in needed]
        # The same links as linking all pages: every page a relinked follow-up could point
        # to is in `subset`, in the same order.
        linked = {id(p): q for p, q in zip(subset, link_follow_ups(subset), strict=True)}
        return [linked[id(p)] if id(p) in affected else self.linked[p.file.rel] for p in pages]

    def _remember(
        self, claims: Claims, pages: list[Page], shown: dict[str, tuple[Any, ...]] | None = None
    ) -> None:
        self.claims, self.pages = claims, pages
        self.linked = {page.file.rel: page for page in pages}
        self.shown = shown if shown is not None else {p.slug: _fingerprint(p) for p in pages}
        self.generation += 1

    def _write(self, files: dict[str, bytes | None]) -> set[str]:
        """Write (bytes) or delete (None) files of `out` in place, each replaced in one
        step, and the manifest with them; return the paths that changed."""
        written = set()
        for rel, data in files.items():
            if self.files.get(rel) == data:
                continue
            written.add(rel)
            path = self.out / rel
            if data is None:
                del self.files[rel]
                del self.digests[rel]
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # a folder with files left stays
                    path.parent.rmdir()
                continue
            self.files[rel] = data
            self.digests[rel] = file_digest(data)
            _replace(path, data)
        if written:
            # Keeps `write_site`'s reuse of unchanged files right at the next full build.
            lines = (f"{digest} {rel}\n" for rel, digest in sorted(self.digests.items()))
            _replace(self.out / MANIFEST, "".join(lines).encode())
        return written

    def _keep_search(self, fresh: Path) -> None:
        """Move the current search index into the freshly written site until a new one
        is made."""
        index = self.out / search.SEARCH_DIR
        if index.is_dir():
            os.rename(index, fresh / search.SEARCH_DIR)

    def _catch_up(self) -> None:
        self.idle.clear()
        self.pending.set()

    def start(self) -> None:
        """Run the background thread that brings listings and the search index up to date."""
        threading.Thread(target=self._background, daemon=True).start()

    def _background(self) -> None:
        while True:
            self.pending.wait()
            self.pending.clear()
            try:
                self._listings()
                self._index()
            except Exception as exc:  # the preview must keep running
                print(f"serve: could not update the listings or search: {exc}", flush=True)
            if not self.pending.is_set():
                self.idle.set()

    def _listings(self) -> None:
        """Render the listing pages of the last write and write those that changed."""
        with self.write_lock:
            generation, claims, pages = self.generation, self.claims, self.pages
            files = dict(self.files)
        if claims is None:
            return
        project = claims.project
        renderer = Renderer(project.root, project.site, live=True)
        for page in pages:
            data = files.get(claim_paths(page.slug)[2])
            if data is not None:
                renderer.known_json[id(page)] = (page, data)
        plan = Plan()
        with gc_paused():
            plan_listings(plan, renderer, project, pages, drafts=True)
        update: dict[str, bytes | None] = dict(plan.files)
        update.update({rel: None for rel in files if _listed(rel) and rel not in plan.files})
        with self.write_lock:
            if generation != self.generation:
                return
            written = self._write(update)
        if written:
            self.changed(written)

    def _index(self) -> None:
        """Index the site as it is now and swap the new index in."""
        with self.write_lock:
            generation = self.generation
        if self.pending.is_set():
            return  # more changes are coming: index them all at once
        fresh = Path(tempfile.mkdtemp(prefix=".search-", dir=self.out.parent))
        try:
            search.index_site(self.out, fresh / search.SEARCH_DIR)
            with self.write_lock:
                if generation != self.generation:
                    return
                index = self.out / search.SEARCH_DIR
                if not index.exists():
                    os.rename(fresh / search.SEARCH_DIR, index)
                elif not _exchange(fresh / search.SEARCH_DIR, index):
                    shutil.rmtree(index)
                    os.rename(fresh / search.SEARCH_DIR, index)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)


def _replace(path: Path, data: bytes) -> None:
    """Write a file in one step: readers see the old bytes or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
