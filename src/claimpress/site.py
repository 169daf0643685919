"""Plan every output file of the site, then write `build/` atomically.

The whole site is rendered in memory first (a failed render writes nothing), written
to a temporary sibling folder, and swapped in with one rename, so readers and the
previous build never see a half-written site.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import gc
import hashlib
import hmac
import itertools
import json
import os
import pickle
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import lz4.block  # type: ignore[import-untyped]

from . import listing, parallel, prose, search
from .cache import CACHE_DIR, Pack, code_digest, signature
from .listing import Pager
from .parallel import fork_map, forked, gc_paused
from .problems import OUTSIDE, OutputError, Problem, ProblemsFound
from .project import Project, display_path
from .render import (
    Fragment,
    FragmentKey,
    FragmentTable,
    Listed,
    Renderer,
    default_theme,
    inside,
    theme_digest,
    theme_dirs,
    theme_roots,
)
from .resolve import Page, detached, loaded, open_questions
from .written import untouched, written_at
from .yamltree import decode

T = TypeVar("T")

MARKER = ".claimpress-build"
"""Present in every folder claimpress writes; it deletes no folder without it."""
MANIFEST = ".claimpress-manifest"
"""In a build: the digest of each file, so the next build rewrites only what changed."""


class Packed:
    """A planned file's bytes, LZ4-compressed until written: a build holds every claim's
    files at once (330 MB at 10,000 claims, under a third of that packed), and a rebuild
    writes few of them."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        """`lz4.block.compress(data)`: the size of `data`, then `data` compressed."""

    def __len__(self) -> int:
        return int.from_bytes(self.blob[:4], "little")

    def __bytes__(self) -> bytes:
        data: bytes = lz4.block.decompress(self.blob)
        return data


class Stored:
    """A planned file's bytes left in the cache until used: a rebuild writes or indexes few
    claims' pages and text files, two thirds of what is kept of each claim, unread."""

    __slots__ = ("entry", "index", "size")

    def __init__(self, size: int, entry: Callable[[], Sequence[bytes]], index: int) -> None:
        self.size = size
        self.entry = entry
        """The cache entry holding the file, read: `Packed` blobs, the file's at `index`."""
        self.index = index

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return bytes(self.packed())

    def packed(self) -> Packed:
        """The file's bytes, compressed."""
        return Packed(self.entry()[self.index])


class Joined:
    """A planned file's bytes in parts, joined only if asked: claims.json (150 MB at 10,000
    claims), which the writer hashes and writes part by part."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return sum(map(len, self.parts))

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


class Plan:
    """The site as a mapping of relative paths to bytes; no path may be claimed twice."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.packed: dict[str, Packed | Stored | Joined] = {}
        """Planned files kept compressed, in the cache or in parts (a build's claim files,
        listing pages and claims.json; never a `live` plan's)."""
        self.owners: dict[str, str] = {}
        self.pages: list[Page] = []
        """The claims on the site, as `plan_site` rendered them."""
        self.keys: list[str] = []
        """How `fragments` know each of `pages` (a key that changes with anything of it)."""
        self.fragments: dict[FragmentKey, Fragment] = {}
        """For `serve` (a `live` plan) only: the listing fragments (`Renderer.fragment`)."""
        self.digests: dict[str, str] = {}
        """The digests (`file_digest`) of the planned files whose digest is known already."""
        self.indexed: dict[str, str] = {}
        """By slug: what the search index reads of the claim's page (`search.indexed_key`)."""
        self.listed: dict[FragmentKey, str] = {}
        """The digest of each listing page, by its fragment key (`Renderer._listing`): what
        the next build knows the pages it reuses whole by, unread."""

    def __len__(self) -> int:
        return len(self.files) + len(self.packed)

    def data(self, path: str) -> bytes:
        """The bytes planned at `path`."""
        packed = self.packed.get(path)
        return bytes(packed) if packed is not None else self.files[path]

    def items(self) -> list[tuple[str, bytes | Packed | Stored | Joined]]:
        """Every planned file and its bytes (or `Packed`, `Stored` or `Joined` bytes), by
        path."""
        return sorted([*self.files.items(), *self.packed.items()])

    def add(self, path: str, data: str | bytes | Packed | Stored | Joined, owner: str) -> None:
        """Claim `path` for `owner`; two outputs on one path (case aside) is an error."""
        # As PurePosixPath would tell (`is_absolute`, `..` among `parts`), at a tenth of
        # the cost: a build adds 30,000 paths at 10,000 claims.
        if path.startswith("/") or ".." in path.split("/") or "\0" in path:
            raise OutputError(f"{owner}: refusing unsafe output path {path!r}")
        folded = path.casefold()
        if folded in self.owners:
            raise OutputError(f"{owner} and {self.owners[folded]} both write {path}")
        self.owners[folded] = owner
        if isinstance(data, (Packed, Stored, Joined)):
            self.packed[path] = data
        else:
            self.files[path] = data.encode("utf-8") if isinstance(data, str) else data


@dataclass(frozen=True)
class BuildReport:
    """What a build wrote."""

    out: Path
    claims: int
    files: int


