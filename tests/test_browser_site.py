"""The built site as a reader meets it, in a real headless Chromium: every page loads cleanly,
every internal link and anchor resolves, search finds claims, JSON-LD parses, axe finds no
serious accessibility problem, and a phone screen needs no horizontal scrolling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urldefrag

import pytest
from playwright.sync_api import expect

from conftest import run_cli
from test_incremental import _generator

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 667}
NON_HTML = (".xml", ".json", ".txt", ".svg", ".css", ".js")


def build(root: Path) -> Path:
    result = run_cli("build", cwd=root)
    assert result.code == 0, result.err
    return root / "build"


def serve_under(serve_dir, out: Path, sub: str) -> str:  # type: ignore[no-untyped-def]
    """Serve the built site at /<sub>/, as a site whose base_url has a sub-path."""
    top = out.parent / "served"
    shutil.copytree(out, top / sub)
    return serve_dir(top) + sub + "/"


class Watched:
    """A page that records console errors, uncaught exceptions and failed requests."""

    def __init__(self, browser, **options) -> None:  # type: ignore[no-untyped-def]
        self.page = browser.new_page(**options)
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        # A request cut short by the next navigation is not a failure; a missing file is an
        # HTTP error, caught below.
        self.page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED" and
                     self.problems.append(f"failed: {r.url} ({r.failure})"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(
            f"HTTP {r.status}: {r.url}"))

    def open(self, url: str) -> None:
        response = self.page.goto(url)
        assert response is not None and response.ok, url


def crawl(browser, start: str) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    """Open every page reachable from `start` inside the site; check each loads with no
    console error or failed request, and each internal link and #anchor resolves. Returns
    the JSON-LD blocks of every HTML page."""
    watched = Watched(browser)
    queue, seen = [start, start + "404.html"], {start, start + "404.html"}
    anchors: dict[str, set[str]] = {}
    ids: dict[str, set[str]] = {}
    jsonld: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    while queue:
        url = queue.pop(0)
        if url.endswith(NON_HTML):
            response = watched.page.request.get(url)
            assert response.ok, f"{url}: HTTP {response.status}"
            continue
        watched.open(url)
        ids[url] = set(watched.page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        jsonld[url] = [json.loads(text) for text in watched.page.eval_on_selector_all(
            'script[type="application/ld+json"]', "els => els.map(e => e.textContent)")]
        for href in watched.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            target, fragment = urldefrag(href)
            if not target.startswith(start):
                continue
            if fragment:
                anchors.setdefault(target, set()).add(fragment)
            if target not in seen:
                seen.add(target)
                queue.append(target)
    assert watched.problems == []
    for target, fragments in anchors.items():
        assert fragments <= ids.get(target, set()), f"{target}: missing {fragments - ids[target]}"
    watched.page.close()
    assert len(jsonld) > 5
    return jsonld


def check_jsonld(url: str, blocks: list[dict]) -> None:  # type: ignore[type-arg]
    if "/claims/" not in url:
        assert blocks == [], url
        return
    assert len(blocks) == 1, url
    data = blocks[0]
    assert data["@context"] == "https://schema.org"
    assert data["url"].endswith(url.split("/claims/")[1])
    assert data["author"]["@type"] == "Organization" and data["author"]["name"]
    assert data["datePublished"]
    if data["@type"] == "ClaimReview":
        assert data["claimReviewed"]
        assert data["reviewRating"]["alternateName"]
        assert data["itemReviewed"]["@type"] == "Claim"
    else:
        assert data["@type"] == "Article"
        assert data["headline"] and data["citation"]
        assert all(c["name"] for c in data["citation"])


def test_example_site_crawls_clean(example: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_dir(build(example))
    pages = crawl(browser, base)
    assert base + "claims/what-percentage-of-tips-does-ncmec-actually-pursue/" in pages
    for url, blocks in pages.items():
        check_jsonld(url, blocks)


def test_rich_site_crawls_clean_under_a_sub_path(rich: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_under(serve_dir, build(rich), "desk")
    pages = crawl(browser, base)
    review = pages[base + "claims/did-it-rain-on-tuesday/"]
    assert review[0]["@type"] == "ClaimReview"
    assert review[0]["itemReviewed"]["author"]["name"].startswith("Mayor </script>")
    assert pages[base + "claims/is-the-sky-blue/"][0]["@type"] == "Article"
    for url, blocks in pages.items():
        check_jsonld(url, blocks)


def test_listings_in_pages_crawl_clean(rich: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    with (rich / "site.yaml").open("a") as f:
        f.write("page_size: 1\n")
    base = serve_under(serve_dir, build(rich), "desk")
    pages = crawl(browser, base)
    for path in ("page/2/", "sources/page/2/", "topics/weather/page/2/"):
        assert base + path in pages  # reached by following the pages' links


def search(browser, base: str, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    watched = Watched(browser)
    watched.open(base)
    watched.page.fill("#site-search-q", query)
    watched.page.press("#site-search-q", "Enter")
    watched.page.wait_for_url("**/search/?q=*")
    expect(watched.page.locator("#search-status")).to_contain_text("match", timeout=30_000)
    titles = watched.page.eval_on_selector_all(
        "#search-results h2 a", "els => els.map(e => [e.textContent, e.href])")
    assert watched.problems == []
    for _, href in titles:
        assert href.startswith(base), href
        assert watched.page.request.get(href).ok
    watched.page.close()
    return [title for title, _ in titles]


def test_search_finds_a_claim_by_a_word_of_its_body(example: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_dir(build(example))
    assert search(browser, base, "deconfliction") == [
        "What percentage of tips does ncmec actually pursue"]
    assert search(browser, base, "zzyzxnothing") == []


def test_a_search_index_in_shards_finds_what_one_index_finds(
    tmp_path: Path, browser, serve_dir, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "generated"
    _generator().generate(root, 12)
    shutil.copytree(build(root), tmp_path / "whole")
    whole = serve_dir(tmp_path / "whole")
    assert not (tmp_path / "whole" / "pagefind" / "00").exists()
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "2")
    sharded = serve_under(serve_dir, build(root), "desk")
    assert len(json.loads((root / "build" / "pagefind" / "shards.json").read_text())["bundles"]) > 2
    for word in ("budget", "county", "zzyzxnothing"):
        found = search(browser, whole, word)
        assert sorted(search(browser, sharded, word)) == sorted(found)
    assert len(found) == 0 and len(search(browser, whole, "budget")) > 2


def test_search_works_under_a_sub_path(rich: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_under(serve_dir, build(rich), "desk")
    assert search(browser, base, "Zanzibarian") == ["Did it rain 120 days in Paris last year?"]


def serious_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation(rich: Path, browser, serve_dir, scheme: str) -> None:  # type: ignore[no-untyped-def]
    base = serve_dir(build(rich))
    watched = Watched(browser, color_scheme=scheme)
    for path in ("", "claims/did-it-rain-on-tuesday/", "topics/weather/", "sources/",
                 "about/", "search/?q=rain"):
        watched.open(base + path)
        if path.startswith("search"):
            watched.page.wait_for_selector("#search-results li")
        assert serious_violations(watched.page) == [], path
    assert watched.problems == []


def test_phone_screen_needs_no_horizontal_scroll(rich: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_dir(build(rich))
    watched = Watched(browser, viewport=PHONE)
    for path in ("", "claims/did-it-rain-on-tuesday/", "topics/", "sources/", "about/",
                 "search/?q=rain", "open-questions/"):
        watched.open(base + path)
        if path.startswith("search"):
            watched.page.wait_for_selector("#search-results li")
        width = watched.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path}: {width}px wide"
    assert watched.problems == []


def test_pages_read_without_javascript(rich: Path, browser, serve_dir) -> None:  # type: ignore[no-untyped-def]
    base = serve_dir(build(rich))
    page = browser.new_page(java_script_enabled=False)
    page.goto(base + "claims/did-it-rain-on-tuesday/")
    assert "110 rainy days" in page.inner_text(".summary")
    page.goto(base)
    page.fill("#site-search-q", "rain")
    page.press("#site-search-q", "Enter")
    page.wait_for_url("**/search/?q=rain")
    assert page.is_visible("#search-nojs")
    page.close()


def test_keyboard_focus_is_visible_and_print_hides_navigation(rich: Path, browser,  # type: ignore[no-untyped-def]
                                                              serve_dir) -> None:
    base = serve_dir(build(rich))
    page = browser.new_page()
    page.goto(base + "claims/did-it-rain-on-tuesday/")
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.className, "
                            "getComputedStyle(document.activeElement).outlineStyle]")
    assert focused == ["skip", "solid"]
    assert page.is_visible(".site-header nav")
    page.emulate_media(media="print")
    assert page.is_hidden(".site-header nav") and page.is_hidden(".site-search")
    assert page.is_visible(".summary") and page.is_visible(".sources")
    page.close()
