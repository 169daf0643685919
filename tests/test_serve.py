"""`claimpress serve` live: a real server in a subprocess, a real browser tab that reloads
by itself when a claim changes, and a broken claim shown in the page and the terminal."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Route, expect

from conftest import Server, serving

pytestmark = pytest.mark.browser

WAIT_MS = 60_000


@pytest.fixture
def server(rich: Path, tmp_path: Path) -> Iterator[Server]:
    """`claimpress serve --port N` on the rich project, started as a user would."""
    with serving(rich, tmp_path) as started:
        yield started
    assert not (rich / "build").exists(), "serve must not write build/"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_open_page_reloads_with_the_change(server: Server, rich: Path, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(server.url + "claims/is-the-sky-blue/")
    expect(page.locator(".summary")).to_contain_text("The sky looks blue on clear days")
    edit(rich / "claims/is-the-sky-blue.yaml", "looks blue on", "looks azure on")
    expect(page.locator(".summary")).to_contain_text("The sky looks azure on clear days",
                                                     timeout=WAIT_MS)
    page.close()


def test_drafts_are_shown_marked_draft(server: Server, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(server.url)
    expect(page.locator(".claim-list")).to_contain_text("Is this a draft?")
    page.goto(server.url + "claims/a-draft-in-progress/")
    expect(page.locator(".draft-banner")).to_have_text("DRAFT — not published")
    response = page.goto(server.url + "no/such/page/")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    page.click("text=Browse by topic")
    expect(page.locator("h1")).to_have_text("Topics")
    page.close()


def test_broken_claim_shows_its_error_and_the_server_keeps_running(
    server: Server, rich: Path, browser  # type: ignore[no-untyped-def]
) -> None:
    page = browser.new_page()
    page.goto(server.url + "claims/is-the-sky-blue/")
    claim = rich / "claims/is-the-sky-blue.yaml"
    good = claim.read_text()
    claim.write_text(good.replace("checked_on: 2026-01-16", "checked_on: 2026-13-45"))
    expect(page.locator("h1")).to_have_text("The site does not build", timeout=WAIT_MS)
    expect(page.locator(".build-error")).to_contain_text("claims/is-the-sky-blue.yaml:2:")
    assert "claims/is-the-sky-blue.yaml:2:" in server.err.read_text()
    claim.write_text(good.replace("looks blue on", "looks green on"))
    expect(page.locator(".summary")).to_contain_text("looks green on", timeout=WAIT_MS)
    assert server.process.poll() is None
    page.close()


def test_search_finds_an_edit_once_the_index_catches_up(  # type: ignore[no-untyped-def]
    server: Server, rich: Path, browser
) -> None:
    page = browser.new_page()
    page.goto(server.url + "claims/is-the-sky-blue/")
    edit(rich / "claims/is-the-sky-blue.yaml", "looks blue on", "looks quokkaesque on")
    expect(page.locator(".summary")).to_contain_text("looks quokkaesque on", timeout=WAIT_MS)
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:  # the page shows the edit first; the search index follows in the background
        page.goto(server.url + "search/?q=quokkaesque")
        status = page.locator("#search-status")
        expect(status).to_contain_text(re.compile("match|not available"), timeout=WAIT_MS)
        if page.locator("#search-results h2 a").count():
            break
        assert time.monotonic() < deadline, "the search index never caught up"
        time.sleep(0.2)
    expect(page.locator("#search-results h2 a")).to_have_text(["Is the sky blue?"])
    page.close()


def test_a_tab_reloads_only_when_its_own_page_changes(server: Server, rich: Path, browser) -> None:  # type: ignore[no-untyped-def]
    other = browser.new_page()
    other.goto(server.url + "about/")
    other.evaluate("() => { window.notReloaded = true; }")
    page = browser.new_page()
    page.goto(server.url + "claims/is-the-sky-blue/")
    edit(rich / "claims/is-the-sky-blue.yaml", "looks blue on", "looks cerulean on")
    expect(page.locator(".summary")).to_contain_text("looks cerulean on", timeout=WAIT_MS)
    front = browser.new_page()
    front.goto(server.url)
    expect(front.locator(".claim-list")).to_contain_text("looks cerulean on", timeout=WAIT_MS)
    assert other.evaluate("() => window.notReloaded === true")
    for tab in (page, other, front):
        tab.close()


def test_a_page_rewritten_while_it_loads_still_reloads(server: Server, rich: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """The front page is served, then rewritten (an edit's listings) before its reload
    script loads: the tab must still reload. It compares the page's version with the one
    the page was served with, not with the site's when the script came."""

    def front_version() -> int:
        with urllib.request.urlopen(server.url + "_claimpress/version?page=/") as response:
            return int(response.read())

    def edit_first(route: Route) -> None:
        before = front_version()
        edit(rich / "claims/is-the-sky-blue.yaml", "looks blue on", "looks cerulean on")
        deadline = time.monotonic() + WAIT_MS / 1000
        while front_version() <= before:  # the listings, front page included, are written
            assert time.monotonic() < deadline, "the front page was not rewritten"
            time.sleep(0.05)
        route.continue_()

    page = browser.new_page()
    page.route("**/_claimpress/livereload.js", edit_first, times=1)  # not after the reload
    page.goto(server.url)
    expect(page.locator(".claim-list")).to_contain_text("looks cerulean on", timeout=WAIT_MS)
    page.close()