def plan_site(
    project: Project,
    *,
    drafts: bool = False,
    live: bool = False,
    rendered: Callable[[Plan, list[Page]], None] | None = None,
) -> Plan:
    """Render every output of the site in memory; `live` for `serve` (its 404 page links from
    `/`, its files are kept uncompressed). `rendered` is told the claims' pages as soon as
    their files are planned, before the listing pages are made."""
    renderer = Renderer(project.root, project.site, live=live)
    plan = Plan()
    pages = project.published(drafts=drafts)
    settings = project.site.model_dump_json().encode()
    # Claims are rendered from claim.html and claim.txt, and what they use of the theme;
    # each listing fragment's key has the digest of its own template (Renderer.fragment).
    context = [renderer.templates_digest("claim.html", "claim.txt").encode(), settings]
    # One cache for `build` and `serve`, whose claim files are the same: the first `serve`
    # after a build renders no claim again.
    pack = Pack(project.root, context, "rendered")
    listed = Pack(project.root, [settings], "listed")
    # The one-file-per-claim caches of earlier versions, and `serve`'s own.
    for old in ("pages", "pages-live", "rendered-live", "listed-live"):
        shutil.rmtree(project.root / CACHE_DIR / old, ignore_errors=True)
    claim_keys = {s.rel: s.key for s in project.summaries}

    def identity(page: Page) -> str:
        """What changes whenever anything of the page changes, the theme aside: how the
        listing fragments know it (`Renderer.page_keys`)."""
        facts = page.facts
        if facts.rel in claim_keys and project.as_is(page.slug, drafts=drafts):
            # A page is made from its claim's bytes in the project's context, which the
            # claim's own cache key covers, plus the follow-ups linked across claims.
            return listed.key(claim_keys[facts.rel], repr(page.follow_ups), facts.summary)
        # Else (the approved version of a claim edited since, `Project.approved`): all of it.
        fields_ = [getattr(page, f.name) for f in fields(page) if f.name != "file"]
        return listed.key(page.file.rel, page.file.digest, repr(fields_))

    def render(page: Page) -> tuple[bytes, bytes]:
        """A claim's files, kept in two entries: its JSON (which claims.json joins) with the
        sizes and digests of all three (which the writer need not work out again) and the
        key of what the search index reads of its page; then its page and text, which a
        rebuild reads only to write them. Each file compressed (`Packed`: a quarter of the
        size to keep in memory, on disk and in the map)."""
        files = claim_outputs(renderer, detached(page))
        html, text, data = (lz4.block.compress(f) for f in files)
        digests = tuple(file_digest(f) for f in files)
        head = (data, tuple(map(len, files)), digests, search.indexed_key(files[0]))
        return pickle.dumps(head, protocol=5), pickle.dumps((html, text), protocol=5)

    last: tuple[str, tuple[bytes, bytes]] | None = None

    def stored(key: str, page: Page) -> tuple[bytes, bytes]:
        """A claim's page and text, compressed, read from the entry `key`; rendered again if
        the entry is not ours. The last entry read is kept: the writer, going by path,
        writes a claim's page and then its text."""
        nonlocal last
        if last is None or last[0] != key:
            blob = pack.get(key, once=True)
            last = key, pickle.loads(blob if blob is not None else render(page)[1])
        return last[1]

    identities = [identity(page) for page in pages]
    renderer.page_keys = {id(p): (p, i) for p, i in zip(pages, identities, strict=True)}
    keys = [pack.key(i) for i in identities]
    bodies = [pack.key(i, "page and text") for i in identities]
    missing = [i for i, k in enumerate(keys) if not (pack.has(k) and pack.has(bodies[i]))]
    # Pages the previous build did not list are listed anew too: loaded here once, before
    # forking. The others (a claim template edited) are loaded by the workers, and freed.
    listed_key = listed.key("identities")
    blob = listed.get(listed_key)
    known: set[str] = pickle.loads(blob) if blob is not None else set()
    if known != (listed_now := set(identities)):
        listed.put(listed_key, pickle.dumps(listed_now, protocol=5))
    with (
        kept_fragments(renderer, listed, plan) as was_listed,
        sources_index(renderer, project, pages, drafts=drafts, known=was_listed) as sources,
    ):
        fresh = [loaded(pages[i]) for i in missing if identities[i] not in known]
        if fresh:
            gc.freeze()  # out of the collector's sight, which would copy them into every worker
        for i, made in zip(missing, fork_map(render, [pages[i] for i in missing]), strict=True):
            pack.put(keys[i], made[0])
            pack.put(bodies[i], made[1])
        pack.save()  # the new entries are read back from the pack's map, not kept twice
        for page, k, body in zip(pages, keys, bodies, strict=True):
            blob = pack.get(k, once=True)
            if blob is None:  # an entry whose signature is not ours: replaced
                blob, again = render(page)
                pack.put(k, blob)
                pack.put(body, again)
            data, sizes, digests, plan.indexed[page.slug] = pickle.loads(blob)
            # Served from memory by `serve`; else unpacked only when written (or listed).
            files: list[bytes | Packed | Stored]
            if live:
                files = [bytes(Packed(p)) for p in (*stored(body, page), data)]
            else:
                entry = partial(stored, body, page)
                files = [Stored(sizes[0], entry, 0), Stored(sizes[1], entry, 1), Packed(data)]
            renderer.known_json[id(page)] = (page, files[2])
            owner = project.show(page.facts.rel)
            for rel, file, digest in zip(claim_paths(page.slug), files, digests, strict=True):
                plan.add(rel, file, owner)
                plan.digests[rel] = digest
        pack.save()
        if rendered is not None:
            rendered(plan, pages)
        plan_listings(
            plan, renderer, project, pages, drafts=drafts, known=was_listed, sources=sources
        )
        if live:
            plan.fragments = renderer.used_fragments()
    for rel, path in static_files(project.root):
        plan.add("static/" + rel, path.read_bytes(), str(path))
    plan.pages, plan.keys = pages, identities
    return plan


