"""submit, approve and build under `require_approval`, end to end: an approval is bound to
the claim's content and to every shared source and figure it draws on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimpress import project
from claimpress.approvals import approved_page, snapshot_claim
from claimpress.problems import CHANGED, Problem
from claimpress.project import gather
from conftest import run_cli, tree

SLUG = "what-percentage-of-tips-does-ncmec-actually-pursue"
OTHER = "how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023"


@pytest.fixture
def desk(example: Path) -> Path:
    """The example project with approvals required and one claim back in draft."""
    site = example / "site.yaml"
    site.write_text(site.read_text().replace("require_approval: false", "require_approval: true"))
    claim = example / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("status: published", "status: draft"))
    return example


def page_text(root: Path, slug: str = SLUG) -> str:
    return (root / "build" / "claims" / slug / "index.html").read_text()


def test_draft_to_review_to_published_edits_only_the_status_line(desk: Path) -> None:
    claim = desk / "claims" / f"{SLUG}.yaml"
    before = claim.read_text()
    result = run_cli("approve", SLUG, "--by", "Ann", cwd=desk)
    assert result.code == 1
    assert result.err == (f"error: claims/{SLUG}.yaml is a draft; submit it for review first: "
                          f"claimpress submit {SLUG}\n")
    result = run_cli("submit", f"claims/{SLUG}.yaml", cwd=desk)  # by its file, as well
    assert result.code == 0, result.err
    assert claim.read_text() == before.replace("status: draft", "status: review")
    assert run_cli("submit", SLUG, cwd=desk).code == 1
    result = run_cli("approve", SLUG, "--by", "Ann Editor", "--note", "Figures checked",
                     cwd=desk)
    assert result.code == 0, result.err
    assert claim.read_text() == before.replace("status: draft", "status: published")
    record = json.loads((desk / "approvals" / f"{SLUG}.json").read_text())
    assert record["approved_by"] == "Ann Editor"
    assert record["approved_at"] == "2026-02-01T12:00:00Z"
    assert record["note"] == "Figures checked"
    assert record["content_hash"].startswith("sha256:")
    assert record["snapshot"]["claim_file"] == claim.read_text()
    assert sorted(record["snapshot"]["figures"]) == ["reports_2023", "urgent_2023"]
    assert sorted(record["snapshot"]["sources"]) == ["ncmec-2023"]


def test_a_status_line_added_when_the_file_has_none(project: Path) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text().replace("status: published\n", ""))
    assert run_cli("submit", "is-the-sky-blue", cwd=project).code == 0
    assert "checked_on: 2026-01-16\nstatus: review\ntopics:" in claim.read_text()


def test_build_publishes_only_approved_content(desk: Path) -> None:
    result = run_cli("build", cwd=desk)
    assert result.code == 0, result.err
    assert (f"claims/{OTHER}.yaml:4:9: status: warning: published but never approved; the site "
            f"leaves it out until `claimpress approve {OTHER} --by NAME` [needs-approval]"
            ) in result.err
    assert "built 0 claim(s)" in result.out
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    assert "built 1 claim(s)" in run_cli("build", cwd=desk).out
    assert "63,892" in page_text(desk)


def test_an_edit_of_a_shared_figure_makes_the_approval_stale(desk: Path) -> None:
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    figures = desk / "figures" / "ncmec.yaml"
    figures.write_text(figures.read_text().replace("value: 63892", "value: 64000"))
    result = run_cli("build", cwd=desk)
    assert result.code == 0, result.err
    assert (f"claims/{SLUG}.yaml:4:9: status: warning: edited since Ann approved it on "
            "2026-02-01; the site keeps the approved version until `claimpress review` and "
            "`claimpress approve` [needs-approval]") in result.err
    assert "[unapproved-edit]" in result.err
    assert "63,892" in page_text(desk) and "64,000" not in page_text(desk)
    assert run_cli("approve", SLUG, "--by", "Bob", cwd=desk).code == 0
    result = run_cli("build", cwd=desk)
    assert f"{SLUG}.yaml:4:9: status: warning" not in result.err
    assert "64,000" in page_text(desk)
    record = json.loads((desk / "approvals" / f"{SLUG}.json").read_text())
    assert [h["approved_by"] for h in record["history"]] == ["Ann"]


def test_an_edit_with_a_correction_is_not_an_unnoted_edit(desk: Path) -> None:
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    claim = desk / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace(
        "follow_up:", "corrections:\n  - date: 2026-01-20\n    kind: update\n"
        "    note: Reworded the bottom line.\nfollow_up:"))
    result = run_cli("check", cwd=desk)
    assert "[unapproved-edit]" not in result.err
    assert "[needs-approval]" in result.err


def test_a_hand_edited_status_is_not_published(desk: Path) -> None:
    claim = desk / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("status: draft", "status: published"))
    result = run_cli("build", cwd=desk)
    assert f"claims/{SLUG}.yaml:4:9: status: warning: published but never approved" in result.err
    assert "built 0 claim(s)" in result.out


def test_approving_a_claim_with_errors_is_refused(desk: Path) -> None:
    claim = desk / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("status: draft", "status: review")
                     .replace("[@ncmec-2023].\n  That", "[@ncmec-2032].\n  That"))
    before = tree(desk)
    result = run_cli("approve", SLUG, "--by", "Ann", cwd=desk)
    assert result.code == 1
    assert "unknown source `[@ncmec-2032]`; did you mean `[@ncmec-2023]`?" in result.err
    assert result.err.endswith(f"error: claims/{SLUG}.yaml has errors; fix them first "
                               "(claimpress check)\n")
    assert tree(desk) == before


def test_a_tampered_approval_is_never_published(desk: Path) -> None:
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    path = desk / "approvals" / f"{SLUG}.json"
    record = json.loads(path.read_text())
    record["snapshot"]["claim_file"] = record["snapshot"]["claim_file"].replace(
        "tens of millions", "hundreds of millions")
    path.write_text(json.dumps(record))
    claim = desk / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("tens of millions", "many millions"))
    result = run_cli("build", cwd=desk)
    assert result.code == 1
    assert (f"approvals/{SLUG}.json:0:0: (file): approval of `{SLUG}` cannot be used: its "
            "snapshot does not match its content_hash; approve the claim again") in result.err
    assert not (desk / "build").exists()


@pytest.mark.parametrize(("line", "expected"), [
    ('status: "draft"   # not yet\n', 'status: "review"   # not yet\n'),
    ("status: 'draft'\r\n", "status: 'review'\r\n"),
])
def test_the_status_line_keeps_its_quotes_comments_and_line_ends(project: Path, line: str,
                                                                expected: str) -> None:
    claim = project / "claims" / "is-the-sky-blue.yaml"
    text = claim.read_text().replace("status: published\n", line)
    if "\r\n" in line:
        text = text.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
    claim.write_bytes(text.encode())
    assert run_cli("submit", "is-the-sky-blue", cwd=project).code == 0
    assert claim.read_bytes() == text.replace(line, expected).encode()


def test_a_broken_approval_file_is_located(project: Path) -> None:
    (project / "approvals").mkdir()
    (project / "approvals" / "is-the-sky-blue.json").write_text('{"claim": "is-the-sky-blue"}')
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err.startswith("approvals/is-the-sky-blue.json:0:0: (file): not a claimpress "
                                 "approval file: Field required")


def test_an_approval_file_past_its_limit_is_refused_unread(project: Path) -> None:
    (project / "approvals").mkdir()
    big = project / "approvals" / "is-the-sky-blue.json"
    big.write_bytes(b'{"claim": "is-the-sky-blue", "note": "' + b"x" * 16_000_000 + b'"}')
    result = run_cli("check", cwd=project)
    assert result.code == 1
    assert result.err.startswith("approvals/is-the-sky-blue.json:0:0: (file): file is larger "
                                 "than 16,000,000 bytes, the limit for an approval file\n")


def test_an_edit_of_a_shared_source_makes_the_approval_stale(desk: Path) -> None:
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    assert f"{SLUG}.yaml:4:9" not in run_cli("check", cwd=desk).err
    sources = desk / "sources" / "ncmec.yaml"
    sources.write_text(sources.read_text().replace("accessed: 2026-01-15", "accessed: 2026-01-14"))
    result = run_cli("check", cwd=desk)
    assert f"{SLUG}.yaml:4:9: status: warning: edited since Ann approved it" in result.err


def test_approval_files_as_they_were_are_not_read_again(
    desk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An approval file whose stat is as recorded is known by what was read of it then (as
    a claim file is); one written since is read again."""
    monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)  # every file settled
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    read: list[str] = []
    read_approval = project.read_approval

    def counted(data: bytes, rel: str, slug: str) -> project.Read | Problem:
        read.append(rel)
        return read_approval(data, rel, slug)

    monkeypatch.setattr(project, "read_approval", counted)
    first = gather(desk).approvals
    assert read == [f"approvals/{SLUG}.json"]
    read.clear()
    again = gather(desk).approvals
    assert read == [] and again == first and again[SLUG].known == first[SLUG].known
    path = desk / "approvals" / f"{SLUG}.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "approved_by": "Bob"}))
    assert gather(desk).approvals[SLUG].by == "Bob"
    assert read == [f"approvals/{SLUG}.json"]


def test_an_approval_file_changed_after_it_was_read_is_not_used(desk: Path) -> None:
    """What was approved is read again from the approval file when needed; if the file
    changed since the run read it, its snapshot is not used (the next run reads it anew)."""
    assert run_cli("submit", SLUG, cwd=desk).code == 0
    assert run_cli("approve", SLUG, "--by", "Ann", cwd=desk).code == 0
    found = gather(desk)
    approval = found.approvals[SLUG]
    page, problems = approved_page(approval, found.site)
    assert page is not None and not problems
    assert snapshot_claim(approval) == page.claim
    path = desk / "approvals" / f"{SLUG}.json"
    path.write_text(path.read_text() + " ")  # the same approval, in other bytes
    assert approved_page(approval, found.site) == (
        None, [Problem(f"approvals/{SLUG}.json", 0, 0, "", CHANGED)])
    assert snapshot_claim(approval) is None
    assert gather(desk).approvals[SLUG] == approval  # read anew: the same approval
