"""Full-text search: Pagefind indexes the claim pages; the browser queries the index.

Pagefind (the `pagefind[extended]` package ships its binary) reads HTML pages and writes
an index in chunks plus the small script `static/search.js` loads. Its output is
byte-identical for identical pages.

Pagefind cannot update an index page by page, so a large site is indexed in shards: the
claims are split by a hash of their slug into a power of two of shards of at most
`shard_pages()` claims, each its own Pagefind bundle under `pagefind/NN/`, and the
browser merges them (Pagefind's `mergeIndex`). A build re-indexes only the shards whose
pages changed and hard-links the others from the previous index. Up to that size a site
has one shard, written straight into `pagefind/`; an empty shard has no bundle.
`pagefind/shards.json` lists the bundles (search.js reads it first) and each one's key: a
hash of its pages."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

from .parallel import cores
from .problems import env_int
from .written import untouched, written_at

SEARCH_DIR = "pagefind"
"""Where the index goes, inside the built site."""
SHARDS_FILE = "shards.json"
"""In the index: its bundles, and the key of the pages each one holds."""

Started = Callable[[subprocess.Popen[str]], None]


class SearchError(Exception):
    """The search index could not be built; the message says why."""


def shard_pages() -> int:
    """The most claims one shard holds (CLAIMPRESS_SEARCH_SHARD_PAGES overrides 1000)."""
    return max(1, env_int("CLAIMPRESS_SEARCH_SHARD_PAGES", 1000))


def shards(slugs: Sequence[str]) -> list[list[str]]:
    """The claims of each shard: a power of two of shards, each claim in the one its
    slug's hash picks, so most claims keep their shard as the site grows."""
    count = 1
    while count * shard_pages() < len(slugs):
        count *= 2
    split: list[list[str]] = [[] for _ in range(count)]
    for slug in slugs:
        digest = hashlib.blake2b(slug.encode(), digest_size=4).digest()
        split[int.from_bytes(digest, "big") % count].append(slug)
    return split


def page_path(slug: str) -> str:
    """The claim page that is indexed, relative to the site."""
    return f"claims/{slug}/index.html"


def index_site(
    folder: Path,
    slugs: Sequence[str],
    digests: Mapping[str, str],
    output: Path,
    *,
    previous: Path | None = None,
    started: Started | None = None,
    nice: bool = False,
    ahead: Ahead | None = None,
) -> None:
    """Index the claim pages `slugs` of the site in `folder` into `output` (inside a
    temporary folder that also takes the indexers' scratch folders), reusing the shards
    of the index at `previous` whose pages are unchanged; `digests` gives each page
    file's digest. `output` may hold an older index of ours (a spare build folder's): its
    shards that are still right and untouched since are kept in place, and everything
    else in it goes. `started` is told each indexer that runs (`stop` ends it). `nice`
    indexers run at a lower priority than this process (`serve`, which applies edits
    meanwhile). A shard that `ahead` indexed already, from the same pages, is moved
    into place."""
    bundles = _bundles(slugs, digests)
    names = [name for name, _, _ in bundles]
    keys = [key for _, key, _ in bundles]
    before = _shards(previous) if previous is not None else {}
    held = _held(output, dict(zip(names, keys, strict=True)))
    output.mkdir(exist_ok=True)
    todo = []
    for name, key, part in bundles:
        if name in held:
            continue
        if previous is not None and before.get(name) == key and _link(previous, output, name):
            continue
        if ahead is not None and ahead.take(name, key, output / name):
            continue
        todo.append((part, output / name))
    _run_all(folder, todo, output.parent, started, nice)
    (output / SHARDS_FILE).unlink(missing_ok=True)  # the older index's, if it was kept
    (output / SHARDS_FILE).write_text(
        json.dumps({"bundles": names, "keys": keys}, indent=1) + "\n", "utf-8"
    )


def _bundles(slugs: Sequence[str], digests: Mapping[str, str]) -> list[tuple[str, str, list[str]]]:
    """Each bundle of the index of the claim pages `slugs` (whose files have `digests`):
    its name, its key (a hash of its pages and Pagefind's version) and its claims."""
    split = shards(sorted(slugs))
    named = [("" if len(split) == 1 else f"{i:02}/", part) for i, part in enumerate(split) if part]
    pagefind = version("pagefind")
    return [
        (
            name,
            hashlib.sha256(
                json.dumps([pagefind, [[s, digests[page_path(s)]] for s in part]]).encode()
            ).hexdigest(),
            part,
        )
        for name, part in named
    ]