@contextmanager
def kept_fragments(renderer: Renderer, pack: Pack, plan: Plan) -> Iterator[dict[FragmentKey, str]]:
    """Let `renderer` reuse the listing fragments of the previous build from `pack`, and
    give the digests of its listing pages (`Plan.listed`); keep the fragments `renderer`
    used and the digests of `plan`'s listing pages for the next.

    They are kept in two parts: a table of them all (`FragmentTable`), and the few made
    since it was written (at 10,000 claims the table is 80,000 fragments, 55 MB: writing it
    again cost a rebuild after one edit about 1.6 s). The table is written again when the
    newer fragments number more than a tenth of those used."""
    key = pack.key("fragments")
    blob = pack.get(key)
    head: tuple[str, dict[FragmentKey, Fragment]] = (
        pickle.loads(blob) if blob is not None else ("", {})
    )
    table_key, newer = head
    blob = pack.get(table_key, once=True) if table_key else None
    table = FragmentTable(blob or b"", newer)
    renderer.fragments = table
    digests_key = pack.key("listing digests")
    stored = pack.get(digests_key)
    known: dict[FragmentKey, str] = pickle.loads(stored) if stored is not None else {}
    yield known
    if plan.listed != known:
        pack.put(digests_key, pickle.dumps(plan.listed, protocol=5))
    used = renderer.fragments_used
    newer = {k: table[k] if v is None else v for k, v in used.items() if not table.stored(k)}
    if blob is None or len(newer) > len(used) // 10:
        blob = table.encode(used)
        table_key, newer = pack.key("fragments table", blob), {}
        pack.put(table_key, blob)
    if (table_key, newer) != head:
        pack.put(key, pickle.dumps((table_key, newer), protocol=5))
    pack.save()
    renderer.release()


def claim_paths(slug: str) -> tuple[str, str, str]:
    """Where a claim's page, text and JSON go on the site."""
    base = f"claims/{slug}/"
    return base + "index.html", base + "index.txt", base + "index.json"


def claim_outputs(renderer: Renderer, page: Page) -> tuple[bytes, bytes, bytes]:
    """A claim's page, text and JSON, rendered (the files `claim_paths` names)."""
    draft = page.claim.status != "published"
    outputs = renderer.claim_html(page, draft=draft), renderer.claim_text(page)
    html, text, data = (o.encode() for o in (*outputs, renderer.claim_json(page)))
    return html, text, data


ABOUT_FILE = "about.md"
"""The project's about/methodology page, in Markdown, at the project root."""


def read_about(path: Path, root: Path) -> str:
    """The text of about.md, or ProblemsFound saying why it cannot be published."""
    rel = display_path(path)
    if not inside(path, (root.resolve(),)):
        raise ProblemsFound([Problem(rel, 0, 0, "", OUTSIDE)])
    if not path.is_file():
        raise ProblemsFound([Problem(rel, 0, 0, "", "not a regular file")])
    text, bad = decode(path.read_bytes())
    if text is None:
        assert bad is not None
        raise ProblemsFound([Problem(rel, *bad[:2], "", bad[2])])
    return text


SourcesIndex = tuple["Plan", list[tuple[FragmentKey, Fragment | None]]]
"""The sources index's pages, and the fragments they used (`sources_index`)."""


@contextmanager
def sources_index(
    renderer: Renderer,
    project: Project,
    pages: list[Page],
    *,
    drafts: bool,
    known: Mapping[FragmentKey, str] = {},
) -> Iterator[Callable[[], SourcesIndex]]:
    """The pages of the sources index, made from now on, for `plan_listings` (the call
    given returns them): in a build with the fragments of an earlier one, in a forked
    process, on the core a rebuild otherwise leaves idle while it reads the rendered claims
    and makes the other listings (the sources index, 57,000 sources grouped and 1,100 pages
    keyed by the pages citing them at 10,000 claims, was half of the listings' time for an
    edit). Else at that call, in this process: a build from nothing keeps both cores busy
    already (the search index is made ahead) and its fork would copy hundreds of megabytes
    of the process; `serve` makes its listings in a thread of its own; a few claims are
    quicker made than forked."""

    def make() -> SourcesIndex:
        part, before = Plan(), len(renderer.fragments_used)
        entries = listing.source_index(renderer.paced(pages))
        page = partial(renderer.sources_html, drafts=drafts)
        _listed(part, renderer, project, known, "sources/", entries, page, "the sources index")
        return part, list(itertools.islice(renderer.fragments_used.items(), before, None))

    fork = not renderer.live and bool(renderer.fragments) and len(pages) >= parallel.MIN_ITEMS
    with forked(make) if fork else nullcontext(make) as made:
        yield made


