"""A persistent cache of per-claim work, keyed by the hash of everything it depends on.

`.claimpress-cache/claims/` holds one file per claim: the pickled result of loading and
resolving it (the validated file, its page, its problems), keyed by the claim's bytes, its
path, the site settings, the shared registry, the working folder and claimpress's own code;
`lint/` the review rules' findings (also keyed by the date and the approval), `pages/` each
claim's rendered files (keyed by the page itself and the templates).
A changed input is a new key, so a stale entry is never read; entries no build used are
pruned. Pickles can run code when loaded, so every entry is signed with a secret kept
outside the project (in the user's cache folder): a planted file is ignored, not loaded.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import sys
from pathlib import Path

from . import __version__

CACHE_DIR = ".claimpress-cache"
"""The cache folder, in the project; safe to delete at any time."""


@functools.cache
def code_digest() -> str:
    """A hash of claimpress's own code and the Python running it: a new version, an edited
    source file or another interpreter invalidates every entry."""
    digest = hashlib.sha256(f"{__version__} {sys.version}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _secret() -> bytes | None:
    """The user's signing key, made on first use; None where it cannot be kept."""
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


class Cache:
    """Signed entries under one folder; every failure to read or write is a miss."""

    def __init__(self, root: Path, context: list[bytes], kind: str = "claims") -> None:
        self.folder = root / CACHE_DIR / kind
        self.secret = None if os.environ.get("CLAIMPRESS_NO_CACHE") else _secret()
        salt = hashlib.sha256(code_digest().encode())
        for part in context:
            salt.update(hashlib.sha256(part).digest())
        self.salt = salt.digest()
        self.used: set[str] = set()
        """Keys read or written by this run, for `prune`."""

    def key(self, *parts: str | bytes) -> str:
        """The key of an entry: the cache's context plus `parts`."""
        digest = hashlib.sha256(self.salt)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def _sign(self, data: bytes) -> bytes:
        assert self.secret is not None
        return hmac.new(self.secret, data, hashlib.sha256).digest()

    def get(self, key: str) -> bytes | None:
        """The entry stored under `key`, if there is one and its signature is ours."""
        if self.secret is None:
            return None
        try:
            blob = (self.folder / key).read_bytes()
        except OSError:
            return None
        signature, data = blob[:32], blob[32:]
        return data if hmac.compare_digest(signature, self._sign(data)) else None

    def put(self, key: str, data: bytes) -> None:
        """Store an entry atomically (a killed build leaves no half-written entry)."""
        if self.secret is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".tmp-{os.getpid()}-{key}"
            with open(tmp, "wb") as handle:
                handle.write(self._sign(data) + data)
            os.replace(tmp, self.folder / key)
        except OSError:
            return

    def prune(self, used: set[str]) -> None:
        """Delete the entries not in `used` (and leftovers of killed writes)."""
        if self.secret is None:
            return
        try:
            for name in os.listdir(self.folder):
                if name not in used:
                    (self.folder / name).unlink(missing_ok=True)
        except OSError:
            return
