"""The command line end to end, as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.main import get_command
from watchfiles import Change

from claimpress.cache import CACHE_DIR
from claimpress.cli import app
from claimpress.serve import RELOAD_SCRIPT, Preview, with_reload
from conftest import REPO, Server, run_cli, serving, tree

SKY, RAIN = "is-the-sky-blue", "did-it-rain-on-tuesday"

COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_help(tmp_path: Path) -> None:
    assert run_cli("--help", cwd=tmp_path).code == 0
    for command in COMMANDS:
        result = run_cli(command, "--help", cwd=tmp_path)
        assert result.code == 0, command
        assert "Usage:" in result.out
        doc = get_command(app).commands[command].help  # type: ignore[attr-defined]
        assert doc and doc.strip(), f"{command} has no help text"


def test_build_writes_the_site(project: Path) -> None:
    result = run_cli("build", cwd=project)
    assert result.code == 0, result.err
    assert "built 1 claim(s)" in result.out
    files = tree(project / "build")
    for path in ("index.html", "claims/is-the-sky-blue/index.html",
                 "claims/is-the-sky-blue/index.txt", "claims/is-the-sky-blue/index.json",
                 "static/style.css"):
        assert path in files
    page = files["claims/is-the-sky-blue/index.html"].decode()
    assert "<h1>Is the sky blue?</h1>" in page
    assert "The sky looks blue 100% of clear days" in page
    assert 'href="#source-1"' in page and 'id="source-1"' in page
    assert 'href="../../claims/is-the-sky-blue/"' in files["index.html"].decode() or \
        'href="claims/is-the-sky-blue/"' in files["index.html"].decode()


def test_builds_are_deterministic(project: Path, tmp_path: Path) -> None:
    assert run_cli("build", "--out", str(tmp_path / "a"), cwd=project).code == 0
    assert run_cli("build", "--out", str(tmp_path / "b"), cwd=project).code == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_drafts_are_left_out_unless_asked(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text().replace("status: published", "status: draft"))
    assert run_cli("build", cwd=project).code == 0
    assert "claims/is-the-sky-blue/index.html" not in tree(project / "build")
    assert run_cli("build", "--drafts", cwd=project).code == 0
    page = (project / "build" / "claims" / "is-the-sky-blue" / "index.html").read_text()
    assert "DRAFT" in page


@pytest.mark.parametrize("out", ["/", "~", ".", "claims", "claims/x", ".."])
def test_dangerous_output_folders_are_refused(project: Path, out: str) -> None:
    before = tree(project)
    target = str(Path(out).expanduser()) if out == "~" else out
    result = run_cli("build", "--out", target, cwd=project)
    assert result.code == 1
    assert result.err.startswith("error: refusing")
    assert tree(project) == before


def test_a_folder_claimpress_did_not_make_is_not_replaced(project: Path) -> None:
    (project / "mine").mkdir()
    (project / "mine" / "notes.txt").write_text("keep me")
    result = run_cli("build", "--out", "mine", cwd=project)
    assert result.code == 1
    assert "was not made by claimpress" in result.err
    assert (project / "mine" / "notes.txt").read_text() == "keep me"


def test_export_formats(project: Path) -> None:
    text = run_cli("export", "is-the-sky-blue", cwd=project).out
    assert text.startswith("Is the sky blue?\n\nChecked on January 16, 2026\n"
                           "Disclaimer: Test Desk can make mistakes.\n")
    assert "[1] Sky survey. Sky Institute. https://sky.example.org/survey" in text
    data = json.loads(run_cli("export", "claims/is-the-sky-blue.yaml", "-f", "json",
                              cwd=project).out)
    assert data["figures"]["share"] == {"value": 1, "shown": "1", "source": None,
                                        "formula": "clear / days", "derivation": "300 ÷ 300"}
    assert data["sources"][0]["number"] == 1
    md = run_cli("export", "is-the-sky-blue", "-f", "md", cwd=project).out
    assert md.startswith("# Is the sky blue?\n")
    html = run_cli("export", "is-the-sky-blue", "-f", "html", cwd=project).out
    assert html.startswith("<!doctype html>")


def test_export_of_an_unknown_claim(project: Path) -> None:
    result = run_cli("export", "nope", cwd=project)
    assert result.code == 1
    assert result.err == "error: no claim `nope`; known: is-the-sky-blue\n"


@pytest.mark.parametrize("command", [["export"], ["review"], ["approve", "--by", "Ann"],
                                     ["submit"]])
def test_a_claim_not_there_among_many_gets_the_closest_not_all(
    project: Path, command: list[str]
) -> None:
    sky = project / "claims" / "is-the-sky-blue.yaml"
    for color in ("red", "green", "grey", "gold", "pink", "teal", "navy", "plum", "rust",
                  "sand", "jade"):
        text = sky.read_text().replace("Is the sky blue?", f"Is the sky {color}?")
        (project / "claims" / f"is-the-sky-{color}.yaml").write_text(text)
    name, *options = command
    result = run_cli(name, "claims/is-the-sky-gren.yaml", *options, cwd=project)
    assert (result.code, result.err) == (
        1, "error: no claim `claims/is-the-sky-gren.yaml`; did you mean `is-the-sky-green`, "
           "`is-the-sky-grey` or `is-the-sky-red`?\n")
    result = run_cli(name, "tides", *options, cwd=project)
    assert (result.code, result.err) == (1, "error: no claim `tides` among the 12 in claims/\n")


def test_check_json_and_strict(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text() + "  unused: {title: U, url: https://u.example.org/}\n")
    result = run_cli("check", "--format", "json", cwd=project)
    assert result.code == 0
    [problem] = [p for p in json.loads(result.out) if p["rule"] == "unused-source"]
    assert problem["severity"] == "warning"
    assert problem["line"] == 23
    assert run_cli("check", "--strict", cwd=project).code == 1
    assert run_cli("build", "--strict", cwd=project).code == 1


def test_missing_site_yaml(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith("site.yaml:0:0: (file): no site.yaml here")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be at least 1, not `0`"),
        ("ten", "expected a whole number, got text"),
    ],
)
def test_a_page_size_that_is_no_count_is_an_error_in_site_yaml(
    project: Path, value: str, message: str
) -> None:
    site = project / "site.yaml"
    site.write_text(site.read_text() + f"page_size: {value}\n")
    line = len(site.read_text().splitlines())
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert result.err == f"site.yaml:{line}:12: page_size: {message}\n1 error(s), 0 warning(s)\n"
    assert not (project / "build").exists()


def test_schema_is_json_schema(tmp_path: Path) -> None:
    schema = json.loads(run_cli("schema", cwd=tmp_path).out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "question" in schema["required"]
    assert schema["additionalProperties"] is False


def test_version_is_the_packages(tmp_path: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run_cli("--version", cwd=tmp_path)
    assert (result.code, result.out) == (0, f"claimpress {version}\n")


@pytest.mark.parametrize(("setting", "message"), [
    ("CLAIMPRESS_JOBS=two", "CLAIMPRESS_JOBS='two' is not a whole number, such as 2"),
    ("CLAIMPRESS_SEARCH_SHARD_PAGES=1e3",
     "CLAIMPRESS_SEARCH_SHARD_PAGES='1e3' is not a whole number, such as 2"),
    ("CLAIMPRESS_NOW=yesterday",
     "CLAIMPRESS_NOW='yesterday' is not a date or time such as 2026-02-01"),
])
def test_a_bad_setting_in_the_environment_is_named_not_a_crash(
        project: Path, monkeypatch: pytest.MonkeyPatch, setting: str, message: str) -> None:
    name, value = setting.split("=")
    monkeypatch.setenv(name, value)
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert result.err == f"error: {message}\n"
    assert not (project / "build").exists()


def test_serve_keeps_its_site_in_the_cache_and_the_next_serve_writes_only_what_changed(
    rich: Path, tmp_path: Path
) -> None:
    shown = " ".join(run_cli("serve", "--help", cwd=rich).out.split())  # (rewrapped)
    assert "The preview is kept in .claimpress-cache/serve/" in shown
    kept = rich / CACHE_DIR / "serve" / "site"
    sky, rain = (kept / "claims" / slug / "index.html" for slug in (SKY, RAIN))

    def served(server: Server, slug: str) -> bytes:
        with urllib.request.urlopen(f"{server.url}claims/{slug}/") as response:
            return bytes(response.read())

    def page(path: Path) -> bytes:
        return with_reload(path.read_text()).encode()

    with serving(rich, tmp_path) as first:
        assert served(first, SKY) == page(sky)
        written = sky.stat().st_ino
        # a second serve of the project meanwhile builds in a temporary folder of its own
        with serving(rich, tmp_path) as second:
            assert served(second, SKY) == page(sky)
        assert sky.stat().st_ino == written
    claim = rich / "claims" / f"{RAIN}.yaml"
    claim.write_text(claim.read_text().replace("Paris saw", "Lyon saw"))
    for _ in range(2):  # the second time over the spare the first one left
        with serving(rich, tmp_path) as again:
            assert sky.stat().st_ino == written  # not written again
            assert b"Lyon" in served(again, RAIN) == page(rain)
            # as a search index run under way when it stops leaves its scratch folder
            (kept.parent / ".search-under-way" / "pagefind").mkdir(parents=True)
    assert sorted(p.name for p in kept.parent.iterdir()) == [".lock", ".site.lock", "site", "spare"]
    assert not (rich / "build").exists()


def test_serve_serves_the_files_build_writes_with_the_reload_script_added(
    rich: Path, tmp_path: Path
) -> None:
    """The reload script is added to each page as it is served, not written into the
    preview's files: they are `build`'s (so `serve` after a build renders no claim again),
    and a theme's pages reload whatever their templates say."""
    assert run_cli("build", cwd=rich).code == 0
    shown = " ".join(run_cli("serve", "--help", cwd=rich).out.split())  # (rewrapped)
    assert "the first one hard-links the files that build/ (claimpress build) has alike" in shown
    built = rich / "build" / "claims" / SKY / "index.html"
    kept = rich / CACHE_DIR / "serve" / "site" / "claims" / SKY / "index.html"
    with serving(rich, tmp_path) as server:
        with urllib.request.urlopen(f"{server.url}claims/{SKY}/") as response:
            page = response.read().decode()
        assert kept.read_bytes() == built.read_bytes()
        assert kept.samefile(built)  # hard-linked from build/, not written again
        assert RELOAD_SCRIPT not in built.read_text()
        assert page == with_reload(built.read_text())
        assert page.count(RELOAD_SCRIPT + "</head>") == 1
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}no/such/page/")
        assert missing.value.code == 404
        assert RELOAD_SCRIPT + "</head>" in missing.value.read().decode()
        with urllib.request.urlopen(f"{server.url}static/style.css") as response:
            assert response.read() == (rich / "build" / "static" / "style.css").read_bytes()