class Ahead:
    """Shards indexed ahead of the site being written: a build starts them from the claim
    pages in memory once the claims are rendered, and Pagefind runs while the build makes
    the listing pages (one core's work) and writes the site; `index_site` then moves each
    into place instead of indexing it. Best effort: a shard that failed here, or is not
    the one wanted, is indexed there as before (and fails there, if it fails again).

    Used as a context manager; everything it made is in `scratch`, a folder of the
    caller's, which it leaves for the caller to delete."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.done: dict[str, tuple[str, Path]] = {}
        """Each shard indexed: its key, and where its bundle is."""
        self.running: set[subprocess.Popen[str]] = set()
        self.lock = threading.Lock()
        self.stopping = False
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.stopping = True
            for process in self.running:  # its thread sees it fail, and gives up
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        for thread in self.threads:
            thread.join()

    def start(
        self,
        pages: Mapping[str, Callable[[], bytes]],
        digests: Mapping[str, str],
        skip: Sequence[Path],
    ) -> None:
        """Index in the background the first shards of the claim pages `pages` (each
        slug's page bytes, and their `digests`) that no index at `skip` holds with the same
        key, as many as there are cores.

        The pages are written here, in the caller's thread (written in the background, each
        file would wait its turn for the interpreter). That is the cost: writing them all
        at 10,000 claims (as a build from nothing would) took as long as it saved, so the
        rest is left to `index_site`."""
        held = [_shards(index) for index in skip]
        wanted = [
            (name, key, part)
            for name, key, part in _bundles(list(pages), digests)
            if not any(h.get(name) == key for h in held)
        ]
        for name, key, part in wanted[: cores()]:
            try:
                site = Path(tempfile.mkdtemp(prefix="pages-", dir=self.scratch))
                for slug in part:
                    (site / page_path(slug)).parent.mkdir(parents=True)
                    (site / page_path(slug)).write_bytes(pages[slug]())
            except OSError:  # a full disk, the scratch folder deleted: left to `index_site`
                return
            shard = (name, key, site)
            self.threads.append(threading.Thread(target=self._one, args=(shard,), daemon=True))
            self.threads[-1].start()

    def _one(self, shard: tuple[str, str, Path]) -> None:
        name, key, site = shard
        try:
            # Made by Pagefind, as in `index_site`: a folder of mkdtemp's would be
            # readable by its owner only, once moved into the site.
            out = self.scratch / f"index-{site.name}"
            with self.lock:
                if self.stopping:
                    return
                process = _start(site, out, None, False)
                self.running.add(process)
            try:
                _finish(process)
            finally:
                with self.lock:
                    self.running.discard(process)
        except Exception:  # indexed again by `index_site`, which reports it
            return
        self.done[name] = (key, out)

    def take(self, name: str, key: str, bundle: Path) -> bool:
        """Move the shard `name` into place at `bundle` if it was indexed with `key`."""
        for thread in self.threads:
            thread.join()
        done = self.done.pop(name, None)
        if done is None or done[0] != key:
            return False
        shutil.rmtree(bundle, ignore_errors=True)
        try:
            os.rename(done[1], bundle)
        except OSError:  # gone from the scratch folder: indexed with the site
            return False
        return True


def _shards(index: Path) -> dict[str, str]:
    """The bundles of an earlier index and their keys, or nothing when it has none."""
    try:
        data = json.loads((index / SHARDS_FILE).read_text("utf-8"))
        return dict(zip(data["bundles"], data["keys"], strict=True))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _held(output: Path, wanted: Mapping[str, str]) -> set[str]:
    """Of the bundles `wanted` (by name, with their keys), those the index already at
    `output` holds with the same key and untouched since it was written; everything else
    in `output` is deleted."""
    if output.is_symlink() or not output.is_dir():
        with contextlib.suppress(FileNotFoundError):
            output.unlink()
        return set()
    held = _shards(output)
    since = written_at(output / SHARDS_FILE)
    kept = {
        name
        for name, key in wanted.items()
        if held.get(name) == key and _untouched(output / name, since, top=not name)
    }
    if "" in kept:
        return kept  # one bundle, the whole index: as it was, apart from the list of shards
    with os.scandir(output) as entries:
        for entry in [e for e in entries if e.name + "/" not in kept]:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    return kept


def _untouched(bundle: Path, since: int, *, top: bool) -> bool:
    """Whether every file under `bundle` is a regular file not written after `since`
    (ns), and nothing in it is a symlink; at the `top` of an index, its list of shards
    aside."""
    if bundle.is_symlink() or not bundle.is_dir():
        return False
    for folder, dirs, files in os.walk(bundle):
        for name in dirs + files:
            if top and folder == str(bundle) and name == SHARDS_FILE:
                continue
            path = os.path.join(folder, name)
            if os.path.islink(path) or not (
                os.path.isdir(path) if name in dirs else untouched(path, since)
            ):
                return False
    return True


def _link(previous: Path, output: Path, name: str) -> bool:
    """Hard-link one bundle of the previous index into the new one; False (and nothing
    linked) when any of its files is not a regular file or was changed after that index
    was written (`_untouched`)."""
    if not _untouched(previous / name, written_at(previous / SHARDS_FILE), top=not name):
        return False
    try:
        shutil.copytree(
            previous / name,
            output / name,
            copy_function=lambda src, dst: os.link(src, dst, follow_symlinks=False),
            ignore=lambda folder, _: [SHARDS_FILE] if Path(folder) == previous else [],
            dirs_exist_ok=True,
        )
    except OSError:
        shutil.rmtree(output / name, ignore_errors=True)
        (output / name).mkdir(exist_ok=True)
        return False
    return True


def _run_all(
    folder: Path,
    todo: list[tuple[list[str], Path]],
    scratch: Path,
    started: Started | None,
    nice: bool,
) -> None:
    """Index each shard (its claims, into its folder), as many at once as there are cores."""
    running: list[tuple[subprocess.Popen[str], Path]] = []

    def finish_first() -> None:
        """Wait for the oldest indexer, no longer among those to stop, and delete its
        links whatever it did."""
        process, site = running.pop(0)
        try:
            _finish(process)
        finally:
            shutil.rmtree(site, ignore_errors=True)

    try:
        for part, out in todo:
            if len(running) >= cores():
                finish_first()
            site = _linked(folder, part, scratch)
            try:
                running.append((_start(site, out, started, nice), site))
            except BaseException:
                shutil.rmtree(site, ignore_errors=True)
                raise
        while running:
            finish_first()
    finally:
        for process, site in running:
            stop(process)
            shutil.rmtree(site, ignore_errors=True)


def _pagefind() -> list[str]:
    """The command that runs Pagefind: its binary, not the Python wrapper that starts it
    (a Python start-up per shard)."""
    try:
        from pagefind_bin_extended import get_executable  # type: ignore[import-untyped]
    except ImportError:
        return [sys.executable, "-m", "pagefind"]
    return [str(get_executable())]


def _linked(folder: Path, slugs: list[str], scratch: Path) -> Path:
    """A folder of hard links to the claim pages `slugs` of the site in `folder`, made in
    `scratch` (the caller's temporary folder, which a killed run does not outlive)."""
    site = Path(tempfile.mkdtemp(prefix=".search-pages-", dir=scratch))
    try:
        for slug in slugs:
            (site / page_path(slug)).parent.mkdir(parents=True)
            os.link(folder / page_path(slug), site / page_path(slug))
    except OSError as exc:
        shutil.rmtree(site, ignore_errors=True)
        raise SearchError(f"cannot run Pagefind to build the search index: {exc}") from None
    return site


def _start(site: Path, out: Path, started: Started | None, nice: bool) -> subprocess.Popen[str]:
    """Start Pagefind on the pages in `site`, writing its bundle to `out`."""
    lower = ["nice", "-n", "10"] if nice and shutil.which("nice") else []
    command = [*lower, *_pagefind(), "--site", str(site), "--silent"]
    command += ["--output-path", str(out)]
    try:
        # Its own process group: `stop` ends it and anything it starts.
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise SearchError(f"cannot run Pagefind to build the search index: {exc}") from None
    if started is not None:
        started(process)
    return process


def _finish(process: subprocess.Popen[str]) -> None:
    """Wait for one indexer; a failure fails the index."""
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired as exc:
        stop(process)
        raise SearchError(f"cannot run Pagefind to build the search index: {exc}") from None
    except BaseException:  # Ctrl-C
        stop(process)
        raise
    if process.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()
        raise SearchError(
            "Pagefind failed to build the search index"
            + (f": {detail[-1]}" if detail else f" (exit {process.returncode})")
            + "; reinstall with `pip install 'pagefind[extended]'`"
        )


def stop(process: subprocess.Popen[str]) -> None:
    """End an indexer that `index_site` started, and every process it started, and close
    its pipes."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
