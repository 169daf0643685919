"""Paths: nothing is read from outside the project through a symlink, nothing is written
outside the output folder, and claimpress replaces only a folder it made itself."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from claimpress import parallel
from conftest import CLAIM_YAML, REPO, run_cli, tree


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project, with a claim file and a secret in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "stolen.yaml").write_text(CLAIM_YAML.replace("Is the sky blue?", "SECRET?"))
    (folder / "secret.txt").write_text("SECRET")
    return folder


def refused(project: Path, rel: str, commands: tuple[str, ...] = ("check", "build")) -> None:
    """The commands refuse the project, naming `rel`, with the build untouched."""
    before = tree(project / "build") if (project / "build").is_dir() else None
    for command in commands:
        result = run_cli(command, cwd=project)
        assert result.code == 1, (command, result.out)
        assert "Traceback" not in result.err
        assert rel in result.err and "symlink leads outside the project" in result.err
    after = tree(project / "build") if (project / "build").is_dir() else None
    assert after == before
    if after:
        assert not any(b"SECRET" in data for data in after.values())


def test_a_claim_symlinked_from_outside_is_refused(project: Path, outside: Path) -> None:
    (project / "claims" / "stolen.yaml").symlink_to(outside / "stolen.yaml")
    refused(project, "claims/stolen.yaml:0:0: (file): ")


def test_a_claims_folder_symlinked_outside_is_refused(project: Path, outside: Path) -> None:
    (project / "claims" / "is-the-sky-blue.yaml").rename(outside / "is-the-sky-blue.yaml")
    (project / "claims").rmdir()
    (project / "claims").symlink_to(outside)
    refused(project, "claims/stolen.yaml:0:0: (file): ")


@pytest.mark.parametrize("folder", ["sources", "figures"])
def test_registry_symlinked_outside_is_refused(folder: str, project: Path, outside: Path) -> None:
    (outside / "shared.yaml").write_text("x: {title: X, url: https://example.org/x}\n")
    (project / folder).symlink_to(outside)
    refused(project, f"{folder}/shared.yaml:0:0: (file): ")


def test_approvals_symlinked_outside_are_refused(project: Path, outside: Path) -> None:
    (outside / "is-the-sky-blue.json").write_text("{}")
    (project / "approvals").mkdir()
    (project / "approvals" / "is-the-sky-blue.json").symlink_to(outside / "is-the-sky-blue.json")
    refused(project, "approvals/is-the-sky-blue.json:0:0: (file): ")
    (project / "approvals" / "is-the-sky-blue.json").unlink()
    (project / "approvals").rmdir()
    (project / "approvals").symlink_to(outside)
    refused(project, "approvals/is-the-sky-blue.json:0:0: (file): ")


def test_a_symlink_inside_the_project_is_followed(project: Path) -> None:
    (project / "drafts").mkdir()
    (project / "claims" / "is-the-sky-blue.yaml").rename(project / "drafts" / "sky.yaml")
    (project / "claims" / "is-the-sky-blue.yaml").symlink_to(project / "drafts" / "sky.yaml")
    assert run_cli("build", cwd=project).code == 0


@pytest.mark.parametrize("link", ["templates/index.html", "templates/static/leak.txt",
                                  "templates/static", "templates", "about.md"])
def test_theme_and_about_symlinks_outside_are_refused(link: str, project: Path,
                                                      outside: Path) -> None:
    assert run_cli("build", cwd=project).code == 0
    (outside / "index.html").write_text("SECRET")
    target = outside if link in ("templates/static", "templates") else outside / "secret.txt"
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(target)
    shown = link if link not in ("templates/static", "templates") else ""
    refused(project, shown, ("check", "build") if link.startswith("templates") else ("build",))


def test_check_finds_what_a_build_stops_at_in_the_theme(project: Path) -> None:
    (project / "templates" / "static").mkdir(parents=True)
    (project / "templates" / "index.html").write_text('{% extends "base.html" %}\n{% if %}\n')
    (project / "templates" / "_claim_item.html").write_text("\n{{ page.slug | nosuch }}\n")
    (project / "templates" / "static" / "odd.css").write_text("a { b: '{%' }")  # no template
    (project / "templates" / "about.html").write_bytes(b"{{ x }}\ncaf\xe9\n")
    (project / "templates" / "claim.html").write_text(
        (REPO / "templates" / "claim.html").read_text()
    )
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err == (
        "templates/_claim_item.html:2:1: (file): template error: No filter named 'nosuch'.\n"
        "templates/about.html:2:1: (file): template error: byte 0xe9 is not UTF-8; save the "
        "file as UTF-8\n"
        "templates/index.html:2:1: (file): template error: Expected an expression, got "
        "'end of statement block'\n"
        "3 error(s), 0 warning(s)\n"
    )
    assert run_cli("build", cwd=project).code == 1
    (project / "templates" / "index.html").unlink()
    (project / "templates" / "_claim_item.html").unlink()
    result = run_cli("build", cwd=project)  # a build stops at it too, and says where
    assert result.err == (
        "error: templates/about.html:2: template error: byte 0xe9 is not UTF-8; save the file "
        "as UTF-8\n"
    )
    (project / "templates" / "about.html").unlink()
    # What no rendered template uses is never compiled, by build or check.
    (project / "templates" / "README.md").write_text("Write {{ page.slug | upper }} or {{ x }\n")
    (project / "templates" / "old").mkdir()
    (project / "templates" / "old" / "item.html").write_text("{% if %}\n")
    assert run_cli("check", cwd=project).code == 0
    assert run_cli("build", cwd=project).code == 0
    (project / "templates" / "_claim_list.html").write_text('{% include "old/item.html" %}\n')
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err.startswith("templates/old/item.html:1:1: (file): template error: ")
    assert run_cli("build", cwd=project).code == 1


def test_a_template_failing_in_a_forked_worker_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enough claims that they are rendered in forked workers (CLAIMPRESS_JOBS=2): the
    # error pickled back by a worker has lost the traceback that locates it.
    spec = importlib.util.spec_from_file_location("generate", REPO / "benchmarks/generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    root = tmp_path / "site"
    generate.generate(root, parallel.MIN_ITEMS + 20)
    (root / "templates").mkdir()
    theme = (REPO / "templates" / "claim.html").read_text()
    (root / "templates" / "claim.html").write_text(
        theme.replace("</article>", "{{ page.nosuch.field }}</article>", 1)
    )
    line = theme[: theme.index("</article>")].count("\n") + 1
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    result = run_cli("build", cwd=root)
    assert result.code == 1
    assert result.err.startswith(f"error: templates/claim.html:{line}: template error: ")


def test_a_broken_theme_template_is_a_located_error(project: Path) -> None:
    assert run_cli("build", cwd=project).code == 0
    before = tree(project / "build")
    (project / "templates").mkdir()
    (project / "templates" / "index.html").write_text(
        '{% extends "base.html" %}\n{% block main %}{{ missing.field }}{% endblock %}\n')
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert result.err.endswith(
        "error: templates/index.html:2: template error: 'missing' is undefined\n")
    (project / "templates" / "index.html").write_text("{% if %}\n")
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert "error: templates/index.html:1: template error: " in result.err
    (project / "templates" / "index.html").unlink()
    for name in ("claim.html", "_claim_item.html"):  # read before any rendering, for keys
        (project / "templates" / name).write_text("{% if %}\n")
        result = run_cli("build", cwd=project)
        assert result.code == 1
        assert f"error: templates/{name}:1: template error: " in result.err
        (project / "templates" / name).unlink()
    assert tree(project / "build") == before
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".build")) == [
        ".build.lock"]


def test_about_md_that_is_not_utf8_is_a_located_error(project: Path) -> None:
    (project / "about.md").write_bytes(b"About us\n\ncaf\xe9\n")
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert result.err.startswith("about.md:3:4: (file): byte 0xe9 is not UTF-8")


@pytest.mark.parametrize("out", ["site.yaml", "sources", "sources/x", "templates", ".git",
                                 "figures/x", "../..", "claims/../claims", "about.md"])
def test_more_dangerous_output_folders_are_refused(project: Path, out: str) -> None:
    for folder in ("sources", "templates", ".git"):
        (project / folder).mkdir(exist_ok=True)
        (project / folder / "keep.txt").write_text("keep")
    (project / "about.md").write_text("About\n")
    before = tree(project.parent)
    result = run_cli("build", "--out", out, cwd=project)
    assert result.code == 1
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    assert tree(project.parent) == before


def test_output_folder_through_a_symlinked_parent_into_the_project(project: Path,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(project / "claims")
    result = run_cli("build", "--out", str(tmp_path / "link" / "site"), cwd=project)
    assert result.code == 1
    assert "refusing to write the site inside claims/" in result.err
    assert sorted(os.listdir(project / "claims")) == ["is-the-sky-blue.yaml"]


def test_output_folder_through_a_symlinked_parent_elsewhere(project: Path,
                                                            tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "www")
    assert run_cli("build", "--out", str(tmp_path / "link" / "site"), cwd=project).code == 0
    assert (tmp_path / "www" / "site" / "index.html").is_file()


def test_a_symlinked_output_folder_is_refused(project: Path, outside: Path) -> None:
    (project / "build").symlink_to(outside)
    before = tree(outside)
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert "refusing to write the site through the symlink" in result.err
    assert tree(outside) == before


def test_symlinks_planted_in_the_previous_build_are_not_written_through(project: Path,
                                                                         outside: Path) -> None:
    assert run_cli("build", cwd=project).code == 0
    build = project / "build"
    page = build / "claims" / "is-the-sky-blue" / "index.html"
    page.unlink()
    page.symlink_to(outside / "secret.txt")
    os.rename(build / "static", project / "static-moved")
    (build / "static").symlink_to(outside)
    before = tree(outside)
    assert run_cli("build", cwd=project).code == 0
    assert tree(outside) == before
    assert not page.is_symlink() and not (build / "static").is_symlink()
    assert b"Is the sky blue?" in page.read_bytes()


def test_topics_become_safe_page_paths(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    topics = ["../../etc", "/abs/path", "%2e%2e%2fx", "CON", "nul", "Sky", "SKY", "ský",
              "日本", "!!!", "a" * 200, "x\\y", "<script>"]
    claim.write_text(claim.read_text().replace("topics: [Sky]", f"topics: {topics!r}"))
    result = run_cli("build", cwd=project)
    assert result.code == 0, result.err
    build = project / "build"
    written = sorted(p.relative_to(build).as_posix() for p in build.rglob("*"))
    assert all(".." not in p.split("/") for p in written)
    slugs = sorted(p.name for p in (build / "topics").iterdir() if p.is_dir())
    for slug in slugs:
        assert slug.lower() not in ("con", "nul", "aux", "prn"), slug
        assert all(c.isascii() and (c.isalnum() or c == "-") for c in slug), slug
    assert len(slugs) == len(set(s.casefold() for s in slugs))
    assert not (project.parent / "etc").exists() and not Path("/abs/path").exists()


def test_a_lock_file_planted_as_a_symlink_is_not_followed(project: Path, outside: Path) -> None:
    (project / ".build.lock").symlink_to(outside / "created-by-build")
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert result.err.startswith("error: ") and ".build.lock" in result.err
    assert not (outside / "created-by-build").exists()


def test_a_site_yaml_symlinked_from_outside_is_refused(project: Path, outside: Path) -> None:
    (outside / "site.yaml").write_text((project / "site.yaml").read_text())
    (project / "site.yaml").unlink()
    (project / "site.yaml").symlink_to(outside / "site.yaml")
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err.startswith(
        "site.yaml:0:0: (file): symlink leads outside the project; copy the file in instead\n")
