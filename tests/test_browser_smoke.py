"""The built example site opens in a real headless Chromium with no console error."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.browser


def test_claim_page_loads_without_errors(example: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("build", cwd=example).code == 0
    base = serve_dir(example / "build")
    page = browser.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(str(e)))
    page.goto(base + "claims/what-percentage-of-tips-does-ncmec-actually-pursue/")
    assert page.inner_text("h1") == "What percentage of tips does ncmec actually pursue"
    assert "0.18%" in page.inner_text(".summary")
    page.click("a.cite >> nth=0")
    assert page.evaluate("location.hash") == "#source-1"
    assert messages == []
    page.close()