def _listed(
    into: Plan,
    renderer: Renderer,
    project: Project,
    known: Mapping[FragmentKey, str],
    base: str,
    items: Sequence[T],
    page: Callable[[Sequence[T], Pager], Listed],
    what: str,
) -> None:
    """The pages of one listing (`page` makes each), planned in `into`: each reused whole
    whose digest is `known` unread (`plan_listings`)."""
    for pager, chunk in listing.paged(base, items, project.site.page_size):
        rel, made = f"{pager.here}index.html", page(chunk, pager)
        digest = known.get(made.key) if made.key is not None else None
        if made.packed is not None and digest is not None and not renderer.live:
            into.add(rel, Packed(made.packed), what)  # as the last build wrote it
        else:
            data = bytes(made)
            into.add(rel, data, what)
            digest = file_digest(data)
        into.digests[rel] = digest
        if made.key is not None:
            into.listed[made.key] = digest


def plan_listings(
    plan: Plan,
    renderer: Renderer,
    project: Project,
    pages: list[Page],
    *,
    drafts: bool,
    known: Mapping[FragmentKey, str] = {},
    sources: Callable[[], SourcesIndex] | None = None,
) -> None:
    """The reader's pages beyond the claims (front page, open questions, topics, sources,
    about, search, 404) and the machine-readable files (feed, sitemap, robots.txt,
    claims.json): every file outside `claims/` and `static/`. A listing page reused whole
    whose digest is `known` (`Plan.listed` of the build before) is planned unread. The
    sources index comes from `sources` when given (`sources_index`)."""

    listed = partial(_listed, plan, renderer, project, known)
    listed("", pages, partial(renderer.index_html, drafts=drafts), "the index page")
    listed(
        "open-questions/",
        open_questions(renderer.paced(pages)),
        partial(renderer.open_questions_html, drafts=drafts),
        "the open-questions page",
    )
    all_topics = listing.topics(renderer.paced(pages))
    plan.add("topics/index.html", renderer.topics_html(all_topics, drafts=drafts), "the topics")
    for topic in all_topics:
        listed(
            f"topics/{topic.slug}/",
            topic.pages,
            partial(renderer.topic_html, topic, drafts=drafts),
            f"topic {topic.name!r}",
        )
    _plan_others(plan, renderer, project, pages, drafts=drafts)
    with (
        sources_index(renderer, project, pages, drafts=drafts, known=known)
        if sources is None
        else nullcontext(sources)
    ) as made:
        part, used = made()
    for rel, data in part.items():
        plan.add(rel, data, part.owners[rel.casefold()])
    plan.digests.update(part.digests)
    plan.listed.update(part.listed)
    for key, fragment in used:
        if fragment is not None or key not in renderer.fragments_used:
            renderer.fragments_used[key] = fragment


def _plan_others(
    plan: Plan, renderer: Renderer, project: Project, pages: list[Page], *, drafts: bool
) -> None:
    """The pages and files of `plan_listings` that are not listings cut into pages."""
    about_path = project.root / ABOUT_FILE
    about = (
        prose.document_html(read_about(about_path, project.root)) if about_path.exists() else None
    )
    plan.add("about/index.html", renderer.about_html(about, drafts=drafts), ABOUT_FILE)
    plan.add("search/index.html", renderer.search_html(drafts=drafts), "the search page")
    plan.add("404.html", renderer.not_found_html(), "the 404 page")
    published = [p for p in pages if p.facts.status == "published"]
    plan.add("feed.xml", renderer.feed_xml(published), "the feed")
    plan.add(
        "sitemap.xml",
        renderer.sitemap_xml(published, listing.topics(renderer.paced(published))),
        "the sitemap",
    )
    plan.add("robots.txt", renderer.robots_txt(), "robots.txt")
    parts = renderer.claims_json(published)
    plan.add("claims.json", b"".join(parts) if renderer.live else Joined(parts), "claims.json")
    plan.digests["claims.json"] = file_digest(*parts)


def static_files(root: Path) -> list[tuple[str, Path]]:
    """The theme's static files, the project's overriding the default theme's by path."""
    found: dict[str, Path] = {}
    allowed = theme_roots(root)
    for theme in reversed(theme_dirs(root)):
        static = theme / "static"
        if not static.is_dir():
            continue
        for path in sorted(static.rglob("*")):
            if path.is_file():
                if not inside(path, allowed):
                    raise OutputError(f"{os.path.relpath(path)}: {OUTSIDE}")
                found[path.relative_to(static).as_posix()] = path
    return sorted(found.items())


