"""The reader's site beyond claim pages: listings, about, 404, JSON-LD, feed, sitemap,
robots.txt and claims.json, built end to end through the CLI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from claimpress.problems import OutputError
from claimpress.render import dumps
from claimpress.site import Plan
from conftest import run_cli

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
JSONLD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def build(root: Path, *args: str) -> Path:
    result = run_cli("build", *args, cwd=root)
    assert result.code == 0, result.err
    return root / "build"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def jsonld(page: str) -> dict:  # type: ignore[type-arg]
    blocks = JSONLD.findall(page)
    assert len(blocks) == 1
    return json.loads(blocks[0])  # type: ignore[no-any-return]


def test_example_site_has_every_page(example: Path) -> None:
    out = build(example)
    for rel in ("index.html", "404.html", "about/index.html", "search/index.html",
                "topics/index.html", "topics/ncmec/index.html", "topics/cybertipline/index.html",
                "sources/index.html", "open-questions/index.html", "feed.xml", "sitemap.xml",
                "robots.txt", "claims.json", "pagefind/pagefind.js", "static/search.js"):
        assert (out / rel).is_file(), rel
    index = read(out / "index.html")
    newest = index.index("How many CyberTipline escalations")
    older = index.index("What percentage of tips does ncmec actually pursue")
    assert newest < older, "the index lists the newest check first"
    assert 'href="topics/ncmec/"' in index
    about = read(out / "about/index.html")
    assert "How we check" in about and "<h2>How we check</h2>" in about
    for rating in ("Mostly accurate", "The claim contains some truth"):
        assert rating in about


def test_claim_review_json_ld(rich: Path) -> None:
    out = build(rich)
    page = read(out / "claims/did-it-rain-on-tuesday/index.html")
    assert "</script><script>" not in page
    data = jsonld(page)
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "ClaimReview"
    assert data["claimReviewed"] == "Did it rain 120 days in Paris last year?"
    assert data["url"] == "https://checks.example.org/desk/claims/did-it-rain-on-tuesday/"
    assert data["datePublished"] == "2026-02-10"
    assert data["author"] == {"@type": "Organization", "name": "Rich Desk",
                              "url": "https://checks.example.org/desk/"}
    rating = data["reviewRating"]
    assert rating["alternateName"] == "Misleading"
    assert (rating["ratingValue"], rating["bestRating"], rating["worstRating"]) == (2, 3, 1)
    item = data["itemReviewed"]
    assert item["@type"] == "Claim"
    assert item["author"]["name"] == "Mayor </script><script>alert(1)</script> & Co"
    assert item["author"]["@type"] == "Person"  # unless its claimant_type says otherwise
    assert item["datePublished"] == "2026-02-01"
    assert item["appearance"]["url"] == "https://news.example.org/rain"
    assert '<link rel="canonical" href="https://checks.example.org/desk/claims/did-it-rain-on' \
        in page
    assert '<meta property="og:title" content="Did it rain 120 days in Paris last year?">' in page
    assert '<meta name="twitter:card" content="summary">' in page


def test_a_claim_made_by_an_organization_says_so_in_json_ld(rich: Path) -> None:
    claim = rich / "claims" / "did-it-rain-on-tuesday.yaml"
    text = claim.read_text()
    claim.write_text(text.replace("claimant:", "claimant_type: organization\nclaimant:"))
    page = read(build(rich) / "claims/did-it-rain-on-tuesday/index.html")
    assert jsonld(page)["itemReviewed"]["author"] == {
        "@type": "Organization",
        "name": "Mayor </script><script>alert(1)</script> & Co",
    }


def test_article_json_ld_without_verdict(rich: Path) -> None:
    out = build(rich)
    data = jsonld(read(out / "claims/is-the-sky-blue/index.html"))
    assert data["@type"] == "Article"
    assert data["headline"] == "Is the sky blue?"
    assert data["citation"] == [{
        "@type": "CreativeWork", "name": "Annual weather report",
        "url": "https://met.example.org/report", "publisher": "Met Office",
        "datePublished": "2026-01-05"}]


def test_claim_page_shows_corrections_above_the_summary(rich: Path) -> None:
    page = read(build(rich) / "claims/did-it-rain-on-tuesday/index.html")
    assert page.index('class="corrections"') < page.index('class="summary"')
    assert "Mayor &lt;/script&gt;" in page
    assert "Verdict: <strong>Misleading</strong>" in page
    assert 'href="../../topics/meteo/"' in page
    assert 'href="../../claims/is-the-sky-blue/"' in page
    assert 'href="../../open-questions/"' in page


def test_feed_has_published_checks_and_their_corrections(rich: Path) -> None:
    out = build(rich, "--drafts")
    feed = ET.fromstring((out / "feed.xml").read_bytes())
    assert feed.findtext(f"{ATOM}updated") == "2026-03-01T00:00:00Z"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "Did it rain 120 days in Paris last year?", "Is the sky blue?"]
    first = entries[0]
    assert first.findtext(f"{ATOM}updated") == "2026-03-01T00:00:00Z"
    assert first.findtext(f"{ATOM}published") == "2026-02-10T00:00:00Z"
    content = first.findtext(f"{ATOM}content") or ""
    assert "Correction, February 12, 2026" in content
    assert "Update, March 1, 2026" in content
    assert "Mayor" not in content and "&lt;/script" not in content
    assert "Is this a draft?" not in read(out / "feed.xml")


def test_sitemap_robots_and_claims_json(rich: Path) -> None:
    out = build(rich, "--drafts")
    sitemap = ET.fromstring((out / "sitemap.xml").read_bytes())
    urls = {u.findtext(f"{SITEMAP}loc"): u.findtext(f"{SITEMAP}lastmod")
            for u in sitemap.findall(f"{SITEMAP}url")}
    base = "https://checks.example.org/desk/"
    assert urls[base + "claims/did-it-rain-on-tuesday/"] == "2026-03-01"
    assert urls[base + "claims/is-the-sky-blue/"] == "2026-01-16"
    assert urls[base + "topics/weather/"] == "2026-03-01"
    assert base + "claims/a-draft-in-progress/" not in urls
    assert base + "topics/drafts/" not in urls
    assert (out / "claims/a-draft-in-progress/index.html").is_file()
    assert read(out / "robots.txt").endswith(f"Sitemap: {base}sitemap.xml\n")
    data = json.loads(read(out / "claims.json"))
    assert read(out / "claims.json") == dumps(data)  # joined from the claims' own JSON
    assert data["site"]["rating_scale"] == ["True", "Misleading", "False"]
    assert [c["slug"] for c in data["claims"]] == ["did-it-rain-on-tuesday", "is-the-sky-blue"]
    exported = run_cli("export", "did-it-rain-on-tuesday", "--format", "json", cwd=rich)
    linked = json.loads(exported.out)
    assert data["claims"][0] == linked


def test_topics_and_sources_index(rich: Path) -> None:
    out = build(rich)
    topics = read(out / "topics/index.html")
    listed = re.findall(r'<li><a href="../topics/([^"]+)/">', topics)
    assert listed == ["meteo", "sky", "weather"], "Weather and weather share one topic"
    weather = read(out / "topics/weather/index.html")
    assert "Did it rain 120 days" in weather and "Is the sky blue?" in weather
    assert "<h1>Météo</h1>" in read(out / "topics/meteo/index.html")
    sources = read(out / "sources/index.html")
    met = sources[sources.index('id="source-met"'):]
    met = met[:met.index("</ul>")]
    assert 'href="../claims/did-it-rain-on-tuesday/#source-1"' in met
    assert 'href="../claims/is-the-sky-blue/#source-1"' in met
    assert "Archived copy" in met


def test_listings_go_on_in_pages_of_page_size(rich: Path) -> None:
    """Each listing shows `page_size` entries; the rest follow on page/2/ and on, each page
    linking the next and the one before, its list numbered on from the page before."""
    with (rich / "site.yaml").open("a") as f:
        f.write("page_size: 1\n")
    out = build(rich)
    claims = [
        re.findall(r'href="[./]*claims/([^/]+)/"', read(out / path))
        for path in ("index.html", "page/2/index.html")
    ]
    assert claims == [["did-it-rain-on-tuesday"], ["is-the-sky-blue"]]  # newest first
    assert not (out / "page/1").exists() and not (out / "page/3").exists()
    first, second = read(out / "sources/index.html"), read(out / "sources/page/2/index.html")
    assert '<a rel="next" href="../sources/page/2/">' in first and 'rel="prev"' not in first
    assert '<a rel="prev" href="../../../sources/">' in second and 'rel="next"' not in second
    assert '<ol class="source-index">' in first and '<ol class="source-index" start="2">' in second
    assert "<title>Sources (page 2) — Rich Checks</title>" in second
    assert '<link rel="canonical" href="https://checks.example.org/desk/sources/page/2/">' in second
    assert (out / "topics/weather/page/2/index.html").is_file()
    assert not (out / "topics/meteo/page").exists()  # one claim: one page, no pager
    assert 'class="pager"' not in read(out / "topics/meteo/index.html")
    assert "(2 checks)" in read(out / "topics/index.html")  # counted across its pages
    feed = ET.fromstring((out / "feed.xml").read_bytes()).findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in feed] == [
        "Did it rain 120 days in Paris last year?"  # the last changed: a page's worth
    ]


def test_links_work_under_a_sub_path(rich: Path) -> None:
    """Every page links relatively, except the 404 page, which is served at any depth and so
    starts its links at the path of base_url."""
    out = build(rich)
    for path in out.rglob("*.html"):
        hrefs = re.findall(r'(?:href|src)="([^"]*)"', read(path))
        rooted = [h for h in hrefs if h.startswith("/")]
        if path.name == "404.html":
            assert rooted and all(h.startswith("/desk/") for h in rooted)
        else:
            assert rooted == [], path
    assert '<a href="/desk/topics/">' in read(out / "404.html")


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../b", "a/..", "a//../b", "a\0b"])
def test_a_plan_refuses_an_output_path_that_leaves_the_site(path: str) -> None:
    with pytest.raises(OutputError, match="refusing unsafe output path"):
        Plan().add(path, "", "a claim")


def test_a_plan_takes_dots_inside_names_and_refuses_one_path_twice() -> None:
    plan = Plan()
    plan.add("claims/a..b/index.html", "x", "a claim")
    plan.add("./...", "x", "a claim")
    with pytest.raises(OutputError, match="both write"):
        plan.add("Claims/A..B/index.html", "y", "another claim")
