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
hash of what Pagefind reads of its pages (`indexed_key`), so a theme edit outside the part
it indexes re-indexes nothing."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import lz4.block  # type: ignore[import-untyped]

from .parallel import cores
from .problems import env_int
from .written import written_at

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


_BODY = b"data-pagefind-body"
_READ_OUTSIDE = re.compile(
    rb"<html\b[^>]*>|<title\b.*?(?:</title\s*>|\Z)|<h1\b.*?(?:</h1\s*>|\Z)|<img\b[^>]*>"
    rb"|<(?:script|link)\b[^>]*_pagefind[^>]*>",
    re.DOTALL,
)
"""In a page in ASCII lower case, outside its `data-pagefind-body` element, all that
Pagefind reads there: the language, the title and the first heading (the result's title when
the body has no `h1`), the first image after them, and links to an old index (a warning)."""


_OPENED = re.compile(rb"<([a-z][a-z0-9-]*)(?:\s[^>]*)?\s\Z")
"""A start tag up to one of its attributes."""
_AFTER_NAME = {b" ", b"\t", b"\n", b"\r", b"\f", b"=", b">", b"/"}


def indexed_key(page: bytes) -> str:
    """A hash of what Pagefind reads of a claim page (`indexed_part`)."""
    return hashlib.sha256(indexed_part(page)).hexdigest()


def indexed_part(page: bytes) -> bytes:
    """What Pagefind reads of a page: its `data-pagefind-body` element whole, and outside it
    what `_READ_OUTSIDE` finds, in order. The page whole when that cannot be told for sure:
    no such element or several, a `data-pagefind-` attribute outside it (meta, filters,
    ignores), or no closing tag of its name after it. Pagefind makes the same index of a
    page and of this part of it (a test checks), so pages with the same part have the same
    index; keeping more than Pagefind reads only re-indexes a shard when it need not.

    The element is taken to end at the last closing tag of its name in the page: past its
    real end when the same element follows (a footer's `div` after a body `div`), which is
    more, never less."""
    low = page.lower()  # (ASCII only: the same length, the same offsets)
    start = low.find(_BODY)
    tag = low.rfind(b"<", 0, start) if start >= 0 else -1
    opened = low[tag:start] if tag >= 0 else b""  # the element's tag, up to the attribute
    quoted = opened.count(b'"') % 2 or opened.count(b"'") % 2  # in an attribute's value
    follows = low[start + len(_BODY) : start + len(_BODY) + 1]  # not the end of a longer name
    name = None if quoted or follows not in _AFTER_NAME else _OPENED.match(opened)
    close = low.rfind(b"</" + name[1], start) if name else -1
    end = low.find(b">", close) + 1 if close >= 0 else 0
    if (
        not end
        or low.find(_BODY, start + 1) >= 0
        or b"data-pagefind" in low[:tag]
        or b"data-pagefind" in low[end:]
    ):
        return page
    before = [page[m.start() : m.end()] for m in _READ_OUTSIDE.finditer(low, 0, tag)]
    after = [page[m.start() : m.end()] for m in _READ_OUTSIDE.finditer(low, end)]
    return b"".join([*before, page[tag:end], *after])


def index_site(
    folder: Path,
    keys: Mapping[str, str],
    output: Path,
    *,
    previous: Path | None = None,
    started: Started | None = None,
    nice: bool = False,
    ahead: Ahead | None = None,
) -> None:
    """Index the claim pages of the site in `folder` into `output` (inside a temporary
    folder that also takes the indexers' scratch folders), reusing the shards of the index
    at `previous` whose pages are unchanged (`keys`: by slug, each claim page's
    `indexed_key`). `output` may hold an older index of ours (a spare build folder's): its
    shards that are still right and untouched since are kept in place, and everything
    else in it goes. `started` is told each indexer that runs (`stop` ends it). `nice`
    indexers run at a lower priority than this process (`serve`, which applies edits
    meanwhile). The shards `ahead` has started are left to it, and moved into place
    when it is done with them (indexed here if it failed)."""
    bundles = _bundles(keys)
    names = [name for name, _, _ in bundles]
    shard_keys = [key for _, key, _ in bundles]
    before = _shards(previous) if previous is not None else {}
    held = _held(output, dict(zip(names, shard_keys, strict=True)))
    output.mkdir(exist_ok=True)
    theirs = ahead.theirs() if ahead is not None else set()
    todo, later = [], []
    for name, key, part in bundles:
        if name in held:
            continue
        if previous is not None and before.get(name) == key and _link(previous, output, name):
            continue
        if name in theirs:
            later.append((name, key, part))
        else:
            todo.append((part, output / name))
    _run_all(folder, todo, output.parent, started, nice, ahead.running if ahead else lambda: 0)
    if ahead is not None:  # the shards indexed ahead, or else now
        todo = [(p, output / n) for n, k, p in later if not ahead.take(n, k, output / n)]
        _run_all(folder, todo, output.parent, started, nice)
    (output / SHARDS_FILE).unlink(missing_ok=True)  # the older index's, if it was kept
    (output / SHARDS_FILE).write_text(
        json.dumps({"bundles": names, "keys": shard_keys}, indent=1) + "\n", "utf-8"
    )