def check_out_dir(out: Path, root: Path) -> Path:
    """The output folder, absolute, or OutputError when writing there could destroy anything."""
    target = Path(os.path.abspath(out))
    resolved = target.resolve()
    home = Path.home().resolve()
    root = root.resolve()
    forbidden = {Path("/"), home, root, default_theme().resolve()}
    if resolved in forbidden or resolved in root.parents or resolved in home.parents:
        raise OutputError(
            f"refusing to write the site to {out}: it would replace "
            "a folder that is not a build; choose a folder such as build/"
        )
    for folder in ("claims", "sources", "figures", "templates", ".git"):
        if resolved.is_relative_to(root / folder):
            raise OutputError(f"refusing to write the site inside {folder}/ of the project")
    if target.is_symlink():
        raise OutputError(f"refusing to write the site through the symlink {out}")
    if (
        target.exists()
        and (not target.is_dir() or any(target.iterdir()))
        and not (target / MARKER).is_file()
    ):
        raise OutputError(
            f"{out} exists and was not made by claimpress; remove it or choose another --out"
        )
    return target


_HELD: set[int] = set()
"""The descriptors of the output locks this process holds (`_locked`)."""


def _close_held() -> None:
    """In a forked worker: close the copies of the locks, which then stay the parent's
    alone; a build killed by itself does not leave its workers holding them."""
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()  # its own forks have none to close


os.register_at_fork(after_in_child=_close_held)


@contextmanager
def _locked(
    out: Path, waiting: Callable[[], None] | None = None, *, wait: bool = True
) -> Iterator[bool]:
    """One build at a time per output folder; `waiting` is told when another holds it.
    Without `wait`, False at once when another holds it (and nothing is locked)."""
    lock_path = out.parent / f".{out.name}.lock"
    # Never through a symlink planted there: opening it would create its target.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "r+b"):  # closed, and so unlocked, however this ends
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            if waiting is not None:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD.add(fd)
        try:
            yield True
        finally:
            _HELD.discard(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)


def _leftovers(out: Path) -> list[Path]:
    """Temporary folders of earlier builds that were killed, ours by their marker (or empty:
    killed between making the folder and marking it, or after `_discard` emptied it)."""
    return [
        p
        for p in out.parent.glob(f".{out.name}.*-*")
        if p.is_dir() and not p.is_symlink() and ((p / MARKER).is_file() or not any(p.iterdir()))
    ]


def _discard_leftovers(out: Path) -> None:
    """Delete what builds to `out` that were killed left (`_leftovers`); only with the lock
    of `out` held, so that no folder of a build still running is taken for one."""
    for old in _leftovers(out):
        _discard(old)


def _discard(folder: Path) -> None:
    """Delete a folder of ours, its marker last: a build killed meanwhile leaves a folder the
    next build still knows as its own."""
    with contextlib.suppress(OSError):  # what cannot go now goes with the next build
        for child in folder.iterdir():
            if child.name == MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        (folder / MARKER).unlink(missing_ok=True)
        folder.rmdir()


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _manifest(out: Path) -> dict[str, str]:
    """The digest of every file of the build at `out`, as its manifest recorded them."""
    try:
        if not (out / MARKER).is_file():
            return {}
        text = (out / MANIFEST).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return dict(line.split(" ", 1)[::-1] for line in text.splitlines() if " " in line)


def manifest_text(digests: dict[str, str]) -> str:
    """The manifest of a build: each file's digest and path, by path."""
    return "".join(f"{digest} {rel}\n" for rel, digest in sorted(digests.items()))


