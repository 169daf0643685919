"""Full-text search: Pagefind indexes the built pages; the browser queries the index.

Pagefind (the `pagefind[extended]` package ships its binary) reads the HTML of a built
site folder and writes `pagefind/` into it: the index, in chunks, and the small script
`static/search.js` loads. Its output is byte-identical for identical pages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SEARCH_DIR = "pagefind"
"""Where the index goes, inside the built site."""


class SearchError(Exception):
    """The search index could not be built; the message says why."""


def index_site(
    folder: Path,
    output: Path | None = None,
    *,
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> None:
    """Write the search index of the site built in `folder` into `folder/pagefind/` (or
    into `output`); `started` is told the running indexer (`stop` ends it)."""
    command = [sys.executable, "-m", "pagefind", "--site", str(folder), "--silent"]
    if output is not None:
        command += ["--output-path", str(output)]
    try:
        # Its own process group: `stop` ends the wrapper and the binary it starts.
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
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired as exc:
        stop(process)
        raise SearchError(f"cannot run Pagefind to build the search index: {exc}") from None
    except BaseException:
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
    """End an indexer that `index_site` started, and every process it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
