"""The shared registry: sources and figures defined once under sources/ and figures/, used by
key from any claim, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from claimpress.load import load_registry
from claimpress.resolve import Registry, build_registry
from conftest import run_cli

C000 = "what-percentage-of-tips-does-ncmec-actually-pursue"
C003 = "how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023"


def page(root: Path, slug: str) -> str:
    return (root / "build" / "claims" / slug / "index.html").read_text()


def export_json(root: Path, slug: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("export", slug, "--format", "json", cwd=root)
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_changing_a_shared_figure_changes_every_page_that_uses_it(example: Path) -> None:
    assert run_cli("build", cwd=example).code == 0
    for slug in (C000, C003):
        assert "63,892" in page(example, slug)
    assert "0.18%" in page(example, C000)
    shared = example / "figures" / "ncmec.yaml"
    shared.write_text(shared.read_text().replace("value: 63892", "value: 72400"))
    result = run_cli("build", cwd=example)
    assert result.code == 0, result.err
    for slug in (C000, C003):
        html = page(example, slug)
        assert "63,892" not in html and "72,400" in html
    # The claim's own formula over shared figures follows: 72,400 / 36.2 million = 0.2%.
    html = page(example, C000)
    assert "0.18%" not in html and "roughly 0.20% of 2023 reports" in html
    figure = export_json(example, C000)["figures"]["urgent_share"]
    assert figure["derivation"] == "72,400 ÷ 36.2 million"  # inputs as reviewers read them


def test_changing_a_shared_source_changes_every_page_that_cites_it(example: Path) -> None:
    shared = example / "sources" / "ncmec.yaml"
    shared.write_text(shared.read_text().replace("title: CyberTipline 2023 Report",
                                                 "title: CyberTipline Annual Report 2023"))
    assert run_cli("build", cwd=example).code == 0
    for slug in (C000, C003):
        assert "CyberTipline Annual Report 2023" in page(example, slug)
        assert export_json(example, slug)["sources"][0]["key"] == "ncmec-2023"


def test_a_claim_redefining_a_shared_source_names_both_places(example: Path) -> None:
    claim = example / "claims" / f"{C003}.yaml"
    claim.write_text(claim.read_text().replace(
        "sources:\n", "sources:\n  ncmec-2023:\n    title: My own copy\n", 1))
    result = run_cli("check", cwd=example)
    assert result.code == 1
    line = claim.read_text().splitlines().index("sources:") + 2
    assert (f"claims/{C003}.yaml:{line}:3: sources.ncmec-2023: source `ncmec-2023` is already "
            "defined at sources/ncmec.yaml:3:1; use that one or rename this one") in result.err


def test_a_claim_redefining_a_shared_figure_names_both_places(example: Path) -> None:
    claim = example / "claims" / f"{C000}.yaml"
    claim.write_text(claim.read_text().replace(
        "figures:\n", "figures:\n  reports_2023: {value: 1, source: ncmec-2023}\n", 1))
    result = run_cli("check", cwd=example)
    assert result.code == 1
    line = claim.read_text().splitlines().index("figures:") + 2
    assert (f"claims/{C000}.yaml:{line}:3: figures.reports_2023: figure `reports_2023` is "
            "already defined at figures/ncmec.yaml:3:1; use that one or rename this one"
            ) in result.err


def test_two_registry_files_defining_one_key_name_both_places(example: Path) -> None:
    (example / "sources" / "more.yaml").write_text(
        "other: {title: Other, url: https://example.org/other}\n"
        "ncmec-2023: {title: Again, url: https://example.org/again}\n")
    result = run_cli("check", cwd=example)
    assert result.code == 1
    assert ("sources/ncmec.yaml:3:1: ncmec-2023: source `ncmec-2023` is already defined at "
            "sources/more.yaml:2:1; use that one or rename this one") in result.err


def test_registry_figures_can_be_formulas(example: Path) -> None:
    (example / "figures" / "derived.yaml").write_text(
        "urgent_per_million: {formula: urgent_2023 / reports_2023 * 1000000}\n")
    claim = example / "claims" / f"{C003}.yaml"
    claim.write_text(claim.read_text().replace(
        "escalated {urgent_2023:,} reports",
        "escalated {urgent_2023:,} reports ({urgent_per_million:,.0f} per million)", 1))
    result = run_cli("build", cwd=example)
    assert result.code == 0, result.err
    assert "escalated 63,892 reports (1,765 per million)" in page(example, C003)
    figures = export_json(example, C003)["figures"]
    assert figures["urgent_per_million"]["derivation"] == "63,892 ÷ 36.2 million × 1000000"
    assert figures["reports_2023"]["source"] == "ncmec-2023"


def test_a_registry_formula_cannot_use_a_claims_own_figure(example: Path) -> None:
    (example / "figures" / "derived.yaml").write_text(
        "twice_share: {formula: urgent_share * 2}\n")
    result = run_cli("check", cwd=example)
    assert result.code == 1
    # The registry is computed once for every claim: one claim's figures are not in it.
    assert ("figures/derived.yaml:1:24: twice_share.formula: unknown figure `urgent_share` "
            "(a shared formula uses only figures under figures/); did you mean `urgent_2023`?"
            ) in result.err


def test_an_unknown_source_in_a_registry_figure_is_located(example: Path) -> None:
    shared = example / "figures" / "ncmec.yaml"
    shared.write_text(shared.read_text().replace("source: ncmec-2023", "source: ncmec-2203", 1))
    result = run_cli("check", cwd=example)
    assert result.code == 1
    assert ("figures/ncmec.yaml:6:11: reports_2023.source: unknown source `ncmec-2203`; "
            "did you mean `ncmec-2023`?") in result.err


def test_an_unused_shared_source_is_not_a_warning(example: Path) -> None:
    (example / "sources" / "more.yaml").write_text(
        "unused: {title: Unused, publisher: Example, accessed: 2026-01-15, "
        "url: https://example.org/u, "
        "archive_url: https://web.archive.org/web/2026/https://example.org/u}\n")
    result = run_cli("check", cwd=example)
    assert result.code == 0, result.err
    assert "unused" not in result.err


def _registry(text: str) -> Registry:
    path = Path("sources/x.yaml")
    file, problems = load_registry(path, str(path), "sources", text.encode())
    assert file is not None and not problems
    registry, problems = build_registry([file])
    assert not problems
    return registry


def test_a_claim_is_keyed_by_what_it_reads_of_the_registry() -> None:
    """A claim's cache key holds `fingerprint` of what it read: each entry it looked up, and
    the names and entries of a table it walked (to suggest a name for an unknown one)."""
    source = "{title: T, url: 'https://example.org/'}"
    one = _registry(f"a: {source}\nb: {source}\n")
    looked_up = one.reading()
    assert "a" in looked_up.sources
    walked = one.reading()
    assert list(walked.sources) == ["a", "b"]
    renamed = _registry(f"a: {source}\nc: {source}\n")  # b renamed, at the same place
    changed = _registry(f"a: {source}\nb: {source.replace('T', 'U')}\n")
    assert one.fingerprint(looked_up.noted()) == renamed.fingerprint(looked_up.noted())
    assert one.fingerprint(looked_up.noted()) == changed.fingerprint(looked_up.noted())
    for other in (renamed, changed):
        assert one.fingerprint(walked.noted()) != other.fingerprint(walked.noted())
    again = _registry(f"a: {source}\nb: {source}\n")
    assert one.fingerprint(walked.noted()) == again.fingerprint(walked.noted())
