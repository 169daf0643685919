"""A persistent cache of per-claim work, keyed by the hash of everything it depends on.

`.claimpress-cache/` holds one `Pack` per kind of work: `summaries/` and `claims/` what
loading and resolving each claim found (its problems, its validated file and page), keyed by
the claim's bytes, its path, the site settings, what it read of the shared registry
(`Registry.fingerprint`) and claimpress's own code; `lint/` the review rules' findings
(also keyed by the approval, and by the date when it changes them); `rendered/` each
claim's rendered files (also keyed by the templates); `listed/` the listing pages'
fragments (`Renderer.fragment`). `spare/` holds no pack but the build before the current
one, which the next build writes over (`site.write_site`), and `built/` a signed record of
what each output folder's build was made from, so that a build of the same inputs over it,
untouched, has nothing to do (`site.built_from`). A changed input is a new key, so a stale
entry is never read; entries no run used are dropped. Entries name files from the
project's root (`claims/x.yaml`) and no key holds the working folder: a project moved, or
run with `-C` from anywhere, keeps its cache (problems name their files from the working
folder only when shown: `Problem.shown`).
Pickles can run code when loaded, so every entry is signed with a secret kept outside the
project (in the user's cache folder): a planted file is ignored, not loaded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import mmap
import os
import re
import secrets
import struct
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from . import __version__

CACHE_DIR = ".claimpress-cache"
"""The cache folder, in the project; safe to delete at any time."""

_MARKS = {
    ".gitignore": "# claimpress's cache, safe to delete: never committed\n*\n",
    "CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by claimpress.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n",
}


def cache_folder(root: Path) -> Path:
    """The project's cache folder, made if missing, with a `.gitignore` that ignores all of
    it (in a project whose own does not name it, `git add .` would take the cache and the
    preview's site) and a CACHEDIR.TAG that tells backup tools to skip it. A file already
    there, or a symlink planted in its place, is left as it is."""
    folder = root / CACHE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in _MARKS.items():
        with contextlib.suppress(FileExistsError):
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
    return folder


SHAPING = ("babel", "jinja2", "lz4", "markdown", "markupsafe", "nh3", "pydantic", "pyyaml")
"""The libraries whose version can change what claimpress caches (parsed and rendered
claims, listing fragments); Pagefind's is part of each search shard's key."""


@functools.cache
def code_digest() -> str:
    """A hash of claimpress's own code, the Python running it and the versions of the
    libraries that shape what is cached: a new version, an edited source file, another
    interpreter or an upgraded Markdown or sanitizer invalidates every entry."""
    digest = hashlib.sha256(f"{__version__} {sys.version}".encode())
    for name in SHAPING:
        digest.update(f"\0{name} {version(name)}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _secret() -> bytes | None:
    """The user's signing key, made on first use; None without a cache
    (CLAIMPRESS_NO_CACHE) or where it cannot be kept."""
    if os.environ.get("CLAIMPRESS_NO_CACHE"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "claimpress"
    path = base / "cache-key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
        return path.read_bytes()
    except FileExistsError:
        return path.read_bytes()
    except OSError:
        return None


def signature(data: bytes) -> bytes | None:
    """`data` signed with the user's key (as cache entries are), or None without a key
    (CLAIMPRESS_NO_CACHE, or nowhere to keep one): what proves a record was made here."""
    secret = _secret()
    return None if secret is None else hmac.digest(secret, data, "sha256")


_MAGIC = b"CPPACK1\n"
_HEAD = struct.Struct("<8sQ32s")
"""A segment's header: magic, entry count, signature of its index."""
_ROW = struct.Struct("<32sQQ32s")
"""One index row: key, offset, length, signature of the entry."""


_OLD_ENTRY = re.compile(r"(\.tmp-\d+-)?[0-9a-f]{64}")
"""An entry (or a half-written one) of the one-file-per-entry cache of earlier versions."""


_AROUND = 1 << 16
"""How far around a page read from a file map Linux maps the file's other pages at once
(`fault_around_bytes`, 64 KB), aligned to it."""


def _let_go(data: mmap.mmap, offset: int, length: int) -> None:
    """Drop the pages of `data` from `offset` to `offset + length` from this process's
    memory, and those mapped with them (`_AROUND`); read again, they come back from the
    file. (Dropping the entry's own pages alone left a third of a pack read once in
    memory: each read mapped again the end of the entry before it.)"""
    start = offset - offset % _AROUND
    end = min(len(data), offset + length + -(offset + length) % _AROUND)
    with contextlib.suppress(OSError, ValueError, AttributeError):  # (no madvise: kept)
        data.madvise(mmap.MADV_DONTNEED, start, end - start)


class Pack:
    """Signed entries of one kind in a few segment files (not one file per entry), so that
    a warm run opens a handful of files; entries are read lazily from memory maps.

    New entries are kept in memory until `save`, which appends them as one new segment,
    or rewrites every used entry into a single segment once the unused ones outweigh them.
    When segments pile up, it merges all but the one holding the most of what was used,
    which a warm run leaves as it is (at 10,000 claims the `claims` pack is one segment of
    250 MB, and each edit adds one of a few kilobytes). A segment whose index signature is
    wrong is ignored whole; an entry whose own signature is wrong is a miss. Without a key
    (CLAIMPRESS_NO_CACHE, or nowhere to keep one) nothing is read or written, but `put`
    entries stay readable.
    """

    MAX_SEGMENTS = 8
    """At this many segments, `save` merges all but one."""

    def __init__(self, root: Path, context: list[bytes], kind: str) -> None:
        self.root = root
        self.folder = root / CACHE_DIR / kind
        self.secret = _secret()
        salt = hashlib.sha256(code_digest().encode())
        for part in context:
            salt.update(hashlib.sha256(part).digest())
        self.salt = salt.digest()
        self.used: set[str] = set()
        """Keys read or written by this run, for `save`."""
        self.index: dict[str, tuple[mmap.mmap, int, int, bytes]] = {}
        """Stored entries: key, then the map, offset, length and signature of the data."""
        self.new: dict[str, bytes] = {}
        """Entries put by this run, not yet saved."""
        self.segments: list[Path] = []
        self.maps: dict[Path, mmap.mmap] = {}
        """The map of each segment read."""
        if self.secret is not None:
            self._open()

    def key(self, *parts: str | bytes) -> str:
        """The key of an entry: the context plus `parts`."""
        digest = hashlib.sha256(self.salt)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def _sign(self, data: bytes | memoryview) -> bytes:
        assert self.secret is not None
        return hmac.digest(self.secret, data, "sha256")

    def _open(self) -> None:
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return
        for name in names:
            if not name.startswith("seg-"):
                if _OLD_ENTRY.fullmatch(name):
                    (self.folder / name).unlink(missing_ok=True)
                continue
            path = self.folder / name
            self.segments.append(path)
            try:
                self._read_segment(path)
            except (OSError, ValueError, struct.error):
                continue

    def _read_segment(self, path: Path) -> None:
        with open(path, "rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.maps[path] = data
        magic, count, signature = _HEAD.unpack_from(data, 0)
        end = _HEAD.size + count * _ROW.size
        if magic != _MAGIC or end > len(data):
            return
        rows = data[_HEAD.size : end]
        if not hmac.compare_digest(signature, self._sign(rows)):
            return
        for key, offset, length, sig in _ROW.iter_unpack(rows):
            if offset + length <= len(data):
                self.index[key.hex()] = (data, offset, length, sig)

    def has(self, key: str) -> bool:
        """Whether an entry is stored under `key` (its signature is checked by `get`); the
        entry counts as used, so `save` keeps it."""
        self.used.add(key)
        return key in self.new or key in self.index

    def get(self, key: str, *, once: bool = False) -> bytes | None:
        """The entry stored under `key`, if there is one and its signature is ours. An entry
        read `once` is let go of: its part of the segment file leaves this process's memory
        (the file system keeps it cached), where a build reading every entry of a pack once
        would otherwise hold the whole file (250 MB of pages at 10,000 claims)."""
        self.used.add(key)
        if key in self.new:
            return self.new[key]
        view = self._view(key)
        if view is None:
            return None
        data = bytes(view)
        if once:
            _let_go(*self.index[key][:3])
        return data

    def _view(self, key: str) -> memoryview | None:
        """A stored entry without copying it, if its signature is ours."""
        found = self.index.get(key)
        if found is None:
            return None
        data, offset, length, signature = found
        view = memoryview(data)[offset : offset + length]
        return view if hmac.compare_digest(signature, self._sign(view)) else None

    def put(self, key: str, data: bytes) -> None:
        """Add an entry, written by the next `save`."""
        self.used.add(key)
        self.new[key] = data

    def save(self) -> None:
        """Write this run's new entries; drop the entries no run of this kind used, by
        rewriting the pack when they weigh more than the used ones, or, when segments pile
        up, the segments merged (all but the one holding the most of what was used)."""
        if self.secret is None:
            return
        dead = sum(n for k, (_, _, n, _) in self.index.items() if k not in self.used)
        live = sum(n for k, (_, _, n, _) in self.index.items() if k in self.used)
        merged: list[Path] = []
        if dead > live:
            merged = self.segments
        elif len(self.segments) >= self.MAX_SEGMENTS:
            held: Counter[int] = Counter()  # the bytes of used entries, by segment
            for key, (data, _, length, _) in self.index.items():
                held[id(data)] += length if key in self.used else 0
            largest = max(self.segments, key=lambda path: held[id(self.maps.get(path))])
            merged = [path for path in self.segments if path != largest]
        if not self.new and not (merged and dead):
            return
        maps = {id(self.maps.get(path)) for path in merged}
        entries: dict[str, bytes | memoryview] = dict(self.new)
        for key in sorted(self.used - entries.keys()):
            if key in self.index and id(self.index[key][0]) in maps:
                view = self._view(key)
                if view is not None:
                    entries[key] = view
        try:
            cache_folder(self.root)
            self.folder.mkdir(exist_ok=True)
            path = self._write(entries)
        except OSError:
            return
        if merged:
            for old in merged:
                old.unlink(missing_ok=True)
                self.maps.pop(old, None)
            self.segments = [kept for kept in self.segments if kept not in merged]
            self.index = {k: v for k, v in self.index.items() if id(v[0]) not in maps}
            self._drop_leftovers()
        self.segments.append(path)
        with contextlib.suppress(OSError, ValueError, struct.error):
            self._read_segment(path)
        # Saved entries are read from the segment's map from now on, not kept in memory.
        self.new = {k: v for k, v in self.new.items() if k not in self.index}

    def _drop_leftovers(self) -> None:
        """Delete the half-written segments of killed runs (an hour old: not being written)."""
        with contextlib.suppress(OSError):
            for path in self.folder.glob(".tmp-seg-*"):
                if path.stat().st_mtime < time.time() - 3600:
                    path.unlink(missing_ok=True)

    def _write(self, entries: dict[str, bytes | memoryview]) -> Path:
        """One segment, written atomically (a killed run leaves no half-written segment)."""
        offset = _HEAD.size + len(entries) * _ROW.size
        rows = bytearray()
        for key, blob in entries.items():
            rows += _ROW.pack(bytes.fromhex(key), offset, len(blob), self._sign(blob))
            offset += len(blob)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = self.folder / f".tmp-{name}"
        with open(tmp, "wb") as handle:
            handle.write(_HEAD.pack(_MAGIC, len(entries), self._sign(bytes(rows))))
            handle.write(rows)
            for blob in entries.values():
                handle.write(blob)
        os.replace(tmp, self.folder / name)
        return self.folder / name
