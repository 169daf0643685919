"""Every fixture under fixtures/invalid/ is a broken claim file with its exact expected
output beside it (`NAME.expected`): each problem as `path:line:col: field: message`,
exit 1, no traceback. Regenerate with `pytest tests/test_invalid.py --update-golden`
and review the diff."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import check_fixture, run_cli, tree

FIXTURES = Path(__file__).parent / "fixtures" / "invalid"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_invalid_claim_gets_its_exact_errors(name: str, project: Path,
                                             request: pytest.FixtureRequest) -> None:
    result = check_fixture(FIXTURES / f"{name}.yaml", project, request)
    assert result.code == 1
    assert result.out == ""


def test_ten_problems_in_one_file_give_ten_errors(project: Path) -> None:
    shutil.copy(FIXTURES / "ten-errors.yaml", project / "claims" / "ten-errors.yaml")
    result = run_cli("check", cwd=project)
    lines = [line for line in result.err.splitlines() if line.startswith("claims/ten-errors")]
    assert len(lines) == 10
    assert result.err.endswith("10 error(s), 0 warning(s)\n")


def test_problems_in_every_file_are_reported_in_one_run(project: Path) -> None:
    for name in ("unknown-field", "misspelled-status", "formula-cycle"):
        shutil.copy(FIXTURES / f"{name}.yaml", project / "claims" / f"{name}.yaml")
    result = run_cli("check", cwd=project)
    assert result.code == 1
    for name in ("unknown-field", "misspelled-status", "formula-cycle"):
        assert f"claims/{name}.yaml:" in result.err


def test_failed_build_leaves_previous_build_byte_identical(project: Path) -> None:
    assert run_cli("build", cwd=project).code == 0
    before = tree(project / "build")
    for name in CASES:
        shutil.copy(FIXTURES / f"{name}.yaml", project / "claims" / f"{name}.yaml")
    result = run_cli("build", cwd=project)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert tree(project / "build") == before
    assert not [p for p in project.iterdir() if p.name.startswith(".build.tmp")]
