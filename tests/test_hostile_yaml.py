"""Hostile input files: every one gets its exact `path:line:col: field: message` and exit 1,
no traceback, and nothing written.

The corpus lives in tests/hostile/<kind>/NAME.yaml with NAME.expected beside it; <kind> is
where the file goes in a project: `claims/`, `sources/`, `figures/`, or `site` (it becomes
site.yaml). Regenerate the expected files with
`python -m pytest tests/test_hostile_yaml.py --update-golden` and review the diff.
Inputs too big to keep in the repository (50 MB, 100,000 levels deep) are made here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from claimpress import yamltree
from claimpress.cli import app
from conftest import CLAIM_YAML, run_cli, tree

HOSTILE = Path(__file__).parent / "hostile"
CASES = sorted(
    (kind.name, path.stem)
    for kind in HOSTILE.iterdir()
    if kind.is_dir()
    for path in kind.glob("*.yaml")
)


def place(project: Path, kind: str, name: str, data: bytes) -> None:
    """Put a hostile file where a project reads files of its kind."""
    if kind == "site":
        (project / "site.yaml").write_bytes(data)
    else:
        (project / kind).mkdir(exist_ok=True)
        (project / kind / f"{name}.yaml").write_bytes(data)


def check(project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """`claimpress check` in the project, in-process (the corpus is large), as a user runs it."""
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["check"], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}/{n}" for k, n in CASES])
def test_hostile_file_gets_its_exact_error(kind: str, name: str, project: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           request: pytest.FixtureRequest) -> None:
    place(project, kind, name, (HOSTILE / kind / f"{name}.yaml").read_bytes())
    before = tree(project)
    code, out, err = check(project, monkeypatch)
    expected = HOSTILE / kind / f"{name}.expected"
    if request.config.getoption("--update-golden"):
        expected.write_text(err)
    assert code == 1
    assert out == ""
    assert "Traceback" not in err and "internal error" not in err
    assert err == expected.read_text()
    lines = err.splitlines()
    assert lines[-1].endswith("warning(s)")
    for line in lines[:-1]:
        path, lineno, col, rest = line.split(":", 3)
        assert path.endswith(".yaml") and lineno.isdigit() and col.isdigit() and rest.strip()
    assert tree(project) == before


def test_every_hostile_file_has_its_expected_output() -> None:
    for kind, name in CASES:
        assert (HOSTILE / kind / f"{name}.expected").is_file(), f"{kind}/{name}"


def test_a_byte_order_mark_is_accepted(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_bytes(b"\xef\xbb\xbf" + claim.read_bytes())
    (project / "site.yaml").write_bytes(b"\xef\xbb\xbf" + (project / "site.yaml").read_bytes())
    assert check(project, monkeypatch) == (0, "ok: 1 claim(s) checked\n", "")


def test_windows_line_ends_are_accepted(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_bytes(claim.read_bytes().replace(b"\n", b"\r\n"))
    assert check(project, monkeypatch) == (0, "ok: 1 claim(s) checked\n", "")


GENERATED = {
    "fifty-megabytes": lambda: b"question: " + b"x" * 50_000_000 + b"\n",
    "flow-100k-deep": lambda: b"question: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "flow-100k-unclosed": lambda: b"question: " + b"[" * 100_000,
    "mapping-100k-deep": lambda: b"question: " + b"{a: " * 100_000 + b"}" * 100_000 + b"\n",
    "key-of-900k": lambda: b"k" * 900_000 + b": 1\n",
    "many-anchors": lambda: b"".join(b"k%d: &a%d x\n" % (i, i) for i in range(50_000)),
    "100k-keys": lambda: CLAIM_YAML.encode() + b"".join(b"k%d: 1\n" % i for i in range(90_000)),
}
# Our own limit, or LibYAML's: from PyYAML 6.0.4 its wheels bundle a LibYAML that stops
# at 1,000 flow levels while scanning ahead, before the 13th level reaches our check.
FLOW_TOO_DEEP = (
    "1:22: question[0][0][0][0][0][0][0][0][0][0][0]: nested more than 12 levels deep",
    "1:1010: (file): YAML syntax: exceeded maximum nesting depth while increasing flow level",
)
GENERATED_ERRORS: dict[str, str | tuple[str, ...]] = {
    "fifty-megabytes": "1:1: (file): file is larger than 1,000,000 bytes, the limit for a YAML "
                       "file here",
    "flow-100k-deep": FLOW_TOO_DEEP,
    "flow-100k-unclosed": FLOW_TOO_DEEP,
    "mapping-100k-deep": "1:55: question.a.a.a.a.a.a.a.a.a.a.a: nested more than 12 levels deep",
    "key-of-900k": "1:900001: (file): YAML syntax: mapping values are not allowed in this "
                   "context",
    "many-anchors": "1:1: checked_on: missing required field `checked_on`",
    "100k-keys": f"{CLAIM_YAML.count(chr(10)) + 1}:1: k0: unknown field `k0`; the fields here are:",
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_huge_and_deep_files_fail_fast_with_a_location(name: str, project: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = GENERATED[name]()
    path = project / "claims" / f"{name}.yaml"
    path.write_bytes(data)
    code, _, err = check(project, monkeypatch)
    assert code == 1
    assert "Traceback" not in err and "internal error" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"claims/{name}.yaml:")
    expected = GENERATED_ERRORS[name]
    assert any(e in first for e in ((expected,) if isinstance(expected, str) else expected))
    assert len(first) < 1000, "a message must not echo a huge value"
    assert len(err.splitlines()) <= 53, "a file's problems past 50 are counted, not listed"


def test_the_reader_never_reads_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:  # sparse: 8 GB that take no disk
        handle.truncate(8 * 1024**3)
    from claimpress.load import read

    data, problems = read(path, "big.yaml")
    assert data is not None and len(data) == yamltree.MAX_BYTES + 1 and problems == []


def test_a_fifo_is_not_read(project: Path) -> None:
    os.mkfifo(project / "claims" / "pipe.yaml")
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err.startswith("claims/pipe.yaml:0:0: (file): not a regular file\n")


@pytest.mark.parametrize("name", ["con", "NUL", "aux", "com1", "lpt9", "prn"])
def test_windows_device_names_are_refused_as_slugs(name: str, project: Path) -> None:
    shutil.copy(project / "claims" / "is-the-sky-blue.yaml", project / "claims" / f"{name}.yaml")
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert f"claims/{name}.yaml:0:0: (file): " in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("name", ["a..b", "%2e%2e", "a b", "Case", "x\ny", "\x1b[31mred",
                                  "-lead", "trail-", "a--b", "é", "a" * 81])
def test_file_names_that_are_not_slugs_are_refused(name: str, project: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(project / "claims" / "is-the-sky-blue.yaml", project / "claims" / f"{name}.yaml")
    code, _, err = check(project, monkeypatch)
    assert code == 1
    [line, total] = err.splitlines()  # a file name never breaks the one-line-per-problem form
    assert line.startswith("claims/") and ":0:0: (file): " in line
    assert "\x1b" not in err
    assert total == "1 error(s), 0 warning(s)"


def test_new_never_makes_a_device_name_slug(project: Path) -> None:
    result = run_cli("new", "Con?", cwd=project)
    assert result.code == 0, result.err
    assert (project / "claims" / "con-claim.yaml").is_file()
    result = run_cli("new", "Aux", "--slug", "aux", cwd=project)
    assert result.code == 1
    assert result.err == "error: --slug aux: `aux` is a device name on Windows; add a word to it\n"