def file_digest(*parts: bytes) -> str:
    """A file's digest as the manifest records it, from its bytes (in parts)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:32]


def _reuse(old: str, new: str, size: int, since: int) -> bool:
    """Hard-link a file written already (the previous build's, untouched since its
    manifest was written at `since`) into the new build."""
    if not untouched(old, since, size):
        return False
    try:
        os.link(old, new, follow_symlinks=False)
    except OSError:
        return False
    return True


def _staging(out: Path, spare: Path | None) -> tuple[Path, dict[str, str], int]:
    """Where to write the new site: `spare` when it holds a whole earlier build on the
    same file system as `out`, else a fresh folder beside `out`; with the manifest of what
    it holds and when that was written."""
    if spare is not None:
        kept = {} if spare.is_symlink() else _manifest(spare)
        if kept and os.stat(spare).st_dev == os.stat(out.parent).st_dev:
            since = written_at(spare / MANIFEST)
            # Changed from here on: a build killed meanwhile leaves no manifest to trust.
            (spare / MANIFEST).unlink()
            return spare, kept, since
        if spare.is_symlink():
            spare.unlink()
        elif spare.exists():
            _discard(spare)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / MARKER).write_text("written by claimpress; safe to delete\n")
    except BaseException:
        _discard(tmp)
        raise
    return tmp, {}, 0


def _sweep(
    folder: Path, files: Collection[str], keep: Collection[str], held: Collection[str], since: int
) -> set[str]:
    """Delete from a staging folder everything but `files` (as regular files), the
    folders leading to them and the top-level folders `keep` (left for `before_swap`);
    return the folders left, relative to it ("" for itself). The folder held the files
    `held` when their manifest was written at `since` (ns): a folder of theirs not changed
    since (by its status-change time) holds just those, so it is not listed again."""
    wanted = {"", *_folders_of(files)}
    known = _folders_of(held)
    # What a folder not changed since holds apart: the files and folders to delete, and
    # the folders to go into. Worked out for all at once, not entry by entry (at 10,000
    # claims, 40,000 entries, nearly all of them kept).
    stale = _by_folder({*set(held).difference(files), *known.difference(wanted)})
    inside = _by_folder(known.intersection(wanted))
    base = f"{folder}/"
    left: set[str] = set()

    def walk(rel: str) -> None:
        left.add(rel)
        at = f"{rel}/" if rel else ""
        if rel in known and os.lstat(base + rel).st_ctime_ns < since:
            for name in stale.get(rel, ()):
                sub = at + name
                if sub not in known:
                    os.unlink(base + sub)
                elif sub not in keep:
                    shutil.rmtree(base + sub)
            for name in inside.get(rel, ()):
                walk(at + name)
            return
        with os.scandir(base + rel) as found:
            entries = [
                (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                for e in found
            ]
        for name, is_dir, is_file in entries:
            sub = at + name
            if is_dir:
                if sub in wanted:
                    walk(sub)
                elif sub not in keep:
                    shutil.rmtree(base + sub)
            elif not (sub in files and is_file) and sub != MARKER:
                os.unlink(base + sub)

    walk("")
    return left


def _by_folder(paths: Iterable[str]) -> dict[str, list[str]]:
    """The names of `paths` (relative paths), by the folder holding them ("" for the top)."""
    found: dict[str, list[str]] = {}
    for rel in paths:
        parent, _, name = rel.rpartition("/")
        found.setdefault(parent, []).append(name)
    return found


def _folders_of(paths: Iterable[str]) -> set[str]:
    """The folders leading to the files `paths` (relative paths), the top one aside."""
    folders: set[str] = set()
    for rel in paths:
        while (rel := rel.rpartition("/")[0]) and rel not in folders:
            folders.add(rel)
    return folders


def write_site(
    plan: Plan,
    out: Path,
    *,
    before_swap: Callable[[Path, dict[str, str]], None] | None = None,
    spare: Path | None = None,
    keep: Collection[str] = (),
    waiting: Callable[[], None] | None = None,
    lender: Path | None = None,
) -> dict[str, str]:
    """Write the planned files into a staging folder and swap it in for `out`; `before_swap`
    runs on that folder and its manifest first (the search index is built there). Return
    the manifest (each file's digest): the previous build is never modified, only replaced
    whole.

    Without `spare` the staging folder is a fresh one beside `out`, and files identical to
    the previous build's are hard-linked from it. With `spare` (a folder on the same file
    system), the previous build is kept there once swapped out, and the next build stages
    in it: only the files that differ from what it holds are written, and nothing is
    deleted that the new site does not replace. The top-level folders `keep` of the spare
    are left as they are for `before_swap`, which must make them right (the search index
    keeps the shards that did not change). `waiting` is told when another run writing
    `out` holds it. Files identical to those of the build at `lender` (`serve` lends
    `build/`) are hard-linked from there too, unless a build is writing it (`_lent`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out, waiting), _lent(lender, out) as lent:
        _discard_leftovers(out)
        return _write_locked(
            plan, out, before_swap=before_swap, spare=spare, keep=keep, written={}, lent=lent
        )


@contextmanager
def _lent(folder: Path | None, out: Path) -> Iterator[tuple[str, dict[str, str], int]]:
    """The files of the build at `folder` that the writer of `out` may hard-link where they
    are what it writes: the folder (as a prefix), its manifest and when that was written.
    The folder's lock is held meanwhile, so that no build changes them; nothing is lent
    when a build holds it, when the lock cannot be taken (another user's, a symlink planted
    in its place), when the folder is a symlink, or on another file system."""
    if folder is None or folder.is_symlink() or not (folder / MANIFEST).is_file():
        yield "", {}, 0
        return
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(_locked(folder, wait=False))
            same_device = held and os.stat(folder).st_dev == os.stat(out.parent).st_dev
        except OSError:  # (and a folder deleted meanwhile)
            same_device = False
        manifest = _manifest(folder) if same_device else {}
        yield f"{folder}/", manifest, written_at(folder / MANIFEST) if manifest else 0


