"""Shared test helpers: throwaway projects built inline, and the CLI run end to end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).parent / "seeds"
"""The two seed articles of the house format, copied from the product's `shared/seeds/`."""
SHARED_SEEDS = REPO.parent / "shared" / "seeds"

SITE_YAML = """\
title: Test Checks
base_url: https://checks.example.org/
organization: Test Desk
disclaimer: Test Desk can make mistakes.
rating_scale:
  - name: Accurate
  - name: Inaccurate
"""

CLAIM_YAML = """\
question: Is the sky blue?
checked_on: 2026-01-16
status: published
topics: [Sky]
summary: >-
  The sky looks blue {share:.0%} of clear days [@survey].
sections:
  - heading: Why
    body: Rayleigh scattering favours short wavelengths [@survey].
  - heading: Bottom line
    body: Yes, on {clear:,} clear days out of {days:,}.
figures:
  clear: {value: 300, source: survey}
  days: {value: 300, source: survey}
  share: {formula: clear / days}
sources:
  survey:
    title: Sky survey
    publisher: Sky Institute
    url: https://sky.example.org/survey
    accessed: 2026-01-15
    archive_url: https://web.archive.org/web/2026/https://sky.example.org/survey
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="Rewrite tests/golden/ from the current output; review the diff.")


NOW = "2026-02-01T12:00:00Z"
"""The moment every test runs at (CLAIMPRESS_NOW), so dates in outputs never drift."""


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every command, in process or as a subprocess, as of NOW."""
    monkeypatch.setenv("CLAIMPRESS_NOW", NOW)


