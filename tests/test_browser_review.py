"""The review bundle opens in a real headless Chromium with no console error and no failed
request, the page beside the checklist, and a checklist link shows its section there."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.browser

SLUG = "what-percentage-of-tips-does-ncmec-actually-pursue"


def test_review_bundle_opens_clean(example: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    claim = example / "claims" / f"{SLUG}.yaml"
    claim.write_text(claim.read_text().replace("status: published", "status: draft"))
    assert run_cli("review", cwd=example).code == 0
    base = serve_dir(example / "review")
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}")
            if r.status >= 400 else None)
    page.goto(base)
    # Leave only when the favicon is in: a request cut short by the click counts as failed.
    page.wait_for_load_state("networkidle")
    page.click(f'a[href="claims/{SLUG}/review.html"]')
    page.wait_for_load_state("load")
    assert "Checklist" in page.inner_text("main")
    frame = page.frame(name="page")
    assert frame is not None
    frame.wait_for_load_state("load")
    assert frame.inner_text("h1") == "What percentage of tips does ncmec actually pursue"
    assert "DRAFT" in frame.inner_text("body")
    page.click('a[target="page"][href="index.html#source-2"] >> nth=0')
    frame.wait_for_function("location.hash === '#source-2'")
    assert problems == []
    page.close()