def _bundles(keys: Mapping[str, str]) -> list[tuple[str, str, list[str]]]:
    """Each bundle of the index of the claim pages `keys` names (by slug, each page's
    `indexed_key`): its name, its key (a hash of Pagefind's version and its pages' keys)
    and its claims."""
    split = shards(sorted(keys))
    named = [("" if len(split) == 1 else f"{i:02}/", part) for i, part in enumerate(split) if part]
    pagefind = version("pagefind")
    return [
        (
            name,
            hashlib.sha256(
                json.dumps([pagefind, [[s, keys[s]] for s in part]]).encode()
            ).hexdigest(),
            part,
        )
        for name, part in named
    ]


class Ahead:
    """Shards indexed ahead of the site being written, by a process of their own: once the
    claims are rendered, a build hands it the claim pages that changed (compressed, in one
    file) and goes on to make the listing pages and write the site, one core's work. The
    process writes one shard's pages to a scratch folder and runs Pagefind on them, then
    the next shard's, on the other core. The build's writer hard-links the pages written
    so far into the site rather than writing them again (so they are not deleted with the
    scratch folder either: on a file system that discards freed blocks, such as this VM's,
    deleting a file's data slows every write for a while). `index_site` then claims the
    shards the process has not started, indexes those itself, and moves the others'
    bundles into place (waiting for the one it is on). Best effort: a shard that failed
    there, or whose bundle is gone, is indexed with the site.

    Each shard is claimed by whoever starts it first, the process or `index_site`, with a
    file made only if it is not there (`_claim`), so neither indexes one the other has.

    Used as a context manager (whose end stops the process); everything it made is in
    `scratch`, a folder of the caller's, which it leaves for the caller to delete."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.process: subprocess.Popen[bytes] | None = None
        self.shards: dict[str, tuple[str, list[str]]] = {}
        """Each shard handed to the process: its key and its claims."""

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the process and delete the pages it wrote: once linked into the site, their
        status changes as they go (`site.record_inputs` must come after)."""
        if self.process is not None and self.process.returncode is None:  # never reaped
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # and its Pagefind
            self.process.wait()
        for name in self.shards:
            shutil.rmtree(self.scratch / f"pages-{_tag(name)}", ignore_errors=True)

    def start(
        self,
        pages: Mapping[str, Callable[[], bytes | str]],
        keys: Mapping[str, str],
        skip: Sequence[Path],
    ) -> None:
        """Start indexing in the background the shards of the claim pages `pages` (by slug;
        `keys` has their `indexed_key`) that no index at `skip` holds with the same key. Each
        slug's page is given LZ4-compressed (`lz4.block`, with its size), or as the path of an
        identical file to hard-link."""
        held = [_shards(index) for index in skip]
        wanted = [
            (name, key, part)
            for name, key, part in _bundles(keys)
            if not any(h.get(name) == key for h in held)
        ]
        if not wanted:
            return
        try:
            with (self.scratch / "pages.pickle").open("wb") as file:
                shards = [(name, [(s, pages[s]()) for s in part]) for name, _, part in wanted]
                pickle.dump((os.getpid(), _pagefind(), shards), file, protocol=5)
            self.process = subprocess.Popen(
                [
                    *_tied(),
                    sys.executable,
                    "-c",
                    "from claimpress.search import ahead; ahead()",
                    str(self.scratch),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, which `__exit__` stops
            )
        except OSError:  # a full disk, the scratch folder deleted: left to `index_site`
            return
        self.shards = {name: (key, part) for name, key, part in wanted}

    def running(self) -> int:
        """1 while the process runs, else 0."""
        return int(self.process is not None and self.process.poll() is None)

    def written(self) -> dict[str, str]:
        """The claim pages the process has written so far (each shard's, once all of it
        is), by path in the site: where each one is."""
        written: dict[str, str] = {}
        for name, (_, part) in self.shards.items():
            site = f"{self.scratch}/pages-{_tag(name)}/"
            if os.path.isdir(site):
                written.update((page_path(s), site + page_path(s)) for s in part)
        return written

    def theirs(self) -> set[str]:
        """The shards the process has started: every other one it was handed is claimed
        for `index_site`, so it starts no more."""
        started = set()
        for name in self.shards:
            try:
                _claim(self.scratch, name)
            except FileExistsError:
                started.add(name)
            except OSError:  # the scratch folder gone: nothing of it to take
                pass
        return started

    def take(self, name: str, key: str, bundle: Path) -> bool:
        """Move the shard `name` into place at `bundle` if the process indexed it with
        `key`, once it is done."""
        if self.process is None or self.shards.get(name, ("",))[0] != key:
            return False
        self.process.wait()
        shutil.rmtree(bundle, ignore_errors=True)
        try:
            os.rename(self.scratch / f"index-{_tag(name)}", bundle)
        except OSError:  # it failed, or its bundle is gone: indexed with the site
            return False
        return True


def ahead() -> None:
    """The process `Ahead` starts, in its scratch folder (the first argument): write the
    pages of each shard it was handed and index them, in turn, until `index_site` claims
    the next one or the build that started it is gone."""
    scratch = Path(sys.argv[1])
    with (scratch / "pages.pickle").open("rb") as file:
        build, pagefind, shards = pickle.load(file)
    shards.reverse()
    while shards and os.getppid() == build:  # a build killed outright wants no more
        name, pages = shards.pop()  # its pages let go of once written
        tag = _tag(name)
        try:
            _claim(scratch, name)
        except OSError:  # claimed by `index_site` (or the folder is gone): it does the rest
            return
        site, out = scratch / f"pages-{tag}", scratch / f"index-{tag}"
        try:
            part = Path(f"{site}.part")
            for slug, page in pages:
                (part / page_path(slug)).parent.mkdir(parents=True)
                if isinstance(page, str):
                    os.link(page, part / page_path(slug), follow_symlinks=False)
                else:
                    (part / page_path(slug)).write_bytes(lz4.block.decompress(page))
            del pages
            os.rename(part, site)  # whole: the build's writer may link its pages from here on
            # Written by Pagefind, as in `index_site`: a folder of mkdtemp's would be
            # readable by its owner only, once moved into the site.
            done = subprocess.run(
                _command(pagefind, site, Path(f"{out}.part")), capture_output=True, timeout=600
            )
            if done.returncode == 0:
                os.rename(f"{out}.part", out)
        except (OSError, subprocess.SubprocessError):
            pass  # indexed with the site, which reports what is wrong


def _claim(scratch: Path, name: str) -> None:
    """Claim the shard `name`: FileExistsError when it was claimed before."""
    os.close(
        os.open(scratch / f"claimed-{_tag(name)}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    )


def _tag(name: str) -> str:
    """A shard's name as a file name: `03/` as `03`, the only one (``) as `all`."""
    return name.rstrip("/") or "all"


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
    aside. (One `lstat` a file: a shard holds a file for each of its pages.)"""
    if bundle.is_symlink() or not bundle.is_dir():
        return False
    folders = [str(bundle)]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif not (top and folder == str(bundle) and entry.name == SHARDS_FILE) and not (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime_ns <= since
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
    others: Callable[[], int] = lambda: 0,
) -> None:
    """Index each shard (its claims, into its folder), as many at once as there are cores,
    counting the `others()` running elsewhere (each holds its shard in memory)."""
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
            if len(running) >= max(1, cores() - others()):
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


def _command(pagefind: list[str], site: Path, out: Path) -> list[str]:
    """The command line that runs `pagefind` on the pages in `site`, writing its bundle
    to `out`, tied to the thread that starts it (which waits for it)."""
    return [*_tied(), *pagefind, "--site", str(site), "--silent", "--output-path", str(out)]


@functools.cache
def _tied() -> list[str]:
    """What to start a command with to have it killed when the thread that starts it
    ends, where util-linux's `setpriv` is there to see to it (as `parallel._die_with` for
    forked workers): a build killed outright would otherwise leave its indexers writing
    into a scratch folder that the next build deletes. Tried once first: another
    `setpriv` (BusyBox's) knows no `--pdeathsig`."""
    tied = ["setpriv", "--pdeathsig", "KILL"]
    try:
        works = subprocess.run([*tied, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        works = False
    return tied if works else []


def _start(site: Path, out: Path, started: Started | None, nice: bool) -> subprocess.Popen[str]:
    """Start Pagefind on the pages in `site`, writing its bundle to `out`."""
    lower = ["nice", "-n", "10"] if nice and shutil.which("nice") else []
    command = [*lower, *_command(_pagefind(), site, out)]
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
