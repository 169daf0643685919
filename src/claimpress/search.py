"""Full-text search: Pagefind indexes the built pages; the browser queries the index.

Pagefind (the `pagefind[extended]` package ships its binary) reads the HTML of a built
site folder and writes `pagefind/` into it: the index, in chunks, and the small script
`static/search.js` loads. Its output is byte-identical for identical pages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SEARCH_DIR = "pagefind"
"""Where the index goes, inside the built site."""


class SearchError(Exception):
    """The search index could not be built; the message says why."""


def index_site(folder: Path, output: Path | None = None) -> None:
    """Write the search index of the site built in `folder` into `folder/pagefind/` (or
    into `output`)."""
    command = [sys.executable, "-m", "pagefind", "--site", str(folder), "--silent"]
    if output is not None:
        command += ["--output-path", str(output)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SearchError(f"cannot run Pagefind to build the search index: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise SearchError(
            "Pagefind failed to build the search index"
            + (f": {detail[-1]}" if detail else f" (exit {result.returncode})")
            + "; reinstall with `pip install 'pagefind[extended]'`"
        )
