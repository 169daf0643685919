"""`claimpress import`: house-format articles to claim files that export back byte for byte.

Every fixture under fixtures/import/ is an article that must not import, with its exact
expected output beside it (`NAME.expected`). Regenerate with
`pytest tests/test_import.py --update-golden` and review the diff.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SEEDS, run_cli, tree

FIXTURES = Path(__file__).parent / "fixtures" / "import"
CASES = sorted(p.stem for p in FIXTURES.glob("*.txt"))
SOURCES = "\n\nSources\n"


def article(summary: str = "Yes: about 3.5% of seawater is salt [1], more near the tropics [2].",
            sections: tuple[tuple[str, str], ...] = (
                ("Where the salt comes from", "Rivers carry dissolved minerals to the sea [2]."),
                ("Bottom line", "The sea is salty, and has been for eons [1].")),
            question: str = "Is the sea salty?",
            follow_up: tuple[str, ...] = ("Why is the Dead Sea saltier?", "Is rain salty?"),
            disclaimer: str = "Test Desk can make mistakes.") -> str:
    """An article in the house text format (no final newline, as the seeds)."""
    parts = [question, "", "Checked on January 16, 2026", f"Disclaimer: {disclaimer}", "",
             "Executive summary", "", summary, ""]
    for number, (heading, body) in enumerate(sections, start=1):
        parts += [f"{number}. {heading}", "", body, ""]
    return "\n".join([*parts, "Want to dive deeper?", *follow_up])


def import_and_export(root: Path, text: str, name: str = "article.txt") -> str:
    """Import one article into the project at `root`; return its text export."""
    (root / name).write_text(text, encoding="utf-8")
    result = run_cli("import", name, cwd=root)
    assert result.code == 0, result.err
    written = result.out.split(" -> ")[-1].strip()
    exported = run_cli("export", written, "--format", "text", cwd=root)
    assert exported.code == 0, exported.err
    return exported.out


def split_sources(exported: str, text: str) -> list[str]:
    """The export is exactly the article, then only its numbered sources list."""
    assert exported.startswith(text), "the article does not come back byte for byte"
    rest = exported[len(text):]
    if not rest:
        return []
    assert rest.startswith(SOURCES), rest[:80]
    return rest[len(SOURCES):].splitlines()


@pytest.fixture
def factually(tmp_path: Path) -> Path:
    """A fresh project whose site.yaml is the example's (the seeds' disclaimer)."""
    root = tmp_path / "fresh"
    root.mkdir()
    shutil.copy(REPO / "site.yaml", root / "site.yaml")
    return root


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_seed_articles_come_back_byte_for_byte(factually: Path, seed: str) -> None:
    text = (SEEDS / seed).read_text(encoding="utf-8")
    exported = import_and_export(factually, text, seed)
    sources = split_sources(exported, text)
    assert sources == [f"[{n}] TODO: identify source [{n}] of {seed}."
                       for n in range(1, len(sources) + 1)]
    assert len(sources) == {"000_088960e0766809d2.txt": 8, "003_ebbd247d9009e526.txt": 5}[seed]


def test_imported_claim_is_a_draft_that_checks_with_warnings_only(factually: Path) -> None:
    seed = SEEDS / "000_088960e0766809d2.txt"
    shutil.copy(seed, factually / seed.name)
    result = run_cli("import", seed.name, cwd=factually)
    assert result.code == 0, result.err
    path = factually / "claims" / "what-percentage-of-tips-does-ncmec-actually-pursue.yaml"
    assert result.out == f"imported {seed.name} -> claims/{path.name}\n"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/claim.schema.json\n")
    data = yaml.safe_load(text)
    assert data["status"] == "draft"
    assert str(data["checked_on"]) == "2026-01-16"
    assert "[@source-1]" in data["summary"]
    assert data["sources"]["source-1"] == {"title": "TODO: identify source [1] of "
                                           "000_088960e0766809d2.txt"}
    assert (factually / "schema" / "claim.schema.json").is_file()
    check = run_cli("check", cwd=factually)
    assert check.code == 0, check.err
    assert check.err.count("[incomplete-source]") == 8
    assert "\n0 error(s), " in check.err


HOSTILE = [
    "Stars *not* emphasis, **bold**, _under_ __scores__ and `ticks`, a \\ backslash.",
    "<b>not bold</b>, <script>alert(1)</script> &amp; &lt; &#169; & ampersand.",
    "Braces {figure} {{double}} {x:.1%} } and { alone.",
    "[x](https://example.org) and ![img](y.png) and [@not-a-cite] and [@a; @b] and [0].",
    "# not a heading",
    "1. not a list item [1]",
    "- not a list, > nor a quote, + nor this",
    "--- not a rule",
    "Unicode: “quotes” — dashes ÷ × → 63,892 ≈ 0.18% … Ünïcödé 日本語 🙂.",
    "Line-end two spaces  inside  the text and trailing punctuation!",
    "A URL https://example.org/a_b_c?x=1&y=2 and <https://example.org>.",
    "Under_scores_in_words and 2*3*4 = 24 and a|b|c pipes.",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_comes_back_byte_for_byte(project: Path, text: str) -> None:
    body = article(summary=text + " [1]", sections=(
        (text.rstrip("."), text), ("Bottom line", "Plain [2] and " + text)),
        follow_up=(text, "Is it?"), question=text if not text.startswith("#") else "Q " + text)
    exported = import_and_export(project, body)
    assert split_sources(exported, body) == ["[1] TODO: identify source [1] of article.txt.",
                                             "[2] TODO: identify source [2] of article.txt."]


def test_an_article_without_citations_is_the_whole_export(project: Path) -> None:
    body = article(summary="No sources here.", sections=(("Bottom line", "None."),))
    assert import_and_export(project, body) == body


def test_a_final_newline_is_allowed(project: Path) -> None:
    body = article()
    exported = import_and_export(project, body + "\n")
    split_sources(exported, body)


@pytest.mark.parametrize("name", CASES)
def test_broken_article_gets_its_exact_errors(name: str, project: Path,
                                              request: pytest.FixtureRequest) -> None:
    (project / "articles").mkdir()
    shutil.copy(FIXTURES / f"{name}.txt", project / "articles" / f"{name}.txt")
    before = tree(project)
    result = run_cli("import", f"articles/{name}.txt", cwd=project)
    expected = FIXTURES / f"{name}.expected"
    if request.config.getoption("--update-golden"):
        expected.write_text(result.err)
    assert (result.code, result.out) == (1, "")
    assert "Traceback" not in result.err
    assert result.err == expected.read_text()
    assert tree(project) == before, "a failed import wrote something"


def test_good_articles_import_beside_broken_ones(project: Path) -> None:
    (project / "in").mkdir()
    (project / "in" / "a-good.txt").write_text(article())
    shutil.copy(FIXTURES / "crlf.txt", project / "in" / "b-crlf.txt")
    result = run_cli("import", "in", cwd=project)
    assert result.code == 1
    assert result.out == "imported in/a-good.txt -> claims/is-the-sea-salty.yaml\n"
    assert result.err.startswith("in/b-crlf.txt:1:18: (file): Windows line ending")
    assert (project / "claims" / "is-the-sea-salty.yaml").is_file()


def test_import_never_replaces_a_claim_file(project: Path) -> None:
    (project / "a.txt").write_text(article())
    assert run_cli("import", "a.txt", cwd=project).code == 0
    claim = project / "claims" / "is-the-sea-salty.yaml"
    claim.write_text(claim.read_text().replace("status: draft", "status: review"))
    before = claim.read_bytes()
    result = run_cli("import", "a.txt", cwd=project)
    assert result.code == 1
    assert result.err == ("a.txt:1:1: question: claims/is-the-sea-salty.yaml already exists; "
                          "remove it or import into another --out\n1 error(s), 0 warning(s)\n")
    assert claim.read_bytes() == before


def test_two_articles_with_one_question_import_once(project: Path) -> None:
    (project / "a.txt").write_text(article())
    (project / "b.txt").write_text(article(summary="Another answer [1] [2]."))
    result = run_cli("import", "a.txt", "b.txt", cwd=project)
    assert result.code == 1
    assert result.out == "imported a.txt -> claims/is-the-sea-salty.yaml\n"
    assert "b.txt:1:1: question: another article here also becomes is-the-sea-salty.yaml" \
        in result.err


def test_import_into_another_folder(project: Path) -> None:
    (project / "a.txt").write_text(article())
    result = run_cli("import", "a.txt", "--out", "drafts", cwd=project)
    assert result.code == 0, result.err
    written = (project / "drafts" / "is-the-sea-salty.yaml").read_text()
    assert written.startswith("# yaml-language-server: $schema=../schema/claim.schema.json\n")
    assert not (project / "claims" / "is-the-sea-salty.yaml").exists()


@pytest.mark.parametrize(("args", "error"), [
    (["missing.txt"], "missing.txt:0:0: (file): no such file or folder\n"),
    (["empty-dir"], "empty-dir:0:0: (file): no .txt articles in this folder\n"),
])
def test_import_names_missing_inputs(project: Path, args: list[str], error: str) -> None:
    (project / "empty-dir").mkdir()
    result = run_cli("import", *args, cwd=project)
    assert result.code == 1
    assert result.err == error + "1 error(s), 0 warning(s)\n"