def _write_locked(
    plan: Plan,
    out: Path,
    *,
    before_swap: Callable[[Path, dict[str, str]], None] | None,
    spare: Path | None,
    keep: Collection[str],
    written: Mapping[str, str],
    lent: tuple[str, dict[str, str], int] = ("", {}, 0),
) -> dict[str, str]:
    """`write_site`, with the lock of `out` held and the leftovers of killed builds gone;
    the planned files `written` already (as `search.Ahead.written` tells) are hard-linked
    from there, unless changed since this began, and so are those `lent` (`_lent`)."""
    begun = time.time_ns()
    lender, lenders, lent_since = lent
    stage, kept, kept_since = _staging(out, spare)
    try:
        previous = _manifest(out)
        since = written_at(out / MANIFEST) if previous else 0
        manifest: dict[str, str] = {}
        planned = plan.items()
        paths = {rel for rel, _ in planned}
        made = _sweep(stage, paths, keep, kept, kept_since) if kept else {""}
        # Paths as strings: pathlib's joins cost 0.3 s over 30,000 files.
        staged, built = f"{stage}/", f"{out}/"
        for rel, data in planned:
            path = staged + rel
            parent = rel.rpartition("/")[0]
            if parent not in made:
                os.makedirs(staged + parent, exist_ok=True)
                while parent not in made:
                    made.add(parent)
                    parent = parent.rpartition("/")[0]
            digest = plan.digests.get(rel) or file_digest(bytes(data))
            manifest[rel] = digest
            if kept:
                if kept.get(rel) == digest and untouched(path, kept_since, len(data)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            if previous.get(rel) == digest and _reuse(built + rel, path, len(data), since):
                continue
            if rel in written and _reuse(written[rel], path, len(data), begun):
                continue
            if lenders.get(rel) == digest and _reuse(lender + rel, path, len(data), lent_since):
                continue
            with open(path, "xb") as handle:
                handle.writelines(data.parts if isinstance(data, Joined) else (bytes(data),))
        (stage / MANIFEST).write_text(manifest_text(manifest), "utf-8")
        if before_swap is not None:
            before_swap(stage, manifest)
        if not out.exists():
            os.rename(stage, out)
            return manifest
        if _exchange(stage, out):  # the staging folder now holds the previous build
            if stage == spare:
                return manifest
            if spare is not None:
                with contextlib.suppress(OSError):  # on another file system: none kept
                    spare.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(stage, spare)
                    return manifest
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            (old / MARKER).touch()
            os.rename(out, old / "site")
            os.rename(stage, out)
            stage = old
    except BaseException:
        _discard(stage)
        raise
    _discard(stage)
    return manifest


def build_search_index(
    folder: Path,
    keys: dict[str, str],
    previous: Path,
    ahead: search.Ahead | None = None,
) -> None:
    """The search index of the claims of the site written in `folder` (`keys`: by slug,
    what the index reads of each one's page), reusing what it can of the index of the
    previous build and what was indexed `ahead`; a failure fails the build."""
    try:
        search.index_site(folder, keys, folder / search.SEARCH_DIR, previous=previous, ahead=ahead)
    except search.SearchError as exc:
        raise OutputError(str(exc)) from None


def spare_folder(root: Path, out: Path) -> Path | None:
    """Where the build before the current one at `out` is kept for the next build to write
    over (`write_site`), in the project's cache; None without a cache."""
    return _kept_for(root, "spare", out)


def _kept_for(root: Path, kind: str, out: Path) -> Path | None:
    """Where the project's cache keeps `kind` for the builds at `out`; None without one."""
    if os.environ.get("CLAIMPRESS_NO_CACHE"):
        return None
    return root / CACHE_DIR / kind / hashlib.sha256(os.fsencode(out)).hexdigest()[:16]


def build(
    project: Project,
    out: Path,
    *,
    drafts: bool = False,
    live: bool = False,
    waiting: Callable[[], None] | None = None,
) -> BuildReport:
    """Render the whole site, then replace `out` with it in one step; nothing to do when
    `out` holds the site of the same inputs, untouched since (`built_from`). Builds to
    the same `out` run one after the other: `waiting` is told when this one waits."""
    target = check_out_dir(out, project.root)
    record = record_path(project.root, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target, waiting):
        _discard_leftovers(target)
        inputs = inputs_digest(project, drafts=drafts, live=live) if record is not None else ""
        if record is not None and target.is_dir():
            done = built_from(target, record, inputs)
            if done is not None:
                return BuildReport(target, *done)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.search-", dir=target.parent))
        try:
            (scratch / MARKER).touch()
            return _build_locked(project, target, scratch, record, inputs, drafts, live)
        finally:
            _discard(scratch)


def _build_locked(
    project: Project,
    target: Path,
    scratch: Path,
    record: Path | None,
    inputs: str,
    drafts: bool,
    live: bool,
) -> BuildReport:
    """`build`, with the lock of `target` held; `scratch` takes the search shards indexed
    while the listings are made."""
    spare = spare_folder(project.root, target)

    def index_ahead(plan: Plan, pages: list[Page]) -> None:
        """Start indexing the claim pages that changed while the listings are made."""
        previous, since = _manifest(target), written_at(target / MANIFEST)

        def page(rel: str) -> bytes | str:
            """The page at `rel`, compressed, or the previous build's file when it is the
            same (a `live` plan's pages are not kept compressed)."""
            data = plan.packed.get(rel)
            size = len(plan.files[rel] if data is None else data)
            if previous.get(rel) == plan.digests[rel] and untouched(target / rel, since, size):
                return str(target / rel)
            if isinstance(data, Stored):
                data = data.packed()
            if not isinstance(data, Packed):  # (a claim's page is never in parts)
                data = Packed(lz4.block.compress(plan.data(rel)))
            return data.blob

        ahead.start(
            {p.slug: partial(page, claim_paths(p.slug)[0]) for p in pages},
            plan.indexed,
            [index / search.SEARCH_DIR for index in (target, spare) if index is not None],
        )

    with search.Ahead(scratch) as ahead:
        with gc_paused():
            plan = plan_site(
                project.without_locations(), drafts=drafts, live=live, rendered=index_ahead
            )
            gc.freeze()  # the pages loaded since `Project.pages`: as they were, never collected

        def before_swap(folder: Path, _digests: dict[str, str]) -> None:
            build_search_index(folder, plan.indexed, target / search.SEARCH_DIR, ahead)
            ahead.close()
            if record is not None:
                record_inputs(folder, plan, inputs, record)

        _write_locked(
            plan,
            target,
            before_swap=before_swap,
            spare=spare,
            keep=(search.SEARCH_DIR,),
            written=ahead.written(),
        )
    return BuildReport(target, len(plan.pages), len(plan))


def inputs_digest(project: Project, *, drafts: bool, live: bool) -> str:
    """A hash of everything a build makes the site from: claimpress's code and Pagefind's
    version, the options and settings, every claim's cache key (its path and bytes, and what
    it read of the registry), the registry files, the approvals, theme and about page."""
    about = project.root / ABOUT_FILE
    parts: list[str | bytes] = [
        code_digest(),
        version("pagefind"),
        repr((drafts, live, search.shard_pages())),
        project.site.model_dump_json(),
        project.registry_digest,
        "".join(f"{a.known}\n" for _, a in sorted(project.approvals.items())),
        theme_digest(project.root),
        read_about(about, project.root) if about.exists() else "\0",
        *(f"{summary.rel}\0{summary.key}" for summary in project.summaries),
    ]
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def record_path(root: Path, out: Path) -> Path | None:
    """Where the record of the build at `out` is kept (`record_inputs`); None without a
    cache."""
    return _kept_for(root, "built", out)


def record_inputs(folder: Path, plan: Plan, inputs: str, record: Path) -> None:
    """Record that the build of `plan` staged in `folder` (its search index made) was made
    from `inputs`: its marker's status-change time is set past that of every file it holds
    (as `built_from` trusts none changed later), and the record, signed, holds that and a
    hash of its paths and manifest."""
    files = [*plan.files, *plan.packed, MARKER, MANIFEST]
    # Every file's status changed before now (the pages linked from the search scratch
    # folder too, as their links there went); the file system's clock is never ahead.
    newest = time.time_ns()
    folders = _folders_of(files)
    if (folder / search.SEARCH_DIR).is_dir():
        folders.add(search.SEARCH_DIR)
        for rel, info in _entries(folder, search.SEARCH_DIR):
            if stat.S_ISDIR(info.st_mode):
                folders.add(rel)
            else:
                files.append(rel)
    marker = folder / MARKER
    for _ in range(1000):  # past the clock tick of the files' last change
        os.utime(marker)
        if os.lstat(marker).st_ctime_ns > newest:
            break
        time.sleep(0.001)
    else:  # the clock went back: no record to trust
        record.unlink(missing_ok=True)
        return
    body = json.dumps(
        {
            "inputs": inputs,
            "files": _tree(files, folders),
            "manifest": hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest(),
            "claims": len(plan.pages),
            "count": len(plan),
        }
    ).encode()
    signed = signature(body)
    if signed is None:
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=record.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(signed.hex().encode() + b"\n" + body)
    os.replace(tmp, record)


def built_from(out: Path, record: Path, inputs: str) -> tuple[int, int] | None:
    """The claims and files of the build at `out` when its `record` (`record_inputs`),
    signed with this user's key, says it was made from `inputs`, and it holds just the
    files, folders and manifest it was written with, each a regular file whose status has
    not changed since the build stamped its marker's; else None."""
    try:
        if not stat.S_ISREG(os.lstat(record).st_mode):
            return None
        signed, _, body = record.read_bytes().partition(b"\n")
        mine = signature(body)
        if mine is None or not hmac.compare_digest(signed, mine.hex().encode()):
            return None
        recorded = json.loads(body)
        if recorded["inputs"] != inputs:
            return None
        since = os.lstat(out / MARKER).st_ctime_ns
        files: list[str] = []
        folders: set[str] = set()
        for rel, info in _entries(out):
            if stat.S_ISDIR(info.st_mode):
                folders.add(rel)
                continue
            if not stat.S_ISREG(info.st_mode) or (info.st_ctime_ns >= since and rel != MARKER):
                return None
            files.append(rel)
        manifest = hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None
    if _tree(files, folders) != recorded["files"] or manifest != recorded["manifest"]:
        return None
    return recorded["claims"], recorded["count"]


def _entries(top: Path, under: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Everything under the folder `under` of `top` (by path relative to `top`), with what
    `os.lstat` tells of it."""
    folders = [under]
    while folders:
        rel = folders.pop()
        with os.scandir(top / rel) as entries:
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(sub)
                yield sub, entry.stat(follow_symlinks=False)


def _tree(files: list[str], folders: set[str]) -> str:
    """A hash of the paths of a build's files and folders (what is in a file changes its
    status-change time, which `built_from` checks)."""
    lines = sorted(files + [f"{rel}/" for rel in folders])
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
