"""The benchmark's generator makes claims that claimpress accepts without a warning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import REPO, run_cli


def test_generated_claims_pass_check(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", REPO / "benchmarks" / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
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
