"""`claimpress serve`: a local preview that rebuilds on every change and reloads the browser.

The site is built with drafts into a folder of the project's cache (never `build/`), kept
for the next `serve`, and served on localhost by a real HTTP server. A watcher rebuilds it
when claims, the registry, the templates, site.yaml or about.md change; the open tab polls
a version number and reloads when it moves. A build that fails shows its problems in the
terminal and, in place of the site, in the browser; the server keeps running until the
next good build.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import html
import http.server
import io
import itertools
import json
import os
import queue
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote

import jinja2
import watchfiles

from .approvals import APPROVALS_DIR
from .cache import CACHE_DIR, cache_folder
from .live import Claims, LiveSite, reload_claims
from .load import BUILD_DIR, CLAIMS_DIR, FIGURES_DIR, SITE_FILE, SOURCES_DIR, THEME_DIR
from .problems import OutputError, ProblemsFound, errors
from .project import display_path, gather
from .render import template_error
from .site import ABOUT_FILE

WATCHED_DIRS = (CLAIMS_DIR, SOURCES_DIR, FIGURES_DIR, THEME_DIR, APPROVALS_DIR)
WATCHED_FILES = (SITE_FILE, ABOUT_FILE)
PREFIX = "/_claimpress/"
"""Where the server answers for itself: the reload script and the site's version."""
LIVERELOAD_JS = Path(__file__).with_name("livereload.js")


