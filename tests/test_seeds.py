"""The seed articles: claim files in claims/ reproduce them exactly, and golden outputs pin
every format. Regenerate the golden files with:

    pytest tests/test_seeds.py --update-golden   (then review `git diff tests/golden`)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO, SEEDS, SHARED_SEEDS, run_cli

SEED_CLAIMS = {
    "000_088960e0766809d2.txt": "what-percentage-of-tips-does-ncmec-actually-pursue",
    "003_ebbd247d9009e526.txt": (
        "how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023"
    ),
}
FORMATS = {"text": "txt", "md": "md", "json": "json", "html": "html"}
GOLDEN = Path(__file__).parent / "golden"


def test_the_seed_copies_are_the_products_seeds() -> None:
    assert sorted(p.name for p in SEEDS.glob("*.txt")) == sorted(SEED_CLAIMS)
    if not SHARED_SEEDS.is_dir():
        pytest.skip(f"no {SHARED_SEEDS} beside this checkout to compare the copies with")
    for seed in SEED_CLAIMS:
        assert (SEEDS / seed).read_bytes() == (SHARED_SEEDS / seed).read_bytes(), seed


@pytest.mark.parametrize(("seed", "slug"), SEED_CLAIMS.items())
def test_text_export_is_the_seed_article_then_its_sources(seed: str, slug: str) -> None:
    article = (SEEDS / seed).read_text(encoding="utf-8")
    result = run_cli("export", slug, "--format", "text", cwd=REPO)
    assert result.code == 0, result.err
    assert result.out.startswith(article + "\n\nSources\n")
    sources = result.out[len(article + "\n\nSources\n"):].splitlines()
    assert sources, "the sources list is missing"
    assert [int(re.match(r"\[(\d+)\] ", line)[1]) for line in sources] == list(  # type: ignore[index]
        range(1, len(sources) + 1))


@pytest.mark.parametrize("slug", SEED_CLAIMS.values())
@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_export(slug: str, fmt: str, request: pytest.FixtureRequest) -> None:
    result = run_cli("export", slug, "--format", fmt, cwd=REPO)
    assert result.code == 0, result.err
    golden = GOLDEN / f"{slug}.{FORMATS[fmt]}"
    if request.config.getoption("--update-golden"):
        golden.write_text(result.out, encoding="utf-8")
    assert result.out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs; if the change is intended, run "
        "`pytest tests/test_seeds.py --update-golden` and review the diff")


def test_derived_numbers_come_from_figures() -> None:
    """No derived number of the seed articles is typed into the claim files."""
    for slug in SEED_CLAIMS.values():
        text = (REPO / "claims" / f"{slug}.yaml").read_text(encoding="utf-8")
        for typed in ("0.18%", "0.176%", "63,892", "36,200,000", "36.2 million", "0.2%"):
            assert typed not in text, f"{typed} is typed into {slug}.yaml"


def test_first_follow_up_of_000_links_to_003() -> None:
    result = run_cli("export", SEED_CLAIMS["000_088960e0766809d2.txt"], "--format", "json",
                     cwd=REPO)
    import json

    follow_ups = json.loads(result.out)["follow_up"]
    assert follow_ups[0]["slug"] == SEED_CLAIMS["003_ebbd247d9009e526.txt"]
    assert [f["slug"] for f in follow_ups[1:]] == [None, None]


def test_example_project_checks_clean() -> None:
    result = run_cli("check", cwd=REPO)
    assert result.code == 0, result.err
    assert "0 error(s)" in result.err