def test_a_theme_made_before_serve_added_its_own_script_still_builds(rich: Path) -> None:
    """A base.html copied from the default theme when pages loaded the reload script
    themselves (`{% if livereload %}`) builds as it did for `build`, with no script."""
    base = (REPO / "templates" / "base.html").read_text()
    old = '{% if livereload %}\n<script src="/_claimpress/livereload.js" defer></script>\n'
    (rich / "templates").mkdir()
    (rich / "templates" / "base.html").write_text(
        base.replace("</head>", old + "{% endif %}\n</head>"))
    assert run_cli("build", cwd=rich).code == 0
    assert "livereload" not in (rich / "build" / "index.html").read_text()


def test_the_reload_script_goes_at_the_end_of_a_pages_head_or_else_at_its_end() -> None:
    assert with_reload("<html><HEAD ><title>t</title></head >x</head>") == (
        f"<html><HEAD ><title>t</title>{RELOAD_SCRIPT}</head >x</head>")
    assert with_reload("<p>no head</p>") == f"<p>no head</p>{RELOAD_SCRIPT}"


def test_serve_without_a_cache_builds_in_a_temporary_folder(
    rich: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIMPRESS_NO_CACHE", "1")
    with serving(rich, tmp_path) as server, urllib.request.urlopen(server.url) as response:
        assert b"Is the sky blue?" in response.read()
    assert not (rich / CACHE_DIR).exists()


def test_serve_hears_changes_to_inputs_only(rich: Path) -> None:
    preview = Preview(rich, rich / CACHE_DIR / "serve" / "site")
    for rel, relevant in [
        ("claims/is-the-sky-blue.yaml", True),
        ("sources/weather.yaml", True),
        ("templates/claim.html", True),
        ("site.yaml", True),
        ("about.md", True),
        ("approvals/is-the-sky-blue.json", True),
        ("claims/.is-the-sky-blue.yaml.swp", False),
        (f"{CACHE_DIR}/serve/site/claims/is-the-sky-blue/index.html", False),
        (f"{CACHE_DIR}/serve/site/site.yaml", False),
        ("build/index.html", False),
        ("README.md", False),
    ]:
        assert preview.relevant(Change.modified, str(rich / rel)) is relevant, rel


def inotify_watches(pid: int) -> set[int]:
    """The inodes of the folders a process watches with inotify, as Linux lists them."""
    watched = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # an fd closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                found = re.findall(r"^inotify wd:\w+ ino:(\w+)", info, re.M)
                watched |= {int(ino, 16) for ino in found}
    return watched


def test_serve_outside_a_project_fails_and_leaves_nothing(tmp_path: Path) -> None:
    result = run_cli("serve", "--port", "0", cwd=tmp_path)
    assert (result.code, result.out) == (1, "")
    assert result.err == ("site.yaml:0:0: (file): no site.yaml here; run claimpress in a project "
                          "folder (one with site.yaml and claims/)\n1 error(s), 0 warning(s)\n")
    assert list(tmp_path.iterdir()) == []


def test_serve_on_a_port_in_use_says_so_and_how_to_choose_another(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), cwd=project)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"error: cannot serve on 127.0.0.1:{port}: Address already in use; "
                          "choose another port with --port (0: any free port)\n")