class Preview:
    """The previewed site: where it is built, the version of each page, and the last
    build's error."""

    def __init__(self, root: Path, out: Path, spare: Path | None = None) -> None:
        self.root = root
        self.out = out
        self.version = 0
        self.base = 0
        """The version every page has at least (a full build, the error page shown or gone)."""
        self.versions: dict[str, int] = {}
        """By file of the site: the version it last changed in."""
        self.error: str | None = None
        self.lock = threading.Lock()
        self.claims: Claims | None = None
        """The claims as last read, errors and all: what an edit is applied to."""
        # The published claims' files of the site built last are the same: linked, not written.
        self.site = LiveSite(out, self.changed, spare, lender=root / BUILD_DIR)
        self.default_filter = watchfiles.DefaultFilter()
        """False for editors' temporary files, `.git` and the like: never an input."""
        self.stale = True
        """Whether `out` may miss a change other than to claims (it failed to build since)."""

    def changed(self, paths: set[str] | None) -> None:
        """Files of the site changed (None: any of them); open tabs showing them reload."""
        with self.lock:
            self.version += 1
            if paths is None:
                self.base = self.version
            else:
                self.versions.update(dict.fromkeys(paths, self.version))

    def page_version(self, url_path: str) -> int:
        """The version of the file a URL path shows: tabs built before it reload."""
        rel = unquote(url_path).lstrip("/")
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        with self.lock:
            return max(self.base, self.versions.get(rel, 0))

    def rebuild(self, changes: set[tuple[watchfiles.Change, str]] | None = None) -> None:
        """Bring the site up to date with the changed files (None: everything): claims
        alone are re-read and re-rendered one by one, anything else rebuilds it all. On
        failure keep the problems to show in the page."""
        error: str | None = None
        started = time.monotonic()
        with self.site.first():  # ahead of the listings of the edit before
            try:
                claims = None
                if self.claims is not None and changes is not None and not self.stale:
                    claims = reload_claims(self.claims, (Path(path) for _, path in changes))
                incremental = claims is not None
                if claims is None:
                    project = gather(self.root).without_locations()
                    claims = Claims.of(project)
                self.claims = claims
                self.stale = not incremental
                if errors(claims.problems):
                    raise ProblemsFound(list(claims.problems))
                shown = claims.problems
                if incremental and changes is not None:
                    paths = {display_path(Path(path)) for _, path in changes}
                    shown = tuple(p for p in shown if p.path in paths)
                for problem in shown:
                    print(problem, file=sys.stderr)
                if incremental:
                    files = self.site.update(claims)
                    took = time.monotonic() - started
                    print(f"updated {files} file(s) in {took:.2f} s", flush=True)
                else:
                    files = self.site.full(project)
                    self.stale = False
                    n = len(claims.pages)
                    print(f"built {n} claim(s), {files} file(s)", flush=True)
            except ProblemsFound as exc:
                lines = [str(p) for p in exc.problems]
                n = len(errors(exc.problems))
                lines.append(f"{n} error(s), {len(exc.problems) - n} warning(s)")
                error = "\n".join(lines)
            except (OutputError, OSError) as exc:
                error = str(exc)
            except jinja2.TemplateError as exc:
                error = template_error(exc)
        if error is not None:
            print(f"build failed; the browser shows the problems:\n{error}", file=sys.stderr)
        sys.stderr.flush()
        if error != self.error:
            with self.lock:
                self.error = error
            self.changed(None)

    def relevant(self, change: watchfiles.Change, path: str) -> bool:
        """Whether a changed file is an input of the site."""
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return False
        if not rel.parts or not self.default_filter(change, path):
            return False
        return rel.as_posix() in WATCHED_FILES or rel.parts[0] in WATCHED_DIRS


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the built folder, the reload script and version, or the error page."""

    preview: Preview

    served = 0
    """The version of the page being served, taken before it is read (`do_GET`)."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        # For livereload.js, which compares it with the page's version as it changes.
        self.send_header("Server-Timing", f'claimpress;desc="{self.served}"')
        super().end_headers()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        # Before the file is read: a page rewritten meanwhile reloads once more than it
        # needs to, never not at all (which the site's version when its reload script
        # loaded, a moment later, allowed).
        self.served = self.preview.page_version(path)
        with self.preview.lock:
            version, error = str(self.preview.version), self.preview.error
        if path == PREFIX + "version":
            page = parse_qs(query).get("page", ["/"])[0]
            self._send(200, "text/plain; charset=utf-8", str(self.preview.page_version(page)))
        elif path == PREFIX + "livereload.js":
            script = LIVERELOAD_JS.read_text("utf-8")
            script = script.replace("CLAIMPRESS_VERSION", json.dumps(version))
            self._send(200, "text/javascript; charset=utf-8", script)
        elif error is not None and (path.endswith(("/", ".html"))):
            self._send(500, "text/html; charset=utf-8", with_reload(error_page(error)))
        else:
            super().do_GET()

    def send_head(self) -> Any:
        """A page of the site with the reload script added (`with_reload`); anything else as
        the standard handler serves it."""
        path = self.translate_path(self.path)
        if os.path.isdir(path) and self.path.partition("?")[0].endswith("/"):
            path = os.path.join(path, "index.html")
        if not path.endswith(".html"):
            return super().send_head()
        try:
            with open(path, encoding="utf-8") as page:
                data = with_reload(page.read()).encode("utf-8")
        except (OSError, UnicodeDecodeError):
            return super().send_head()  # a 404, or the file as it is
        self._head(200, "text/html; charset=utf-8", len(data))
        return io.BytesIO(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A missing page gets the site's own 404 page, as a web server would serve it."""
        not_found = self.preview.out / "404.html"
        if code == 404 and not_found.is_file():
            page = with_reload(not_found.read_text("utf-8"))
            self._send(404, "text/html; charset=utf-8", page)
        else:
            super().send_error(code, message, explain)

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self._head(status, content_type, len(data))
        self.wfile.write(data)

    def _head(self, status: int, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


RELOAD_SCRIPT = f'<script src="{PREFIX}livereload.js" defer></script>\n'
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def with_reload(page: str) -> str:
    """An HTML page with the reload script (`livereload.js`) at the end of its head (else at
    its end): added as it is served, so that the preview's files are the site's, and any
    theme's pages reload."""
    end = _HEAD_END.search(page)
    at = end.start() if end else len(page)
    return page[:at] + RELOAD_SCRIPT + page[at:]


def error_page(error: str) -> str:
    """The page shown instead of the site while the project does not build."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'self\'">\n'
        "<title>Build failed — claimpress serve</title>\n</head>\n<body>\n"
        '<main id="main">\n<h1>The site does not build</h1>\n'
        "<p>Fix these problems; this page reloads when the site builds again.</p>\n"
        f'<pre class="build-error">{html.escape(error)}</pre>\n</main>\n</body>\n</html>\n'
    )


Changes = set[tuple[watchfiles.Change, str]]


class _Watcher:
    """The changes to a project's inputs, in batches: the root folder is watched alone (its
    two files, input folders made or removed) and each input folder with all it holds;
    build/ and the cache never are. At 10,000 claims they hold 60,000 folders, each an
    inotify watch when the whole project was watched: past the 8,192 many systems allow,
    and a second of registering after each start. Watching starts before the first build,
    so that an edit made meanwhile is heard."""

    def __init__(self, root: Path, relevant: Callable[[watchfiles.Change, str], bool]) -> None:
        self.root = root
        self.relevant = relevant
        self.found: queue.SimpleQueue[Changes] = queue.SimpleQueue()
        self.top = self._start([root], recursive=False)
        self.inputs: threading.Event | None = None
        self.folders: list[tuple[str, int, int]] = []
        self._refresh()

    def _start(self, paths: list[Path], recursive: bool) -> threading.Event:
        """Watch `paths` from a thread of its own, until the event returned is set. Returns
        once the watches are in place (the first step of watchfiles' generator)."""
        stop = threading.Event()
        batches = watchfiles.watch(
            *paths,
            watch_filter=self.relevant,
            debounce=400,
            stop_event=stop,
            recursive=recursive,
            rust_timeout=50,
            yield_on_timeout=True,
        )
        first = next(batches)
        threading.Thread(
            target=self._pass_on, args=(itertools.chain([first], batches),), daemon=True
        ).start()
        return stop

    def _pass_on(self, batches: Iterator[Changes]) -> None:
        for batch in batches:
            if batch:  # else a timeout
                self.found.put(batch)

    def _refresh(self) -> None:
        """Watch the input folders anew if one was made, removed or replaced since."""
        folders = []
        for name in WATCHED_DIRS:
            with contextlib.suppress(OSError):
                found = (self.root / name).stat()
                if stat.S_ISDIR(found.st_mode):
                    folders.append((name, found.st_dev, found.st_ino))
        if folders != self.folders:
            if self.inputs is not None:
                self.inputs.set()
            paths = [self.root / name for name, *_ in folders]
            try:
                self.inputs = self._start(paths, recursive=True) if paths else None
            except FileNotFoundError:  # one removed meanwhile: watched anew when that is heard
                self.inputs, folders = None, []
            self.folders = folders

    def __iter__(self) -> Iterator[Changes]:
        while True:
            try:
                # Not waiting for good: Ctrl-C and SIGTERM can reach any thread of the
                # process, and their handlers run in this one only once it runs again.
                batch = self.found.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self.found.empty():  # heard by both watchers at once
                batch |= self.found.get()
            self._refresh()  # before the change is told: a new folder's files are heard
            yield batch

    def close(self) -> None:
        for stop in (self.top, self.inputs):
            if stop is not None:
                stop.set()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


SERVE_DIR = "serve"
"""In the project's cache: the preview's site, and the one before it as a spare."""


@contextmanager
def _site_folder(root: Path) -> Iterator[tuple[Path, Path | None]]:
    """Where the preview is built, and its spare (`write_site`): in the project's cache,
    kept for the next `serve`, which then writes only what changed (at 10,000 claims,
    writing the whole site was 14 s of a 21 s start, and its search index was made again
    from nothing); in a temporary folder without a cache, or while another `serve` of the
    project holds the cache's."""
    folder = root / CACHE_DIR / SERVE_DIR
    held: int | None = None
    if not os.environ.get("CLAIMPRESS_NO_CACHE"):
        with contextlib.suppress(OSError):
            cache_folder(root)
            folder.mkdir(exist_ok=True)
            if folder.is_symlink():  # not ours: never written through
                raise OSError(folder)
            held = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(held)
                held = None
    if held is not None:

        def drop_leftovers() -> None:
            """The search index runs' scratch folders: of a `serve` killed outright, or of
            the run this one stopped as it closed, whose thread may not get to delete it."""
            for leftover in folder.glob(".search-*"):
                shutil.rmtree(leftover, ignore_errors=True)

        try:
            drop_leftovers()
            yield folder / "site", folder / "spare"
        finally:
            drop_leftovers()
            os.close(held)
        return
    temporary = Path(tempfile.mkdtemp(prefix="claimpress-serve-"))
    try:
        yield temporary / "site", None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing a connection mid-response (a reload, a closed tab) is normal;
        any other error is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(root: Path, *, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Build, serve on http://host:port/ and rebuild on every change until interrupted."""
    root = root.absolute()
    if not (root / SITE_FILE).is_file():  # not a project: fail as `build` does, before a
        gather(root)  # cache is made in the folder and it is watched
    signal.signal(signal.SIGTERM, _stop)
    # An edit reads files, and each read gives up the interpreter: while the background
    # thread renders listings, taking it back cost up to the default 5 ms a time, and an
    # edit took a second instead of 0.1 s.
    sys.setswitchinterval(0.0005)
    with _site_folder(root) as (out, spare):
        preview = Preview(root, out, spare)
        handler = type("Handler", (_Handler,), {"preview": preview})
        try:
            server = _Server((host, port), functools.partial(handler, directory=str(out)))
        except OSError as exc:  # the port in use, say
            raise OutputError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                "choose another port with --port (0: any free port)"
            ) from None
        with contextlib.closing(_Watcher(root, preview.relevant)) as watcher:
            preview.site.start()
            preview.rebuild()
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            url = f"http://{host}:{server.server_address[1]}/"
            print(f"serving {url} (drafts shown); watching for changes, Ctrl-C to stop", flush=True)
            try:
                for changes in watcher:
                    preview.rebuild(changes)
            except KeyboardInterrupt:
                pass
            finally:
                preview.site.stop()
                server.shutdown()
                server.server_close()