@pytest.fixture(scope="session")
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user cache folder for the whole run (the cache's signing key goes there)."""
    return tmp_path_factory.mktemp("user-cache")


@pytest.fixture(autouse=True)
def no_user_cache(monkeypatch: pytest.MonkeyPatch, user_cache: Path) -> None:
    """Keep the tests out of the real ~/.cache: commands run with XDG_CACHE_HOME set."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache))


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: Path) -> Result:
    """Run the real `claimpress` command in a subprocess, as a user would."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CLAIMPRESS_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "claimpress", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def check_fixture(claim: Path, project: Path, request: pytest.FixtureRequest) -> Result:
    """Run `check` on `project` with the fixture `claim` in claims/, and compare what it
    prints with the fixture's `.expected` file (rewritten under --update-golden)."""
    shutil.copy(claim, project / "claims" / claim.name)
    result = run_cli("check", cwd=project)
    expected = claim.with_suffix(".expected")
    if request.config.getoption("--update-golden"):
        expected.write_text(result.err)
    assert "Traceback" not in result.err
    assert result.err == expected.read_text()
    return result


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates every `Renderer` renders from now on, in order: all in this process
    (one core), where a forked process's renders would not be counted."""
    from claimpress.render import Renderer

    monkeypatch.setenv("CLAIMPRESS_JOBS", "1")

    names: list[str] = []
    render = Renderer.render

    def counted(self: Renderer, template: str, **context: object) -> str:
        names.append(template)
        return render(self, template, **context)

    monkeypatch.setattr(Renderer, "render", counted)
    return names


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal valid project with one published claim."""
    root = tmp_path / "site"
    (root / "claims").mkdir(parents=True)
    (root / "site.yaml").write_text(SITE_YAML)
    (root / "claims" / "is-the-sky-blue.yaml").write_text(CLAIM_YAML)
    return root


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the repository's example project (claims, registry, site.yaml)."""
    root = tmp_path / "example"
    root.mkdir()
    for name in ("claims", "sources", "figures"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "site.yaml", root / "site.yaml")
    shutil.copy(REPO / "about.md", root / "about.md")
    return root


RICH_SITE_YAML = """\
title: Rich Checks
base_url: https://checks.example.org/desk/
organization: Rich Desk
description: A richer project for site tests.
disclaimer: Rich Desk can make mistakes. [About us](https://checks.example.org/desk/about/).
rating_scale:
  - name: "True"
    description: Correct and complete.
  - name: Misleading
    description: Some truth, false impression.
  - name: "False"
    description: Wrong.
"""

RICH_CLAIMS = {
    "did-it-rain-on-tuesday": """\
question: Did it rain 120 days in Paris last year?
checked_on: 2026-02-10
status: published
topics: [Weather, Météo]
verdict: Misleading
claimant: Mayor </script><script>alert(1)</script> & Co
appeared: {url: https://news.example.org/rain, date: 2026-02-01, where: Evening News}
author: Ana Writer
editor: Ed Itor
corrections:
  - {date: 2026-02-12, note: "We corrected the number of rainy days [@met].", kind: correction}
  - {date: 2026-03-01, note: Added the station list., kind: update}
summary: >-
  Paris saw {rainy:,} rainy days, a share of {share:.0%} of the year [@met].
sections:
  - heading: The record
    body: The station log shows precipitation on {rainy:,} days [@met] [@station].
  - heading: Bottom line
    body: Close, but not the number claimed. Zanzibarian drizzle is rare.
limitations:
  - One station only.
follow_up:
  - Is the sky blue?
  - Will it rain tomorrow?
figures:
  rainy: {value: 110, source: met}
  share: {formula: rainy / days_in_year}
sources:
  station:
    title: Station list
    publisher: Météo Paris
    url: https://meteo.example.org/stations
""",
    "is-the-sky-blue": """\
question: Is the sky blue?
checked_on: 2026-01-16
status: published
topics: [Sky, weather]
summary: The sky looks blue on clear days [@met].
sections:
  - heading: Bottom line
    body: Yes, on clear days [@met].
follow_up:
  - Did it rain 120 days in Paris last year?
""",
    "a-draft-in-progress": """\
question: Is this a draft?
checked_on: 2026-03-05
status: draft
topics: [Drafts]
summary: Not yet [@met].
sections:
  - heading: Bottom line
    body: Still a draft.
""",
}

RICH_REGISTRY = {
    "sources/weather.yaml": """\
met:
  title: Annual weather report
  publisher: Met Office
  published: 2026-01-05
  url: https://met.example.org/report
  archive_url: https://web.archive.org/web/2026/https://met.example.org/report
""",
    "figures/calendar.yaml": """\
days_in_year: {value: 365, source: met}
""",
}


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    """A project exercising the reader's site: a verdict, claimant, appearance, corrections,
    a draft, shared sources, accented topics, and a base_url under a sub-path."""
    root = tmp_path / "rich"
    (root / "claims").mkdir(parents=True)
    (root / "sources").mkdir()
    (root / "figures").mkdir()
    (root / "site.yaml").write_text(RICH_SITE_YAML)
    (root / "about.md").write_text("We check claims.\n\n## Method\n\nCarefully.\n")
    for slug, text in RICH_CLAIMS.items():
        (root / "claims" / f"{slug}.yaml").write_text(text)
    for rel, text in RICH_REGISTRY.items():
        (root / rel).write_text(text)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes, for byte-identical comparisons (the build
    cache, `.claimpress-cache/`, aside: writing it is not a change to the project)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".claimpress-cache" not in p.relative_to(root).parts}


# --- Real browser and real server, shared by the browser tests ------------------------------

CHROMIUM = os.environ.get("CLAIMPRESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """A real headless Debian Chromium driven by Playwright. Skips locally when Chromium is
    missing, saying why; fails instead when CLAIMPRESS_REQUIRE_BROWSER is set (as in CI)."""
    reason = _browser_unavailable()
    if reason:
        if os.environ.get("CLAIMPRESS_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests are required here but {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def serve_dir():  # type: ignore[no-untyped-def]
    """Serve a folder over HTTP on 127.0.0.1 (a real server on a free port); yields a function
    that takes the folder and returns the base URL."""
    import functools
    import http.server
    import threading

    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


import http.server  # noqa: E402


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    process: subprocess.Popen  # type: ignore[type-arg]
    out: Path
    err: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(root: Path, logs: Path) -> Iterator[Server]:
    """`claimpress serve --port N` in `root`, started as a user would, until it serves; its
    output goes to files in `logs`. Stopped as Ctrl-C would (SIGTERM) when done."""
    port = free_port()
    out, err = logs / f"serve-{port}.out", logs / f"serve-{port}.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "claimpress", "serve", "--port", str(port)],
            cwd=root, stdout=stdout, stderr=stderr, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 60
        while "serving http://" not in out.read_text():
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}/", process, out, err)
    finally:
        process.terminate()
        process.wait(timeout=30)
