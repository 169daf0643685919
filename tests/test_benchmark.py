"""The benchmark's generator makes claims that claimpress accepts without a warning, and
its runner deletes nothing between the builds it times."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO, run_cli


def _module(name: str) -> ModuleType:
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_generated_claims_pass_check(tmp_path: Path) -> None:
    generate = _module("generate")
    generate.generate(tmp_path, 25)
    assert len(list((tmp_path / "claims").glob("*.yaml"))) == 25
    result = run_cli("check", "--strict", cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out == "ok: 25 claim(s) checked\n"
    built = run_cli("build", cwd=tmp_path)
    assert built.code == 0, built.err
    page = (tmp_path / "build" / "claims" / f"{generate.slug(3)}" / "index.html").read_text()
    assert generate.question(3) in page
    assert any(f'href="../../claims/{generate.slug(i)}/"' in page for i in range(3))


def test_outputs_cleaned_between_runs_are_deleted_only_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a build's files slows the writes after it on some file systems, so the
    runner moves them aside and deletes them when it is done."""
    run = _module("run")
    monkeypatch.setattr(run, "TRASH", tmp_path / "trash")
    out = tmp_path / "out"
    for _ in range(2):
        (out / "claims").mkdir(parents=True)
        (out / "claims" / "index.html").write_text("page")
        run.clean(out, tmp_path / "never-made")
        assert not out.exists()
    moved = sorted((tmp_path / "trash").glob("*/out/claims/index.html"))
    assert [p.read_text() for p in moved] == ["page", "page"]
    run.empty_trash()
    assert not (tmp_path / "trash").exists()