def settles(check: Callable[[], bool]) -> bool:
    """Whether `check` comes true within 30 s."""
    deadline = time.monotonic() + 30
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def about(server: Server) -> str:
    """The about page `server` serves (an error page has status 500: HTTPError)."""
    with urllib.request.urlopen(f"{server.url}about/") as response:
        return str(response.read().decode())


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="reads /proc (Linux only)")
def test_serve_watches_the_input_folders_alone_and_one_made_while_it_runs(
    rich: Path, tmp_path: Path
) -> None:
    inputs = [rich, rich / "claims", rich / "sources", rich / "figures"]
    with serving(rich, tmp_path) as server:
        # neither build/ nor the cache, where serve's own site has a folder per page
        # (os.walk passes over the folders the search indexing deletes meanwhile)
        assert sum(len(folders) for _, folders, _ in os.walk(rich / CACHE_DIR)) > 20
        assert inotify_watches(server.process.pid) == {p.stat().st_ino for p in inputs}
        (rich / "templates").mkdir()
        template = rich / "templates" / "about.html"
        for word in ("first", "second"):  # the second heard only by the new folder's watch
            template.write_text(
                f'{{% extends "base.html" %}}{{% block main %}}<p>{word}</p>{{% endblock %}}')
            assert settles(lambda: f"<p>{word}</p>" in about(server)), word  # noqa: B023
        inputs.append(rich / "templates")
        assert settles(lambda: inotify_watches(server.process.pid)
                       == {p.stat().st_ino for p in inputs})


