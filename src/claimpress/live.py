"""The site `claimpress serve` previews, kept in memory and updated edit by edit.

An edit of claim files re-reads only those files (`reload_claims`), re-renders only the
claims whose page changed and writes only the files that differ, at once; the listing
pages (front page, topics, sources, feed...) and the search index follow in a background
thread a moment later. Any other change (registry, templates, site.yaml, about.md) builds
the whole site again. Every file's version is tracked, so an open tab reloads only when
its own page changed.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import gc
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import lint, search
from .approvals import content_hash
from .load import CLAIMS_DIR, read
from .parallel import gc_paused
from .problems import Problem, ordered
from .project import Project, input_problem, load_and_resolve, unlocated
from .render import Fragment, FragmentKey, FragmentTable, Renderer
from .resolve import Page, link_follow_ups
from .site import (
    MANIFEST,
    Plan,
    _exchange,
    claim_outputs,
    claim_paths,
    file_digest,
    manifest_text,
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
    files: Mapping[str, str]
    """The slug of every claim file that validated, by path (relative to the project's
    root)."""
    pages: Mapping[str, Page]
    """Every claim that resolved, unlinked, by path (relative to the project's root);
    without the locations of their files (`Project.without_locations`): a page is loaded
    when a field other than its slug, facts or follow-ups is first read."""
    problems: tuple[Problem, ...]
    """Everything found wrong, as `Project.problems` (shown: named from the working folder)."""
    slugs: Mapping[str, int] = field(compare=False)
    """How many of `files` have each slug."""

    @classmethod
    def of(cls, project: Project) -> Claims:
        """The claims of a project gathered `without_locations`."""
        files = {s.rel: s.slug for s in project.summaries if s.slug is not None}
        pages = {p.facts.rel: p for p in project.pages}
        return cls(project, files, pages, project.problems, Counter(files.values()))


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
            changed[f"{CLAIMS_DIR}/{path.name}"] = path
    if project.site.require_approval or len(claims.slugs) < len(claims.files):
        return None
    files, pages, slugs = dict(claims.files), dict(claims.pages), Counter(claims.slugs)
    shown = {project.show(rel) for rel in changed}
    kept = [p for p in claims.problems if p.path not in shown]
    problems: list[Problem] = []
    for rel, path in sorted(changed.items()):
        pages.pop(rel, None)
        if rel in files:
            slugs[files.pop(rel)] -= 1
        if not os.path.lexists(path):
            continue
        problem = input_problem(path, rel, root.resolve())
        if problem is not None:
            problems.append(problem)
            continue
        data, found = read(path, rel)
        problems += found
        if data is None:
            continue
        claim, page, found = load_and_resolve(path, rel, data, project.registry, project.site)
        problems += found
        if claim is None:
            continue
        files[rel] = claim.slug
        slugs[claim.slug] += 1
        if page is None:
            continue
        approval = project.approvals.get(page.slug)
        matches = approval is not None and approval.content_hash == content_hash(
            page, project.registry
        )
        context = lint.Context(
            page, project.registry, project.site, project.today, approval, matches
        )
        problems += lint.lint_claim(context)
        pages[rel] = replace(page, file=unlocated(claim))  # as `Claims.of` keeps them
    slugs = +slugs  # only the slugs some file has
    if len(slugs) < len(files):
        return None
    kept += (p.shown(project.show) for p in problems)
    return Claims(project, files, pages, tuple(ordered(kept)), slugs)


def _fingerprint(page: Page) -> tuple[Any, ...]:
    """What a claim's files depend on while the registry, site and theme stay the same:
    its file, and the follow-ups linked to other claims."""
    return page.facts.rel, page.facts.digest, page.follow_ups


def _listed(path: str) -> bool:
    """Whether a file of the site is one of `plan_listings`' (not a claim's, not static)."""
    return not path.startswith(("claims/", "static/"))


def _order(page: Page) -> tuple[dt.date, str]:
    """Where a claim goes on the site: newest check first (this, reversed)."""
    return page.facts.checked_on, page.slug


class Links:
    """Claims with their follow-ups linked, kept up to date claim by claim: what
    `Project.published(drafts=True)` gives, at the cost of the claims an edit touches."""

    def __init__(self, pages: Mapping[str, Page] | None = None, linked: Iterable[Page] = ()):
        """Empty, or `pages` (unlinked, by file) as `linked` links them."""
        self.unlinked: dict[str, Page] = {}
        self.linked = {page.facts.rel: page for page in linked}
        self.order: list[tuple[tuple[dt.date, str], str]] = []
        """(`_order`, file) of every claim, sorted."""
        self.asking: dict[str, set[str]] = {}
        """By follow-up question (`question_key`): the files of the claims asking it."""
        self.answering: dict[str, set[str]] = {}
        """By claim question (`question_key`): the files of the claims with it."""
        for rel, page in (pages or {}).items():
            self._add(rel, page)
        self.order.sort()

    def _add(self, rel: str, page: Page) -> None:
        self.unlinked[rel] = page
        self.order.append((_order(page), rel))
        for key in set(page.facts.ask_keys):
            self.asking.setdefault(key, set()).add(rel)
        self.answering.setdefault(page.facts.question_key, set()).add(rel)

    def _remove(self, rel: str) -> Page:
        page = self.unlinked.pop(rel)
        del self.order[bisect.bisect_left(self.order, (_order(page), rel))]
        for key in set(page.facts.ask_keys):
            self.asking[key].discard(rel)
        self.answering[page.facts.question_key].discard(rel)
        del self.linked[rel]
        return page

    def update(self, pages: Mapping[str, Page]) -> tuple[list[Page], set[str], set[str]]:
        """Move to `pages` (unlinked, by file). Return the linked pages in the site's order,
        the files of the claims linked again, and the slugs of the claims gone."""
        changed = [rel for rel, page in pages.items() if self.unlinked.get(rel) is not page]
        gone = [rel for rel in self.unlinked if rel not in pages]
        asked, slugs = set(), set()
        for rel in (*changed, *gone):
            if rel in self.unlinked:
                old = self._remove(rel)
                asked.add(old.facts.question_key)
                slugs.add(old.slug)
        for rel in changed:
            self._add(rel, pages[rel])
            bisect.insort(self.order, self.order.pop())
            asked.add(pages[rel].facts.question_key)
        relink = set(changed).union(*(self.asking.get(key, ()) for key in asked))
        targets = {key for rel in relink for key in self.unlinked[rel].facts.ask_keys}
        subset = relink.union(*(self.answering.get(key, ()) for key in targets))
        # The same links as linking all pages: every page a relinked follow-up could point
        # to is in `subset`, in the site's order.
        in_order = sorted(subset, key=lambda rel: (_order(self.unlinked[rel]), rel), reverse=True)
        linked = link_follow_ups([self.unlinked[rel] for rel in in_order])
        for rel, page in zip(in_order, linked, strict=True):
            if rel in relink:
                self.linked[rel] = page
        return [self.linked[rel] for _, rel in reversed(self.order)], relink, slugs


class LiveSite:
    """The files of the previewed site, in memory and in `out`, and their versions.

    `full` and `update` run in the watching thread; listings and the search index are
    brought up to date by a background thread that `start` runs. `changed` is told the
    paths each write changed (None: possibly all of them)."""

    def __init__(
        self,
        out: Path,
        changed: Callable[[set[str] | None], None],
        spare: Path | None = None,
        lender: Path | None = None,
    ) -> None:
        self.out = out
        self.changed = changed
        self.spare = spare
        """Where a full build keeps the site it replaces, to write the next one over."""
        self.lender = lender
        """A site `claimpress build` made (`build/`), whose files a full build hard-links
        where they are the same (the published claims' files are): `write_site`."""
        self.files: dict[str, bytes] = {}
        """What `out` holds (the search index aside)."""
        self.digests: dict[str, str] = {}
        """The manifest of `out`: the digest of each of `files`."""
        self.indexed: dict[str, str] = {}
        """By the digest of a claim's page in `files`: its `search.indexed_key`."""
        self.shown: dict[str, tuple[Any, ...]] = {}
        """By slug: the fingerprint of the claim whose files `out` holds."""
        self.claims: Claims | None = None
        """The claims `out` shows."""
        self.pages: list[Page] = []
        """The claims on the site, follow-ups linked, as `Project.published` gives them."""
        self.links = Links()
        self.renderer: Renderer | None = None
        self.fragments: dict[FragmentKey, Fragment] = {}
        """The listing fragments of the last listings written (`Renderer.fragment`), which
        know each page by its `build_keys`: only a full build changes anything else they show."""
        self.build_keys: dict[str, str] = {}
        """By `_fingerprint` (its repr): the key the last full build knew the page by, so
        the first listings after it reuse its fragments (a page not in it is known by its
        fingerprint)."""
        self.generation = 0
        """Moves with every write; background work for an older one is thrown away."""
        self.listed = -1
        """The `generation` whose listing pages `out` holds."""
        self.write_lock = threading.Lock()
        self.indexers: list[subprocess.Popen[str]] = []
        """The search indexers started (one per shard indexed anew), for `stop` to end."""
        self.stopping = False
        self.unhurried = threading.Event()
        """Cleared while the watching thread applies a change (`first`)."""
        self.unhurried.set()
        self.pending = threading.Event()
        self.idle = threading.Event()
        self.idle.set()

    @contextlib.contextmanager
    def first(self) -> Iterator[None]:
        """Apply a change ahead of the background thread, which waits at its next template
        meanwhile: rendering listings, it would otherwise take the interpreter every other
        few milliseconds and double the time an edit takes to show."""
        self.unhurried.clear()
        try:
            yield
        finally:
            self.unhurried.set()

    def full(self, project: Project) -> int:
        """Build the whole site into `out` (atomically); the search index follows."""
        with gc_paused():  # until `_settle`: collections meanwhile would find nothing
            plan = plan_site(project, drafts=True, live=True)
            with self.write_lock:
                self.digests = write_site(
                    plan,
                    self.out,
                    before_swap=self._keep_search,
                    spare=self.spare,
                    lender=self.lender,
                )
                self.files = plan.files
                self.claims, self.pages = Claims.of(project), plan.pages
                self.indexed = {
                    self.digests[search.page_path(slug)]: key for slug, key in plan.indexed.items()
                }
                self.shown = {page.slug: _fingerprint(page) for page in plan.pages}
                self.links = Links(self.claims.pages, plan.pages)
                self.generation += 1
                self.renderer = Renderer(project.root, project.site, live=True)
                for template in ("base.html", "claim.html", "claim.txt"):
                    self.renderer.env.get_template(template)  # compiled now, not at the first edit
                # The build's listing fragments, with its keys of the pages they show: the
                # first listings after an edit render only its entries.
                keyed = zip(plan.pages, plan.keys, strict=True)
                self.build_keys = {repr(_fingerprint(page)): key for page, key in keyed}
                self.fragments = plan.fragments
                self.listed = self.generation  # only the search index has to catch up
        self.changed(None)
        _settle()
        self._catch_up()
        return len(plan)

    def update(self, claims: Claims) -> int:
        """Write the claims whose page changed since the last write; the listings and the
        search index follow. Only valid when nothing but claim files changed since `full`.
        Returns how many files changed."""
        assert self.renderer is not None
        links, self.links = self.links, Links()  # left empty (all to redo) if this fails
        pages, relinked, gone = links.update(claims.pages)
        files: dict[str, bytes | None] = {}
        shown = dict(self.shown)
        for rel in relinked:
            page = links.linked[rel]
            shown[page.slug] = _fingerprint(page)
            if self.shown.get(page.slug) != shown[page.slug]:
                outputs = claim_outputs(self.renderer, page)
                files.update(zip(claim_paths(page.slug), outputs, strict=True))
        for slug in gone - {links.linked[rel].slug for rel in relinked}:
            del shown[slug]
            files.update(dict.fromkeys(claim_paths(slug)))
        with self.write_lock:
            written = self._write(files, manifest=False)
            self.claims, self.pages, self.shown = claims, pages, shown
            self.generation += 1
        self.links = links
        self.changed(written)
        self._catch_up()
        return len(written)

    def _write(
        self,
        files: dict[str, bytes | None],
        staged: Mapping[str, tuple[Path, str]] = {},
        *,
        manifest: bool = True,
    ) -> set[str]:
        """Write (bytes) or delete (None) files of `out` in place, each replaced in one
        step; return the paths that changed. `staged` gives, by path, a file already written
        beside it with those bytes, and their digest.

        The manifest is written after them, or with `manifest=False` (an edit, which must
        show at once) deleted instead and written by the next call that writes it: 28,000
        lines at 10,000 claims. Without a manifest, a full build reuses no file; a stale one
        could make it reuse a file rewritten in the same clock tick."""
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
            if rel in staged:
                tmp, self.digests[rel] = staged[rel]
                os.replace(tmp, path)
            else:
                self.digests[rel] = file_digest(data)
                _replace(path, data)
        if written and not manifest:
            (self.out / MANIFEST).unlink(missing_ok=True)
        elif manifest and (written or not (self.out / MANIFEST).exists()):
            self._save_manifest()
        return written

    def _save_manifest(self) -> None:
        """Keeps `write_site`'s reuse of unchanged files right at the next full build."""
        _replace(self.out / MANIFEST, manifest_text(self.digests).encode())

    def _keep_search(self, fresh: Path, _digests: dict[str, str]) -> None:
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

    def _indexing(self, process: subprocess.Popen[str]) -> None:
        self.indexers = [p for p in self.indexers if p.poll() is None] + [process]
        if self.stopping:  # `stop` ran while it was starting
            search.stop(process)

    def stop(self) -> None:
        """End a search index run under way (the preview is closing), and leave `out` with
        its manifest: an edit deletes it until its listings are written, and without one
        the next `serve` writes every file again (at 10,000 claims, 20 s of its start)."""
        with self.write_lock:  # after a write under way; none follows
            self.stopping = True
            if self.digests and not (self.out / MANIFEST).exists():
                self._save_manifest()
        for process in self.indexers:
            if process.poll() is None:
                search.stop(process)

    def _background(self) -> None:
        while True:
            self.pending.wait()
            self.pending.clear()
            try:
                self._listings()
                _settle()
                self._index()
            except Exception as exc:  # the preview must keep running
                if self.stopping:
                    return
                print(f"serve: could not update the listings or search: {exc}", flush=True)
            if not self.pending.is_set():
                self.idle.set()

    def _listings(self) -> None:
        """Render the listing pages of the last write and write those that changed."""
        with self.write_lock:
            generation, claims, pages = self.generation, self.claims, self.pages
            files, build_keys = dict(self.files), self.build_keys
        if claims is None or generation == self.listed:
            return
        project = claims.project
        renderer = Renderer(project.root, project.site, live=True)
        renderer.pause = self.unhurried.wait
        renderer.fragments = FragmentTable(newer=self.fragments)
        for page in pages:
            fingerprint = repr(_fingerprint(page))
            renderer.page_keys[id(page)] = (page, build_keys.get(fingerprint, fingerprint))
            data = files.get(claim_paths(page.slug)[2])
            if data is not None:
                renderer.known_json[id(page)] = (page, data)
        plan = Plan()
        try:
            with gc_paused():
                plan_listings(plan, renderer, project, pages, drafts=True)
            fragments = renderer.used_fragments()
        finally:
            renderer.release()
        update: dict[str, bytes | None] = dict(plan.files)
        update.update({rel: None for rel in files if _listed(rel) and rel not in plan.files})
        # Written beside their place before taking the lock, which an edit waits for (the
        # listings of 10,000 claims are 200 MB): only moved into place under it.
        staged: dict[str, tuple[Path, str]] = {}
        try:
            for rel, data in update.items():
                if data is not None and files.get(rel) != data:
                    path = self.out / rel
                    tmp = path.with_name(f".{path.name}.listing-{os.getpid()}")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._write_slowly(tmp, data)
                    staged[rel] = tmp, plan.digests.get(rel) or file_digest(data)
            with self.write_lock:
                if generation != self.generation or self.stopping:
                    return
                written = self._write(update, staged)
                self.fragments, self.listed = fragments, generation
        finally:
            for tmp, _ in staged.values():
                tmp.unlink(missing_ok=True)
        if written:
            self.changed(written)

    def _write_slowly(self, path: Path, data: bytes) -> None:
        """Write a file a megabyte at a time, stopping while an edit is applied: the disk
        writing claims.json (150 MB at 10,000 claims) held an edit's three small files up
        to a second."""
        view, step = memoryview(data), 1 << 20
        with open(path, "wb") as handle:
            for start in range(0, len(view), step):
                self.unhurried.wait()
                handle.write(view[start : start + step])

    def _index(self) -> None:
        """Index the site as it is now and swap the new index in."""
        with self.write_lock:
            generation = self.generation
            paths = {page.slug: search.page_path(page.slug) for page in self.pages}
            pages = {slug: (self.digests[path], self.files[path]) for slug, path in paths.items()}
        if self.pending.is_set() or self.stopping:
            return  # more changes are coming: index them all at once
        known, self.indexed = self.indexed, {}
        for digest, data in pages.values():
            self.indexed[digest] = known.get(digest) or search.indexed_key(data)
        keys = {slug: self.indexed[digest] for slug, (digest, _) in pages.items()}
        fresh = Path(tempfile.mkdtemp(prefix=".search-", dir=self.out.parent))
        try:
            index = self.out / search.SEARCH_DIR
            search.index_site(
                self.out,
                keys,
                fresh / search.SEARCH_DIR,
                previous=index,
                started=self._indexing,
                nice=True,  # the cores go to an edit first, as the interpreter does
            )
            with self.write_lock:
                if generation != self.generation:
                    return
                if not index.exists():
                    os.rename(fresh / search.SEARCH_DIR, index)
                elif not _exchange(fresh / search.SEARCH_DIR, index):
                    shutil.rmtree(index)
                    os.rename(fresh / search.SEARCH_DIR, index)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)


def _settle() -> None:
    """Collect the garbage of a build or a listings pass now, in the thread that made it,
    and exempt what remains from later collections. A collection is triggered by whichever
    thread allocates next; at 10,000 claims one over everything took 1.5 s, and landing
    in an edit, it delayed its page by as much. Frozen objects are still freed when no
    longer referenced; a build's cycles are collected here before they are frozen."""
    gc.collect()
    gc.freeze()


def _replace(path: Path, data: bytes) -> None:
    """Write a file in one step: readers see the old bytes or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
