"""Every fixture under fixtures/lint/ is a claim file with its exact `claimpress check`
output beside it (`NAME.expected`), run as of 2026-02-01 (CLAIMPRESS_NOW). Regenerate with
`pytest tests/test_lint.py --update-golden` and review the diff."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from claimpress import lint
from claimpress.lint import significant_digits, typed_numbers
from conftest import REPO, check_fixture, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "lint"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_lint_fixture_gets_its_exact_findings(name: str, project: Path,
                                              request: pytest.FixtureRequest) -> None:
    result = check_fixture(FIXTURES / f"{name}.yaml", project, request)
    assert result.code == 0  # findings are warnings: only --strict makes them fatal


def test_every_rule_has_a_fixture() -> None:
    found = "".join((FIXTURES / f"{name}.expected").read_text() for name in CASES)
    missing = [rule for rule in lint.RULES
               if f"[{rule}]" not in found and rule not in ("unapproved-edit", "needs-approval")]
    assert missing == []  # the approval rules are tested end to end in test_approvals.py


def test_the_editors_draft_gets_exactly_its_four_findings(project: Path) -> None:
    shutil.copy(FIXTURES / "editor-draft.yaml", project / "claims" / "editor-draft.yaml")
    result = run_cli("check", cwd=project)
    rules = [line.rsplit("[", 1)[1].rstrip("]") for line in result.err.splitlines()
             if line.startswith("claims/")]
    assert sorted(rules) == ["future-date", "stale-check", "untraced-number", "unused-source"]
    assert result.code == 0
    assert run_cli("check", "--strict", cwd=project).code == 1


def test_the_example_claims_pass_with_only_sensible_warnings() -> None:
    result = run_cli("check", cwd=REPO)
    assert result.code == 0, result.err
    rules = sorted(line.rsplit("[", 1)[1].rstrip("]") for line in result.err.splitlines()
                   if line.startswith("claims/"))
    assert rules == ["incomplete-source", "no-archive"]


def test_stale_and_future_follow_the_injected_today(project: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMPRESS_NOW", "2027-06-01")
    result = run_cli("check", cwd=project)
    assert "checked 501 days ago, more than stale_after_days (365)" in result.err
    monkeypatch.setenv("CLAIMPRESS_NOW", "2026-01-10")
    result = run_cli("check", cwd=project)
    assert "2026-01-16 is in the future (today is 2026-01-10)" in result.err


@pytest.mark.parametrize(("text", "typed"), [
    ("tens of millions, the U.S. and 2023", []),
    ("0.2% and 36.2 million and 63,892", ["0.2%", "36.2 million", "63,892"]),
    ("the 1st, 2nd and 21st; COVID-19; H1N1; 1990s", []),
    ("section 3, sections 2 and 4, § 5, page 12", []),
    ("on January 16, 2026 and 3 March 2024 and 2026-01-16", []),
    ("[1] and [2, 3] as typed markers", []),
    ("{x:,} and [@a] and {{7}}", ["7"]),
    ("see https://example.org/2019/12/report and [a](https://x.org/55)", []),
    ("1. first item\n2. second item with 5 things", ["5"]),
    ("$5 million and 17.6 percent and 40", ["$5 million", "17.6 percent", "40"]),
    ("between 2019 and 2023, 2,023 people", ["2,023"]),
])
def test_typed_numbers(text: str, typed: list[str]) -> None:
    assert [m[0] for m in typed_numbers(text)] == typed


@pytest.mark.parametrize(("text", "digits"), [
    ("36.2", 3), ("0.176", 3), ("36200000", 3), ("63,892", 5), ("100", 1), ("0.18%", 2),
])
def test_significant_digits(text: str, digits: int) -> None:
    assert significant_digits(text) == digits
