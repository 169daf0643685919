"""Whether a file of an earlier build is still as that build wrote it: what the writer
(`site`) checks before reusing a file instead of writing it again (the search index checks
its shards' files alike, `search._untouched`). A file edited or replaced by hand since is
written anew, even at the same size."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def written_at(path: Path) -> int:
    """When a file was last written (ns), or 0 when it cannot be told."""
    try:
        return path.lstat().st_mtime_ns
    except OSError:
        return 0


def untouched(path: Path | str, since: int, size: int | None = None) -> bool:
    """Whether `path` is a regular file (not a symlink) not written after `since` (ns),
    of `size` bytes when given."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_mtime_ns <= since
        and (size is None or info.st_size == size)
    )
