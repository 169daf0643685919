"""`claimpress review` end to end: the bundle shows each claim to review as published, its
findings, the derivation of each figure and a word-level diff since the last approval.
The golden sheet is regenerated with `pytest tests/test_review.py --update-golden`."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from claimpress.approvals import approve
from claimpress.cli import app
from claimpress.project import Summary, _Claims, gather
from claimpress.review import plan_review, word_diff
from conftest import run_cli, tree

SLUG = "what-percentage-of-tips-does-ncmec-actually-pursue"
OTHER = "how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023"
GOLDEN = Path(__file__).parent / "golden" / f"review-{SLUG}.html"


@pytest.fixture
def edited(example: Path) -> Path:
    """The example project: one claim approved, then its prose and a shared figure edited."""
    claim = example / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("status: published", "status: review"))
    assert run_cli("approve", SLUG, "--by", "Ann Editor", "--note", "Checked <all> figures",
                   cwd=example).code == 0
    claim.write_text(claim.read_text().replace(
        "tens of millions of reports each year", "tens of millions of tips a year"))
    figures = example / "figures" / "ncmec.yaml"
    figures.write_text(figures.read_text().replace("value: 63892", "value: 64210"))
    return example


def sheet(root: Path, slug: str = SLUG) -> str:
    return (root / "review" / "claims" / slug / "review.html").read_text()


def test_review_lists_what_needs_review(edited: Path) -> None:
    result = run_cli("review", cwd=edited)
    assert result.code == 0, result.err
    assert result.out == (
        f"{SLUG}: published, changed since approval, 0 error(s), 3 warning(s)\n"
        "wrote the review of 1 claim(s) to review/index.html\n")
    files = tree(edited / "review")
    assert f"claims/{SLUG}/index.html" in files and f"claims/{SLUG}/review.html" in files
    assert f"claims/{OTHER}/review.html" not in files  # published, no approval asked for
    assert "static/style.css" in files and "static/review.css" in files
    assert "DRAFT" in files[f"claims/{SLUG}/index.html"].decode()


def test_review_and_commands_about_one_claim_load_only_the_claims_they_show(
    edited: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each claim's page is loaded from the cache only when shown: at 10,000 claims, loading
    them all cost `review` 3 s and 550 MB, and `approve` and `export` as much."""
    loaded: list[str] = []
    real = _Claims.entry

    def entry(claims: _Claims, summary: Summary, **options: bool) -> object:
        loaded.append(summary.slug or "")
        return real(claims, summary, **options)

    assert run_cli("check", cwd=edited).code == 0  # (the cache up to date)
    found = gather(edited)
    assert {s.slug for s in found.summaries} == {SLUG, OTHER}
    monkeypatch.setattr(_Claims, "entry", entry)
    bundle = plan_review(found, [])
    assert [s.page.slug for s in bundle.sheets] == [SLUG] and loaded == [SLUG]
    del loaded[:]
    result = CliRunner().invoke(app, ["-C", str(edited), "export", OTHER, "--format", "md"])
    assert result.exit_code == 0 and "# How many" in result.output and loaded == [OTHER]
    del loaded[:]
    found = gather(edited)
    del loaded[:]  # (gathering hashes the claims approved since their summary was made)
    approve(found, OTHER, "Ann Editor", None, dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert loaded == [OTHER]


def test_the_sheet_shows_derivations_and_a_word_diff(edited: Path) -> None:
    assert run_cli("review", cwd=edited).code == 0
    html = sheet(edited)
    assert "64,210 ÷ 36.2 million = 0.18%" in html
    assert "64,210 ÷ 36.2 million = 0.177%" in html
    assert "<del>reports</del><ins>tips</ins>" in html
    assert "<del>each year</del><ins>a year</ins>" in html or (
        "<del>each</del><ins>a</ins>" in html)
    assert "<del>63,892</del><ins>64,210</ins>" in html
    assert "Checked &lt;all&gt; figures" in html
    assert re.search(r'<a href="index.html#source-2" target="page">Source 2</a>:\s+source '
                     r"`ncmec-cybertipline` has no archived copy", html)


def test_golden_review_sheet(edited: Path, request: pytest.FixtureRequest) -> None:
    assert run_cli("review", cwd=edited).code == 0
    html = sheet(edited)
    if request.config.getoption("--update-golden"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8"), (
        "the review sheet changed; if intended, run "
        "`pytest tests/test_review.py --update-golden` and review the diff")


def test_named_claims_and_drafts(example: Path) -> None:
    claim = example / "claims" / f"{OTHER}.yaml"
    claim.write_text(claim.read_text().replace("status: published", "status: draft"))
    result = run_cli("review", "--out", "sheets", cwd=example)
    assert result.out.splitlines()[0] == f"{OTHER}: draft, never approved, 0 error(s), 0 warning(s)"
    written = (example / "sheets" / "claims" / OTHER / "review.html").read_text()
    assert "Never approved: the whole page is new." in written
    for name in (SLUG, f"claims/{SLUG}.yaml"):  # by its slug or its file
        result = run_cli("review", name, cwd=example)
        assert result.out.startswith(f"{SLUG}: published, never approved")
    result = run_cli("review", "nope", cwd=example)
    assert result.code == 1
    assert result.err.startswith("error: no claim `nope`; known: ")


def test_hostile_text_is_escaped_in_the_bundle(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text()
                     .replace("question: Is the sky blue?",
                              "question: Is the <script>alert(1)</script> sky blue?")
                     .replace("status: published", "status: draft")
                     .replace("title: Sky survey", 'title: "Sky <img src=x onerror=alert(1)>"'))
    result = run_cli("review", cwd=project)
    assert result.code == 0, result.err
    for name, data in tree(project / "review").items():
        if name.endswith(".html"):
            text = data.decode()
            assert "<script>" not in text and "<img src=x" not in text, name
            Checker().feed(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sheet(project, "is-the-sky-blue")


def test_a_claim_with_errors_is_listed_not_shown(project: Path) -> None:
    (project / "claims" / "broken.yaml").write_text(
        "question: Broken?\nchecked_on: 2026-01-16\nsummary: x [@nope]\n"
        "sections: [{heading: Bottom line, body: y}]\n")
    result = run_cli("review", cwd=project)
    assert result.code == 0
    assert "broken: has errors; fix them to review it (claims/broken.yaml)" in result.out
    index = (project / "review" / "index.html").read_text()
    assert "unknown source `[@nope]`" in index


def test_word_diff_escapes_and_marks_words() -> None:
    assert word_diff("a <b> c", "a <b> d e") == "a &lt;b&gt; <del>c</del><ins>d e</ins>"


class Checker(HTMLParser):
    """Fails on an event-handler attribute or a javascript: URL."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, value)


def test_a_finding_quotes_its_sentence(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text().replace(
        "body: Rayleigh scattering favours short wavelengths [@survey].",
        "body: Rayleigh scattering favours short wavelengths [@survey]. About 450 nm is blue.")
        .replace("status: published", "status: draft"))
    assert run_cli("review", cwd=project).code == 0
    html = sheet(project, "is-the-sky-blue")
    assert re.search(r'<a href="index.html#section-1" target="page">Section 1</a>:\s+`450` is '
                     r"typed into prose", html)
    assert '<q class="excerpt">About 450 nm is blue.</q>' in html


def test_a_sheet_lists_the_findings_on_the_shared_entries_its_claim_uses(edited: Path) -> None:
    figures = edited / "figures" / "ncmec.yaml"
    text = figures.read_text()
    unsourced = text.replace("  value: 64210\n  source: ncmec-2023\n", "  value: 64210\n")
    assert unsourced != text
    figures.write_text(unsourced + "unused_2023:\n  value: 12\n")  # no claim uses it
    assert run_cli("review", cwd=edited).code == 0
    html = sheet(edited)
    assert re.search(r'<a href="index.html#main" target="page">Figures</a>:\s+figure '
                     r"`urgent_2023` has no source", html)
    assert "urgent_2023" in html and "unused_2023" not in html