def test_serve_hears_approval_files(rich: Path, tmp_path: Path) -> None:
    """Approval files are inputs: a broken one fails the preview, and mending it (as
    `claimpress approve` does an edit of a published claim, writing no claim file) shows
    the site again."""

    def fails(server: Server) -> bool:
        try:
            about(server)
        except urllib.error.HTTPError as exc:
            return exc.code == 500 and "not a claimpress approval file" in exc.read().decode()
        return False

    with serving(rich, tmp_path) as server:
        assert not fails(server)
        (rich / "approvals").mkdir()
        broken = rich / "approvals" / "is-the-sky-blue.json"
        broken.write_text("{}")
        assert settles(lambda: fails(server))
        broken.unlink()
        assert settles(lambda: not fails(server))


def test_the_cache_folder_ignores_itself_for_git_and_backups(rich: Path, tmp_path: Path) -> None:
    assert run_cli("check", cwd=rich).code == 0
    cache = rich / CACHE_DIR
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (cache / "CACHEDIR.TAG").read_text().startswith(
        "Signature: 8a477f597d28d172789f06886806bc55\n"
    )
    # one of the user's own is kept, and a planted symlink is never written through
    (cache / ".gitignore").write_text("mine\n")
    (cache / "CACHEDIR.TAG").unlink()
    (cache / "CACHEDIR.TAG").symlink_to(tmp_path / "elsewhere")
    shutil.rmtree(cache / "summaries")
    assert run_cli("check", cwd=rich).code == 0
    assert (cache / "summaries").is_dir()
    assert (cache / ".gitignore").read_text() == "mine\n"
    assert not (tmp_path / "elsewhere").exists()
