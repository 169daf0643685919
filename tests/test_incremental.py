"""Warm builds (cache and previous build reused) are byte-identical to cold ones, always."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest

from claimpress import cache, lint, load, parallel, project, search, site, yamltree
from claimpress.approvals import approve
from claimpress.cache import CACHE_DIR, Pack
from claimpress.listing import slugify, source_index
from claimpress.problems import OutputError, Problem, ProblemsFound
from claimpress.project import gather
from claimpress.render import RENDERED, TEMPLATE_SUFFIXES, FragmentTable, _reached, _referenced
from claimpress.resolve import Page
from claimpress.site import MANIFEST, build
from conftest import REPO, run_cli, tree


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate", REPO / "benchmarks" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Builds:
    """A project built warm in place, and the same project built cold for comparison."""

    def __init__(self, root: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.scratch, self.monkeypatch, self.n = root, scratch, monkeypatch, 0

    def warm(self) -> dict[str, bytes]:
        build(gather(self.root), self.root / "build")
        return tree(self.root / "build")

    def cold(self) -> dict[str, bytes]:
        self.n += 1
        out = self.scratch / f"cold-{self.n}"
        with self.monkeypatch.context() as m:
            m.setenv("CLAIMPRESS_NO_CACHE", "1")
            build(gather(self.root), out)
        return tree(out)

    def forget(self) -> None:
        """Drop the records of what the builds were made from: the next build of the same
        inputs runs through instead of finding nothing to do."""
        shutil.rmtree(self.root / CACHE_DIR / "built")

    def same(self) -> dict[str, bytes]:
        warm = self.warm()
        assert warm == self.cold()
        return warm


@pytest.fixture
def builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Builds:
    root = tmp_path / "site"
    _generator().generate(root, 12)
    with (root / "site.yaml").open("a") as f:
        f.write("page_size: 5\n")  # every listing in pages, claims moving between them
    monkeypatch.setattr(parallel, "MIN_ITEMS", 4)  # exercise the forked workers too
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "3")  # the index in several shards
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    return Builds(root, tmp_path, monkeypatch)


def _stored(folder: Path) -> int:
    """How many entries the segments of a pack hold (the count after each segment's magic)."""
    return sum(int.from_bytes(p.read_bytes()[8:16], "little") for p in folder.glob("seg-*"))


def _inodes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_ino for p in out.rglob("*") if p.is_file()}


def test_warm_builds_match_cold_builds_through_every_kind_of_edit(builds: Builds) -> None:
    root = builds.root
    claims = sorted((root / "claims").iterdir())
    first = builds.same()
    assert _stored(root / CACHE_DIR / "claims") == 12
    assert builds.same() == first

    # One claim edited: only its own files (and lists that show it) are rewritten.
    before = _inodes(root / "build")
    claims[3].write_text(claims[3].read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    edited = builds.same()
    after = _inodes(root / "build")
    changed = {rel for rel in after if before.get(rel) != after[rel]}
    slug = claims[3].stem
    assert {f"claims/{slug}/index.html", f"claims/{slug}/index.json"} <= changed
    assert f"claims/{claims[4].stem}/index.html" not in changed
    assert "static/style.css" not in changed
    assert edited != first
    # The search index: only the shard holding the claim is indexed again.
    split = search.shards([p.slug for p in gather(root).published()])
    assert len(split) == 4
    edited_shard = next(f"pagefind/{i:02}/" for i, part in enumerate(split) if slug in part)
    reindexed = {rel.split("/", 2)[1] for rel in changed if rel.startswith("pagefind/")}
    assert reindexed == {edited_shard.split("/")[1], "shards.json"}

    # A question that another claim's follow-up points to: that other page changes too.
    text = claims[0].read_text()
    question = text.split("\n", 1)[0].removeprefix("question: ")
    claims[0].write_text(text.replace(question, "Is this a brand new question?", 1))
    builds.same()

    # Renamed and deleted claims: their old pages disappear.
    claims[5].rename(root / "claims" / "renamed-claim.yaml")
    claims[6].unlink()
    renamed = builds.same()
    assert "claims/renamed-claim/index.html" in renamed
    assert not any(
        rel.startswith((f"claims/{claims[5].stem}/", f"claims/{claims[6].stem}/"))
        for rel in renamed
    )

    # Shared registry, site settings and templates.
    shared = root / "figures" / "shared.yaml"
    shared.write_text(shared.read_text().replace("value: ", "value: 7", 1))
    builds.same()
    sources = root / "sources" / "shared.yaml"
    sources.write_text(sources.read_text().replace("Shared dataset", "Common dataset"))
    builds.same()
    site = root / "site.yaml"
    site.write_text(site.read_text().replace("Benchmark Checks", "Renamed Checks"))
    builds.same()
    (root / "templates").mkdir()
    theme = (REPO / "templates" / "claim.html").read_text()
    (root / "templates" / "claim.html").write_text(
        theme.replace("</article>", "</article><!-- override -->", 1)
    )
    assert b"<!-- override -->" in builds.same()[f"claims/{claims[4].stem}/index.html"]
    item = (REPO / "templates" / "_claim_item.html").read_text()
    (root / "templates" / "_claim_item.html").write_text(item.replace("<h2>", "<h2 id=o>", 1))
    assert b"<h2 id=o>" in builds.same()["index.html"]  # listing fragments are themed too
    shutil.rmtree(root / "templates")
    after = builds.same()
    assert b"<!-- override -->" not in after[f"claims/{claims[4].stem}/index.html"]
    assert b"<h2 id=o>" not in after["index.html"]

    # A claim that turns invalid, then valid again.
    claims[4].write_text(claims[4].read_text().replace("checked_on:", "checked_onn:"))
    assert any(p.field == "checked_onn" for p in gather(root).problems)
    claims[4].write_text(claims[4].read_text().replace("checked_onn:", "checked_on:"))
    builds.same()
    # Entries no run uses any more are dropped, and segments do not pile up.
    for kind in ("summaries", "claims", "lint", "rendered"):
        assert len(list((root / CACHE_DIR / kind).glob("seg-*"))) <= Pack.MAX_SEGMENTS
    assert _stored(root / CACHE_DIR / "claims") < 12 * 4


@pytest.mark.parametrize("at", [-40, 60])
def test_a_tampered_cache_entry_is_ignored(builds: Builds, at: int) -> None:
    first = builds.same()
    for kind in ("summaries", "claims", "lint", "rendered", "listed"):
        for segment in (builds.root / CACHE_DIR / kind).glob("seg-*"):
            data = bytearray(segment.read_bytes())
            # A planted or damaged pickle (at the end), or index (at the start): the
            # signature no longer matches.
            data[at] ^= 1
            segment.write_bytes(bytes(data))
    assert builds.same() == first
    assert gather(builds.root).problems == gather(builds.root).problems


def test_a_page_read_from_a_tampered_entry_is_rendered_again(builds: Builds) -> None:
    """A claim's page and text are read from the cache only when written; an entry whose
    signature is not ours then is rendered again, not written as it is."""
    first = builds.same()
    tampered = 0
    for segment in (builds.root / CACHE_DIR / "rendered").glob("seg-*"):
        data = bytearray(segment.read_bytes())
        for i in range(cache._HEAD.unpack_from(data)[1]):
            row = cache._HEAD.size + i * cache._ROW.size
            _, offset, length, _ = cache._ROW.unpack_from(data, row)
            if len(pickle.loads(data[offset : offset + length])) == 2:  # a page and text
                data[offset + length // 2] ^= 1  # its signature now wrong
                tampered += 1
        segment.write_bytes(bytes(data))
    assert tampered == 12
    shutil.rmtree(builds.root / "build")  # every file written, so every page read
    builds.forget()
    assert builds.warm() == first


def _resident_kb(path: Path) -> int:
    """How much of the file at `path` this process has mapped in memory (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(" " + str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="no /proc/self/smaps here")
def test_an_entry_read_once_leaves_the_memory_of_the_process(tmp_path: Path) -> None:
    data = os.urandom(4 << 20)
    pack = Pack(tmp_path, [b"context"], "kind")
    pack.put(pack.key("big"), data)
    pack.save()
    (segment,) = (tmp_path / CACHE_DIR / "kind").glob("seg-*")
    reader = Pack(tmp_path, [b"context"], "kind")
    assert reader.get(reader.key("big")) == data
    assert _resident_kb(segment) >= 4096  # read through the memory map: all of it in memory
    assert reader.get(reader.key("big"), once=True) == data
    assert _resident_kb(segment) < 512  # (the kernel may map a few pages around)
    assert reader.get(reader.key("big")) == data  # read again from the file


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="no /proc/self/smaps here")
def test_a_pack_read_once_entry_by_entry_leaves_the_memory_of_the_process(
    tmp_path: Path,
) -> None:
    """As a build reads the claims pack: small entries one after the other. The kernel maps
    a read page's neighbours at once; those of the entry before must go too."""
    entries = {str(n): os.urandom(30_000 + n) for n in range(400)}  # 12 MB
    pack = Pack(tmp_path, [b"context"], "kind")
    for name, data in entries.items():
        pack.put(pack.key(name), data)
    pack.save()
    (segment,) = (tmp_path / CACHE_DIR / "kind").glob("seg-*")
    reader = Pack(tmp_path, [b"context"], "kind")
    for name, data in entries.items():
        assert reader.get(reader.key(name), once=True) == data
    assert _resident_kb(segment) < 512  # its index, and at most a few pages more


LISTINGS = ("index.html", "topic.html", "sources.html", "open_questions.html")


def test_an_edit_renders_again_only_the_listing_entries_and_pages_of_its_claim(
    builds: Builds, rendered: list[str]
) -> None:
    feed = builds.same()["feed.xml"].decode()
    rendered.clear()
    builds.warm()
    assert rendered == []  # nothing changed: nothing to do

    # the last entry of the feed, which holds the `page_size` claims last changed
    slug = re.findall(r"/claims/([^/]+)/", feed)[-1]
    claim = builds.root / "claims" / f"{slug}.yaml"
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    rendered.clear()
    edited = builds.warm()
    page = next(p for p in gather(builds.root).published() if p.slug == claim.stem)
    assert page.claim.topics and page.sources
    lists = [
        path
        for path, text in edited.items()
        if path.startswith(("index.html", "page/", "topics/"))
        and f'claims/{claim.stem}/"'.encode() in text
    ]
    front = [path for path in lists if not path.startswith("topics/")]
    assert len(front) == 1 and len(lists) == 1 + len(page.claim.topics)
    assert Counter(t for t in rendered if t.startswith("_")) == Counter(
        {
            # on a page of the front page and of each of its topics: once per page depth
            "_claim_item.html": len({path.count("/") for path in lists}),
            "_feed_entry.xml": 1,
            "_source_entry.html": len(page.sources),  # each lists the claim as citing it
        }
    )
    assert b"New." in edited[front[0]] and b"New." in edited["feed.xml"]

    def showing(folder: str) -> int:
        return sum(
            1
            for path, text in edited.items()
            if path.startswith(folder) and f"claims/{claim.stem}/".encode() in text
        )

    # and only the listing pages that show it (every page of its topics: they know them all)
    topics = tuple(f"topics/{slugify(t)}/" for t in page.claim.topics)
    assert {t: n for t, n in Counter(rendered).items() if t in LISTINGS} == {
        "index.html": 1,
        "topic.html": sum(1 for path in edited if path.startswith(topics)),
        "sources.html": showing("sources/"),
        **({"open_questions.html": n} if (n := showing("open-questions/")) else {}),
    }
    assert edited == builds.cold()


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The slugs of the pages a build's `LazyPage`s load, in order."""
    loaded: list[str] = []
    real = project._Claims._page

    def page(claims: project._Claims, summary: project.Summary) -> Page:
        loaded.append(summary.slug or "")
        return real(claims, summary)

    monkeypatch.setattr(project._Claims, "_page", page)
    return loaded


def test_a_build_reads_a_page_when_first_used_and_it_acts_as_the_page(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds.warm()
    full = {p.slug: p for p in gather(builds.root).pages}
    loaded = _loads(monkeypatch)
    pages = gather(builds.root).without_locations().published()
    assert len(pages) == len(full) and loaded == []  # ordered and linked by their facts
    # the facts its claim's summary keeps are those of the page
    assert all(p.facts == Page.facts.func(full[p.slug]) for p in pages)  # type: ignore[attr-defined]
    first, second = pages[:2]
    assert first.claim == full[first.slug].claim and loaded == [first.slug]
    again = pickle.loads(pickle.dumps(second))
    assert type(again) is Page and again == second and second == again
    assert loaded == [first.slug, second.slug]


def test_a_claim_file_from_the_cache_parses_its_tree_when_first_read(builds: Builds) -> None:
    builds.warm()
    gathered = gather(builds.root)
    cached = gathered.claims[0]  # from the claims pack
    path = builds.root / cached.rel
    fresh, _, _ = project.load_and_resolve(  # parsed from its file
        path, cached.rel, path.read_bytes(), gathered.registry, gathered.site
    )
    assert fresh is not None
    assert type(cached.root) is yamltree.ParsedLater and cached.root.data == fresh.data
    assert type(fresh.root) is yamltree.Node
    assert cached.at("sections", 1, "body") == fresh.at("sections", 1, "body")
    assert not cached.root.data  # read now, and the same tree
    assert cached.root == fresh.root and fresh.root == cached.root and cached == fresh
    assert type(pickle.loads(pickle.dumps(cached.root))) is yamltree.Node


def test_a_page_that_cannot_be_loaded_any_more_is_a_problem_of_its_file(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds.warm()
    first = gather(builds.root).without_locations().published()[0]
    # its cache entry lost (never, but for a damaged segment), and its file no claim now
    monkeypatch.setattr(Pack, "get", lambda self, key, once=False: None)
    path = builds.root / "claims" / f"{first.slug}.yaml"
    path.write_text("question: [\n")
    with pytest.raises(ProblemsFound) as found:
        first.claim  # noqa: B018
    rel = f"claims/{first.slug}.yaml"
    assert found.value.problems == [
        Problem(rel, 0, 0, "", "changed while the site was being built; build again")
    ]


def test_a_rebuild_loads_only_the_pages_it_shows_anew(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds.same()
    published = gather(builds.root).published()
    slug = sorted(p.slug for p in published)[3]
    claim = builds.root / "claims" / f"{slug}.yaml"
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    loaded = _loads(monkeypatch)
    edited = builds.warm()

    # its own page, rendered again, and for each source it cites, the page the sources
    # index reads that source from (its first citing page); the other citing pages and
    # the other askers of its open questions are listed by their facts
    entries = [e for e in source_index(published) if slug in {c.page.slug for c in e.cited_by}]
    assert len(entries) > 1 and any(len(e.cited_by) > 1 for e in entries)
    assert sorted(loaded) == sorted({slug} | {e.cited_by[0].page.slug for e in entries})
    assert edited == builds.cold()


def test_under_require_approval_a_rebuild_loads_only_the_pages_it_shows_anew(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim whose approval matches its file is known by its claim's key, as without
    approvals; the approved version of a claim edited since, by all of it."""
    root = builds.root
    site = root / "site.yaml"
    site.write_text(site.read_text() + "require_approval: true\n")
    when = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    for page in gather(root).pages:
        if page.facts.status == "published":
            approve(gather(root), page.slug, "An Editor", None, when)
    first = builds.same()
    published = gather(root).published()
    slug = sorted(p.slug for p in published)[3]
    claim = root / "claims" / f"{slug}.yaml"
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    assert builds.same() == first  # the approved version shown, known by all of it
    approve(gather(root), slug, "An Editor", None, when)
    loaded = _loads(monkeypatch)
    edited = builds.warm()
    entries = [e for e in source_index(published) if slug in {c.page.slug for c in e.cited_by}]
    assert len(entries) > 1
    assert sorted(loaded) == sorted({slug} | {e.cited_by[0].page.slug for e in entries})
    assert edited == builds.cold() != first


def test_after_a_claim_template_edit_the_workers_load_the_pages_they_render_again(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds.same()
    template = (REPO / "templates" / "claim.html").read_text()
    (builds.root / "templates").mkdir()
    (builds.root / "templates" / "claim.html").write_text(
        template.replace("{% block main %}", "{% block main %}<p>Edited.</p>", 1)
    )
    loaded = _loads(monkeypatch)  # (in this process; forked workers count their own)
    edited = builds.warm()

    # every claim rendered again, its listings not: no page loaded by the build itself
    claims = [path for path in edited if path.startswith("claims/") and path.endswith(".html")]
    assert claims and all(b"<p>Edited.</p>" in edited[path] for path in claims)
    assert loaded == []
    assert edited == builds.cold()


def test_a_rebuild_writes_the_fragments_new_since_the_table_not_the_whole_table(
    builds: Builds, rendered: list[str]
) -> None:
    shutil.rmtree(builds.root)
    _generator().generate(builds.root, 60)
    tables: list[int] = []  # the size of each table of listing fragments a warm run wrote
    real = FragmentTable.encode

    def counted(table: FragmentTable, value: Any) -> bytes:
        if not os.environ.get("CLAIMPRESS_NO_CACHE"):
            tables.append(len(value))
        return real(table, value)

    builds.monkeypatch.setattr(FragmentTable, "encode", counted)
    builds.warm()
    assert len(tables) == 1 and tables[0] > 200
    builds.warm()
    assert len(tables) == 1
    claims = sorted((builds.root / "claims").iterdir())
    for n, claim in enumerate(claims[:3]):
        claim.write_text(claim.read_text().replace("summary: >-\n", f"summary: >-\n  New {n}.\n"))
        assert b"New" in builds.same()["claims.json"]
        assert len(tables) == 1  # a few fragments, kept beside the table
    for claim in claims[3:20]:
        claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  Newer.\n"))
    assert b"Newer" in builds.same()["claims.json"]
    assert len(tables) == 2  # more than a tenth new: the table is written again
    builds.warm()
    assert len(tables) == 2
    # Written again while the front page and topics were reused whole (every entry of the
    # sources index new), the table keeps the entries they were joined from: an edit then
    # renders its own alone.
    (builds.root / "templates").mkdir()
    entry = (REPO / "templates" / "_source_entry.html").read_text()
    (builds.root / "templates" / "_source_entry.html").write_text(entry + "\n")
    builds.same()
    assert len(tables) == 3
    claims[0].write_text(claims[0].read_text().replace("New 0.", "Newest."))
    rendered.clear()
    edited = builds.warm()
    assert 0 < len([t for t in rendered if t.startswith("_")]) < 15
    assert b"Newest" in edited["claims.json"] and edited == builds.cold()


def test_a_rebuild_reads_from_the_table_only_the_fragments_it_shows_anew(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing page reused whole only marks its entries used: the table of fragments is
    read for the pages themselves and the entries of the pages rendered again."""
    builds.same()
    tables: list[FragmentTable] = []
    read: list[bytes] = []
    real_init, real_get = FragmentTable.__init__, FragmentTable.__getitem__

    def kept(table: FragmentTable, *args: Any, **kwargs: Any) -> None:
        real_init(table, *args, **kwargs)
        if table.blob:  # the previous build's (a renderer starts with an empty one)
            tables.append(table)

    def counted(table: FragmentTable, key: bytes) -> Any:
        if table.stored(key):
            read.append(key)
        return real_get(table, key)

    monkeypatch.setattr(FragmentTable, "__init__", kept)
    monkeypatch.setattr(FragmentTable, "__getitem__", counted)
    claim = sorted((builds.root / "claims").iterdir())[0]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    edited = builds.warm()

    [table] = tables
    entries = [key for key in table.at if not table.parts(key)]
    assert len(entries) > 30
    assert 0 < len([key for key in read if not table.parts(key)]) < len(entries) // 3
    assert b"New." in edited["claims.json"]
    assert edited == builds.cold()


def test_the_table_of_fragments_gives_back_what_it_was_made_of() -> None:
    page, entry = b"p" * 16, b"e" * 16
    fragments = {entry: ("<li>Ünïcode &amp; more</li>", ()), page: ("<ol>…</ol>", (entry,))}
    table = FragmentTable(FragmentTable().encode(fragments))
    assert dict(table) == fragments and table.parts(page) == (entry,)
    assert table.stored(page) and b"x" * 16 not in table and table.get(b"x" * 16) is None
    newer = FragmentTable(table.blob, {b"n" * 16: ("new", (page,))})
    assert len(newer) == 3 and not newer.stored(b"n" * 16) and newer.parts(b"n" * 16) == (page,)
    # records kept unread are copied as they are
    again = FragmentTable(newer.encode({page: None, entry: None, b"n" * 16: None}))
    assert dict(again) == {**fragments, b"n" * 16: ("new", (page,))}
    with pytest.raises(ValueError, match="fragment key of 3 bytes"):
        table.encode({b"abc": ("", ())})


def test_a_template_edit_renders_again_only_what_uses_that_template(
    builds: Builds, rendered: list[str]
) -> None:
    """Claim pages depend on claim.html, claim.txt and what they extend or include; a
    listing entry on its own template: editing one renders again only what uses it."""
    builds.monkeypatch.setenv("CLAIMPRESS_JOBS", "1")  # claims rendered where they are counted
    builds.same()
    claims = len(gather(builds.root).published())
    templates = builds.root / "templates"
    templates.mkdir()

    def override(name: str, old: str, new: str) -> dict[str, bytes]:
        text = (REPO / "templates" / name).read_text()
        assert old in text
        (templates / name).write_text(text.replace(old, new, 1))
        rendered.clear()
        warm = builds.warm()
        used = list(rendered)  # the warm build's alone
        assert warm == builds.cold()
        rendered[:] = used
        return warm

    def entries() -> list[str]:
        return [t for t in rendered if t.startswith("_")]

    # A listing page: neither the claims nor any listing entry.
    assert (
        b"<h1>All sources"
        in override("sources.html", "<h1>Sources", "<h1>All sources")["sources/index.html"]
    )
    assert "claim.html" not in rendered and not entries()
    # A listing entry: that entry on every list, no claim.
    assert b"<h2 class=x>" in override("_claim_item.html", "<h2>", "<h2 class=x>")["index.html"]
    assert "claim.html" not in rendered and set(entries()) == {"_claim_item.html"}
    # The claim page, and the page it extends: every claim, no listing entry.
    override("claim.html", "</article>", "</article><!-- x -->")
    assert rendered.count("claim.html") == claims and not entries()
    override("base.html", "<body>", "<body class=x>")
    assert rendered.count("claim.html") == claims and not entries()
    # A template naming another by a variable: what it uses cannot be told, so claims
    # depend on the whole theme, about.html included.
    override("claim.html", '{% extends "base.html" %}', '{% extends ["base.html"][0] %}')
    override("about.html", "{% block", "<!-- x -->{% block")
    assert rendered.count("claim.html") == claims


def test_a_project_moved_with_its_cache_stays_warm(builds: Builds, rendered: list[str]) -> None:
    """Keys hold neither where the project is nor the working folder: a project renamed or
    cloned elsewhere keeps its cache."""
    builds.monkeypatch.setenv("CLAIMPRESS_JOBS", "1")  # claims rendered where they are counted
    reads = _reads(builds.monkeypatch)
    builds.monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)
    # A theme of the project's own, which names a template by a variable: claim pages then
    # depend on the whole theme.
    (builds.root / "templates").mkdir()
    theme = (REPO / "templates" / "claim.html").read_text()
    dynamic = theme.replace('{% extends "base.html" %}', '{% extends ["base.html"][0] %}')
    assert dynamic != theme
    (builds.root / "templates" / "claim.html").write_text(dynamic)
    builds.monkeypatch.chdir(builds.root)
    first = builds.same()
    moved = builds.root.rename(builds.scratch / "moved")
    builds.monkeypatch.chdir(moved)
    builds.root = moved
    reads.clear()
    rendered.clear()
    assert builds.warm() == first
    assert reads == [] and "claim.html" not in rendered
    assert not [t for t in rendered if t.startswith("_")]


def _segments(root: Path) -> list[str]:
    """Every segment of every pack of the cache: a run that found nothing new writes none."""
    return sorted(p.relative_to(root).as_posix() for p in (root / CACHE_DIR).glob("*/seg-*"))


def test_a_project_built_from_another_folder_stays_warm(
    builds: Builds, rendered: list[str]
) -> None:
    """What is cached names files from the project's root, not from the working folder:
    `-C site` from the parent, or `-C ../site` from a folder elsewhere, gathers and renders
    nothing again, and writes the same site."""
    builds.monkeypatch.setenv("CLAIMPRESS_JOBS", "1")  # claims rendered where they are counted
    reads = _reads(builds.monkeypatch)
    builds.monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)
    linted: list[str] = []
    lint_claim = lint.lint_claim

    def counted(context: lint.Context) -> list[Problem]:
        linted.append(context.page.slug)
        return lint_claim(context)

    builds.monkeypatch.setattr(lint, "lint_claim", counted)
    builds.monkeypatch.chdir(builds.root)
    first = builds.same()
    build(gather(Path(".")), Path("build"))  # from the root, as `claimpress build` is run
    segments = _segments(builds.root)
    elsewhere = builds.scratch / "elsewhere"
    elsewhere.mkdir()
    for cwd, named in ((builds.scratch, Path("site")), (elsewhere, Path("../site"))):
        builds.monkeypatch.chdir(cwd)
        reads.clear()
        rendered.clear()
        linted.clear()
        builds.forget()  # a build that runs through, not one with nothing to do
        build(gather(named), named / "build")
        assert tree(builds.root / "build") == first
        assert reads == [] and linted == []
        assert "claim.html" not in rendered
        assert not [t for t in rendered if t.startswith("_")]  # no listing fragment either
        assert _segments(builds.root) == segments  # nothing new to keep


def test_problems_from_a_warm_cache_name_files_from_the_working_folder(example: Path) -> None:
    """The same cached problems, named as the user would type the file from wherever
    `check` is run: from the root, from its parent with `-C`, from a folder elsewhere."""
    root = example.parent / "site"
    example.rename(root)
    (root / "claims" / "bad.yaml").write_text(
        "question: Bad?\nchecked_on: 2026-01-16\nstatus: published\nbogus: 1\n"
    )
    # A claim redefining a shared source: its message names the registry file too.
    claim = next(p for p in sorted((root / "claims").iterdir()) if p.name != "bad.yaml")
    claim.write_text(
        claim.read_text().replace(
            "sources:\n", "sources:\n  ncmec-2023: {title: X, url: https://example.org/x}\n", 1
        )
    )
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    # Every file settled (`project.SETTLED_NS`) before the first run: it records their stats,
    # and the next runs have nothing new to keep.
    time.sleep(project.SETTLED_NS / 1e9 + 0.1)
    from_root = run_cli("check", cwd=root)
    segments = _segments(root)
    from_parent = run_cli("-C", "site", "check", cwd=root.parent)
    from_elsewhere = run_cli("-C", "../site", "check", "--format", "json", cwd=elsewhere)
    assert _segments(root) == segments  # every problem came from the cache
    assert from_root.code == from_parent.code == from_elsewhere.code == 1
    assert "claims/bad.yaml:4:1: bogus: unknown field `bogus`" in from_root.err
    assert "\nsite/claims/bad.yaml:4:1: bogus: unknown field `bogus`" in from_parent.err
    # A message naming another file names it from the working folder too.
    line = claim.read_text().splitlines().index("sources:") + 2
    assert (
        f"\nsite/claims/{claim.name}:{line}:3: sources.ncmec-2023: source `ncmec-2023` is "
        "already defined at site/sources/ncmec.yaml:3:1; use that one or rename this one"
    ) in from_parent.err
    here, there = from_root.err.splitlines(), from_parent.err.splitlines()
    assert len(here) == len(there) > 3
    assert there[:-1] == [
        "site/" + line.replace(" at sources/", " at site/sources/") for line in here[:-1]
    ]
    assert here[-1] == there[-1]  # the count
    reported = json.loads(from_elsewhere.out)
    assert [p["path"] for p in reported] == ["../site/" + line.split(":")[0] for line in here[:-1]]
    assert any("at ../site/sources/ncmec.yaml:3:1;" in p["message"] for p in reported)


def test_the_templates_rendered_by_name_reach_every_template_of_the_default_theme() -> None:
    code = "".join(p.read_text() for p in (REPO / "src" / "claimpress").glob("*.py"))
    assert set(re.findall(r'(?:render|_listing)\(\s*"([^"]+)"', code)) == set(RENDERED)
    theme = REPO / "templates"
    files = {
        p.relative_to(theme).as_posix()
        for p in theme.rglob("*")
        if p.is_file() and p.suffix in TEMPLATE_SUFFIXES and "static" not in p.parts
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(theme))
    assert set(_reached(env, RENDERED) or ()) == files


def test_the_templates_a_template_uses_are_read_from_it() -> None:
    parse = jinja2.Environment().parse
    source = (
        '{% extends "base.html" %}{% include "a.html" %}{% import "m.html" as m %}'
        '{{ fragment("f.html", page=1) }}{{ fragment(template="g.html", page=1) }}'
    )
    assert _referenced(parse(source)) == {"base.html", "a.html", "m.html", "f.html", "g.html"}
    for dynamic in ("{% include name %}", "{{ fragment(name, page=1) }}", "{{ fragment() }}"):
        assert _referenced(parse(dynamic)) is None


def _planned(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One item for each site planned (rendered) from now on."""
    calls: list[bool] = []
    real = site.plan_site

    def spy(*args: Any, **kwargs: Any) -> site.Plan:
        calls.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(site, "plan_site", spy)
    return calls


def _stats(out: Path) -> dict[str, tuple[int, int, int]]:
    return {rel: (i.st_ino, i.st_mtime_ns, i.st_ctime_ns) for rel, i in site._entries(out)}


def test_a_build_of_the_inputs_of_the_untouched_build_there_does_nothing(builds: Builds) -> None:
    first = builds.same()
    planned = _planned(builds.monkeypatch)
    before = _stats(builds.root / "build")
    report = build(gather(builds.root), builds.root / "build")
    assert planned == []
    assert _stats(builds.root / "build") == before
    assert (report.claims, report.files) == (12, len(site._manifest(builds.root / "build")))
    assert builds.warm() == first and planned == []


def _edit_in_place(path: Path) -> None:
    data = path.read_bytes()
    with open(path, "r+b") as handle:  # the same inode and size, other bytes
        handle.write(data[:10].swapcase())


def _replace_by_symlink(path: Path) -> None:
    copy = path.parent.parent / "elsewhere"
    shutil.copy2(path, copy)
    path.unlink()
    path.symlink_to(copy)


def _move_over_with_its_times(path: Path) -> None:
    copy = path.with_name("copy")
    shutil.copy2(path, copy)  # the same bytes and times: only its status-change time tells
    copy.rename(path)


BUILD_CHANGES = {
    "a page edited in place": lambda out: _edit_in_place(out / "index.html"),
    "a page touched": lambda out: os.utime(out / "feed.xml"),
    "a page's copy moved over it": lambda out: _move_over_with_its_times(out / "robots.txt"),
    "a page deleted": lambda out: (out / "sitemap.xml").unlink(),
    "a file added": lambda out: (out / "CNAME").write_text("checks.example.org\n"),
    "an empty folder added": lambda out: (out / "claims" / "empty").mkdir(),
    "a page replaced by a symlink to its copy": lambda out: _replace_by_symlink(out / "index.html"),
    "a search file edited": lambda out: _edit_in_place(
        sorted((out / "pagefind").glob("*/pagefind-entry.json"))[0]
    ),
    "the manifest edited": lambda out: _edit_in_place(out / MANIFEST),
}


@pytest.mark.parametrize("change", BUILD_CHANGES.values(), ids=BUILD_CHANGES.keys())
def test_a_build_over_a_build_changed_by_hand_builds_it_again(builds: Builds, change: Any) -> None:
    first = builds.same()
    planned = _planned(builds.monkeypatch)
    change(builds.root / "build")
    assert builds.warm() == first
    assert planned == [True]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _tampered(record: Path) -> None:
    signed, _, body = record.read_bytes().partition(b"\n")
    record.write_bytes(signed + b"\n" + body.replace(b'"claims": 12', b'"claims": 13'))


INPUT_CHANGES = {
    "about.md added": lambda root, m: (root / "about.md").write_text("# About\n\nUs.\n"),
    "a static file added": lambda root, m: _write(
        root / "templates" / "static" / "extra.css", "p { margin: 0 }\n"
    ),
    "another number of claims per search shard": lambda root, m: m.setenv(
        "CLAIMPRESS_SEARCH_SHARD_PAGES", "5"
    ),
    "another page size": lambda root, m: _write(
        root / "site.yaml", (root / "site.yaml").read_text().replace("size: 5", "size: 4")
    ),
    "the record tampered with": lambda root, m: [
        _tampered(p) for p in (root / CACHE_DIR / "built").iterdir()
    ],
    "the record deleted": lambda root, m: shutil.rmtree(root / CACHE_DIR / "built"),
    "another user's signing key": lambda root, m: m.setenv(
        "XDG_CACHE_HOME", str(root.parent / "another-user")
    ),
}


@pytest.mark.parametrize("change", INPUT_CHANGES.values(), ids=INPUT_CHANGES.keys())
def test_a_build_of_other_inputs_or_an_unproven_record_builds_again(
    builds: Builds, change: Any
) -> None:
    builds.same()
    planned = _planned(builds.monkeypatch)
    change(builds.root, builds.monkeypatch)
    warm = builds.warm()
    assert planned == [True]
    assert warm == builds.cold()


def test_drafts_and_a_site_without_them_are_not_taken_for_each_other(builds: Builds) -> None:
    claim = sorted((builds.root / "claims").iterdir())[2]
    claim.write_text(claim.read_text().replace("status: published", "status: draft"))
    first = builds.same()
    planned = _planned(builds.monkeypatch)
    build(gather(builds.root), builds.root / "build", drafts=True)
    assert planned == [True]
    assert f"claims/{claim.stem}/index.html" in tree(builds.root / "build")
    assert builds.warm() == first and planned == [True, True]


def test_a_build_file_changed_by_hand_is_rewritten_not_reused(builds: Builds) -> None:
    first = builds.same()
    page = builds.root / "build" / "index.html"
    page.unlink()
    page.write_text("edited by hand")
    assert builds.same() == first
    assert (builds.root / "build" / MANIFEST).is_file()


def test_a_build_file_edited_in_place_at_the_same_size_is_rewritten(builds: Builds) -> None:
    first = builds.same()
    page = builds.root / "build" / "index.html"
    data = page.read_bytes()
    with open(page, "r+b") as handle:  # the same inode, the same size, other bytes
        handle.write(data[:10].swapcase())
    assert page.read_bytes() != data and len(page.read_bytes()) == len(data)
    assert builds.same() == first


def _modes(out: Path) -> dict[str, int]:
    """The permissions of every file and folder of a built site."""
    return {p.relative_to(out).as_posix(): p.stat().st_mode for p in out.rglob("*")}


def _edit_one(builds: Builds) -> str:
    """Edit the summary of one claim; its slug."""
    claim = sorted((builds.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    return claim.stem


def test_an_edited_claims_search_shard_is_indexed_while_the_listings_are_made(
    builds: Builds,
) -> None:
    """A process of its own indexes the edited claim's shard from the rendered page while
    the build makes the listing pages; the index is then moved into place, not made again."""
    builds.same()
    events: list[str] = []
    real_listings, real_linked = site.plan_listings, search._linked
    real_start, real_take = search.Ahead.start, search.Ahead.take
    real_reuse = site._reuse
    started: list[search.Ahead] = []

    def start(ahead: search.Ahead, *args: Any) -> None:
        real_start(ahead, *args)
        events.append(f"{len(ahead.shards)} shard started")
        started.append(ahead)

    def listings(*args: Any, **kwargs: Any) -> None:
        events.append("listings")
        real_listings(*args, **kwargs)
        _wait_for(lambda: list(started[-1].scratch.glob("index-*")))  # as on a big site

    def linked(*args: Any) -> Path:
        events.append("pages linked from the site")
        return real_linked(*args)

    def take(ahead: search.Ahead, *args: Any) -> bool:
        taken = real_take(ahead, *args)
        events.append(f"taken: {taken}")
        return taken

    def reuse(file: str, new: str, size: int, since: int) -> bool:
        done = real_reuse(file, new, size, since)
        if file.startswith(str(started[-1].scratch)):  # not the previous build's
            events.append(f"{Path(new).parent.name} linked: {done}")
        return done

    builds.monkeypatch.setattr(site, "plan_listings", listings)
    builds.monkeypatch.setattr(search, "_linked", linked)
    builds.monkeypatch.setattr(search.Ahead, "start", start)
    builds.monkeypatch.setattr(search.Ahead, "take", take)
    builds.monkeypatch.setattr(site, "_reuse", reuse)
    slug = _edit_one(builds)
    warm = builds.warm()
    # The edited page, written for the index ahead, is linked into the site from there.
    assert events == ["1 shard started", "listings", f"{slug} linked: True", "taken: True"]
    assert warm == builds.cold()
    assert _modes(builds.root / "build") == _modes(builds.scratch / f"cold-{builds.n}")
    assert list(builds.root.glob(".build.search-*")) == []


def test_the_site_and_the_process_ahead_index_each_shard_once(builds: Builds) -> None:
    """From nothing, every shard is handed to the process ahead; `index_site` claims those
    it has not started, and indexes exactly those."""
    real_start, real_theirs, real_linked = search.Ahead.start, search.Ahead.theirs, search._linked
    pagefind = search._pagefind()
    handed: list[str] = []
    theirs: set[str] = set()
    mine: list[str] = []

    def start(ahead: search.Ahead, *args: Any) -> None:
        with builds.monkeypatch.context() as m:  # each shard takes 3 s more ahead
            m.setattr(
                search, "_pagefind", lambda: ["sh", "-c", 'sleep 3; exec "$@"', "-", *pagefind]
            )
            real_start(ahead, *args)
        handed.extend(ahead.shards)
        _wait_for(lambda: list(ahead.scratch.glob("claimed-*")))

    def their(ahead: search.Ahead) -> set[str]:
        theirs.update(real_theirs(ahead))
        return theirs

    def linked(folder: Path, slugs: list[str], scratch: Path) -> Path:
        mine.extend(n for n in handed if set(slugs) <= _shard_slugs(folder, n))
        return real_linked(folder, slugs, scratch)

    builds.monkeypatch.setattr(search.Ahead, "start", start)
    builds.monkeypatch.setattr(search.Ahead, "theirs", their)
    builds.monkeypatch.setattr(search, "_linked", linked)
    warm = builds.warm()
    assert len(handed) == 4 and theirs and mine
    assert sorted([*theirs, *mine]) == sorted(handed)
    assert warm == builds.cold()


def _wait_for(done: Callable[[], object]) -> None:
    """Wait until `done()` is true (10 s at most)."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _shard_slugs(folder: Path, name: str) -> set[str]:
    """The claims of the shard `name` of the site in `folder`."""
    slugs = sorted(p.name for p in (folder / "claims").iterdir())
    split = search.shards(slugs)
    return set(split[int(name.rstrip("/"))])


def test_a_shard_that_failed_ahead_is_indexed_with_the_site(builds: Builds) -> None:
    """Best effort: a shard that Pagefind failed to index ahead is indexed with the site."""
    builds.same()
    real_start, real_take = search.Ahead.start, search.Ahead.take
    taken: list[bool] = []

    def start(ahead: search.Ahead, *args: Any) -> None:
        with builds.monkeypatch.context() as m:
            m.setattr(search, "_pagefind", lambda: ["false"])
            real_start(ahead, *args)
        assert ahead.process is not None
        ahead.process.wait()

    def take(ahead: search.Ahead, *args: Any) -> bool:
        taken.append(real_take(ahead, *args))
        return taken[-1]

    builds.monkeypatch.setattr(search.Ahead, "start", start)
    builds.monkeypatch.setattr(search.Ahead, "take", take)
    _edit_one(builds)
    warm = builds.warm()
    assert taken == [False]
    assert warm == builds.cold()
    assert list(builds.root.glob(".build.search-*")) == []


def test_a_shard_indexed_ahead_then_deleted_is_indexed_with_the_site(builds: Builds) -> None:
    """Best effort: a bundle indexed early that is gone when the site is written (deleted
    by hand, say) is indexed with the site."""
    builds.same()
    real_start, real_take = search.Ahead.start, search.Ahead.take
    deleted: list[Path] = []

    def start(ahead: search.Ahead, *args: Any) -> None:
        real_start(ahead, *args)
        _wait_for(lambda: list(ahead.scratch.glob("index-*")))

    def take(ahead: search.Ahead, *args: Any) -> bool:
        for bundle in ahead.scratch.glob("index-*"):
            shutil.rmtree(bundle)
            deleted.append(bundle)
        return real_take(ahead, *args)

    builds.monkeypatch.setattr(search.Ahead, "start", start)
    builds.monkeypatch.setattr(search.Ahead, "take", take)
    _edit_one(builds)
    assert builds.warm() == builds.cold()
    assert deleted


def test_a_failed_build_stops_the_process_ahead(builds: Builds) -> None:
    """The process ahead and everything it started end with the build."""
    builds.same()
    slow = builds.scratch / "slow-python"
    slow.write_text(f'#!/bin/sh\nsleep 60\nexec "{sys.executable}" "$@"\n')
    slow.chmod(0o755)
    builds.monkeypatch.setattr(sys, "executable", str(slow))
    real_start = search.Ahead.start
    started: list[search.Ahead] = []

    def start(ahead: search.Ahead, *args: Any) -> None:
        real_start(ahead, *args)
        started.append(ahead)

    def listings(*args: Any, **kwargs: Any) -> None:
        raise OutputError("the listings failed")

    builds.monkeypatch.setattr(search.Ahead, "start", start)
    builds.monkeypatch.setattr(site, "plan_listings", listings)
    _edit_one(builds)
    with pytest.raises(OutputError, match="the listings failed"):
        builds.warm()
    process = started[0].process
    assert process is not None and process.returncode == -signal.SIGKILL
    _wait_for(lambda: not _running_in_group(process.pid))  # nor the `sleep` it started


def test_the_process_ahead_stops_when_its_build_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build killed outright cannot stop the process ahead; it stops by itself after the
    shard it is on, rather than index every shard for nobody."""
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "3")  # 12 claims, 4 shards
    script = tmp_path / "killed.py"
    script.write_text(
        """import os, sys
from pathlib import Path

import lz4.block
from claimpress import search

pagefind = search._pagefind()
search._pagefind = lambda: ["sh", "-c", 'sleep 1; exec "$@"', "-", *pagefind]
ahead = search.Ahead(Path(sys.argv[1]))
page = b"<html lang=en><body><main>a claim</main></body></html>"
pages = {f"claim-{i}": lambda: lz4.block.compress(page) for i in range(12)}
ahead.start(pages, {s: s for s in pages}, [])
print(ahead.process.pid, len(ahead.shards), flush=True)
os._exit(0)  # no clean-up, as under kill -9
"""
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=True
    )
    pid, shards = map(int, done.stdout.split())
    assert shards == 4
    _wait_for(lambda: not _running_in_group(pid))
    assert len(list(tmp_path.glob("index-*"))) <= 1


def _running_in_group(group: int) -> list[str]:
    """The processes of a process group that are running (not zombies): their /proc stat."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == group and fields[0] != "Z":
                running.append(stat.read_text())
    return running
    assert list(builds.root.glob(".build.search-*")) == []


def test_a_scratch_folder_that_cannot_be_written_is_no_failure(builds: Builds) -> None:
    """Best effort: when the pages cannot be written early (the scratch folder gone, the
    disk full), the shards are indexed with the site."""
    builds.same()
    real_start = search.Ahead.start

    def start(ahead: search.Ahead, *args: Any) -> None:
        shutil.rmtree(ahead.scratch)
        real_start(ahead, *args)

    builds.monkeypatch.setattr(search.Ahead, "start", start)
    _edit_one(builds)
    assert builds.warm() == builds.cold()
    assert list(builds.root.glob(".build.search-*")) == []


def test_a_search_shard_changed_by_hand_is_indexed_again(builds: Builds) -> None:
    first = builds.same()
    bundles = sorted((builds.root / "build" / "pagefind").glob("*/pagefind-entry.json"))
    assert len(bundles) > 1
    bundles[0].write_text("{}")
    (bundles[1].parent / "fragment").rename(builds.root / "elsewhere")
    (bundles[1].parent / "fragment").symlink_to(builds.root / "elsewhere")
    assert builds.same() == first
    assert not (bundles[1].parent / "fragment").is_symlink()


def test_the_spare_builds_search_shards_are_kept_in_place_unless_touched(
    builds: Builds,
) -> None:
    calls: Counter[str] = Counter()

    def counting(name: str) -> Any:
        real = getattr(search, name)

        def counted(*args: object) -> Any:
            calls[name] += 1
            return real(*args)

        return counted

    for name in ("_link", "_start"):
        builds.monkeypatch.setattr(search, name, counting(name))
    first = builds.same()
    builds.forget()
    builds.same()  # the first build becomes the spare
    shards = len(search.shards([str(n) for n in range(12)]))
    builds.forget()
    assert builds.same() == first  # staged in the spare: its shards kept as they are
    calls.clear()
    builds.forget()
    assert builds.warm() == first
    assert calls == Counter()
    spare = site.spare_folder(builds.root, builds.root / "build")
    assert spare is not None
    bundles = sorted((spare / "pagefind").glob("*/pagefind-entry.json"))
    assert len(bundles) == shards > 1
    bundles[0].unlink()  # a hard link to build/'s file, which is left as it is
    bundles[0].write_text("{}")
    (spare / "pagefind" / "stray.txt").write_text("not ours")
    calls.clear()
    builds.forget()
    assert builds.warm() == first
    assert calls == Counter({"_link": 1})
    assert builds.cold() == first


def test_a_file_the_site_no_longer_has_is_deleted_from_the_spare(builds: Builds) -> None:
    """A file gone from a folder the site keeps (a theme's static file removed) is deleted
    from the spare a build stages in, though the folder did not change since its build."""
    extra = builds.root / "templates" / "static" / "extra.css"
    extra.parent.mkdir(parents=True)
    extra.write_text("body { color: red }\n")
    assert "static/extra.css" in builds.same()
    builds.forget()
    builds.same()  # the first build is now the spare
    extra.unlink()
    for _ in range(2):  # each stages in a spare that holds extra.css
        builds.forget()
        assert "static/extra.css" not in builds.same()


def test_what_is_added_to_the_spare_by_hand_does_not_reach_the_site(builds: Builds) -> None:
    first = builds.same()
    builds.forget()
    builds.warm()  # the first build is now the spare
    spare = site.spare_folder(builds.root, builds.root / "build")
    assert spare is not None and (spare / MANIFEST).is_file()
    slug = sorted((builds.root / "claims").iterdir())[0].stem
    (spare / "claims" / slug / "stray.html").write_text("not ours")
    (spare / "claims" / "stray").mkdir()
    (spare / "topics" / "stray.txt").write_text("not ours")
    gone = spare / "claims" / sorted((builds.root / "claims").iterdir())[1].stem / "index.txt"
    gone.unlink()
    builds.forget()
    assert builds.warm() == first


def test_a_build_holds_its_pages_without_yaml_trees_or_file_bytes(builds: Builds) -> None:
    project = gather(builds.root)
    build(project, builds.root / "build")
    assert project.pages and all(
        p.file.data == b"" and p.file.root.value is None for p in project.pages
    )
    with pytest.raises(RuntimeError):
        project.claims  # noqa: B018
    assert tree(builds.root / "build") == builds.cold()


def test_a_build_holds_its_claim_files_packed_until_written(builds: Builds) -> None:
    written = builds.same()
    for live in (False, True):
        plan = site.plan_site(gather(builds.root), live=live)
        claims = {rel for rel, _ in plan.items() if rel.startswith("claims/")}
        assert len(claims) == 3 * 12
        assert claims.isdisjoint(plan.files if not live else plan.packed)
        assert ("claims.json" in plan.packed) is not live  # in parts until written
        assert all(len(bytes(plan.packed[rel])) == len(plan.packed[rel]) for rel in plan.packed)
    assert {rel: bytes(data) for rel, data in site.plan_site(gather(builds.root)).items()} == {
        rel: data for rel, data in written.items() if not rel.startswith(("pagefind/", "."))
    }


def test_a_rebuild_plans_the_listing_pages_it_reuses_whole_unread(builds: Builds) -> None:
    """A listing page the table has whole is planned as the table stores it, compressed,
    with the digest the last build worked out: neither decoded, encoded nor hashed again,
    and written only if the output does not hold it already."""
    builds.same()
    claim = sorted((builds.root / "claims").iterdir())[0]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    [slug] = [s.slug for s in gather(builds.root).summaries if s.rel.endswith(claim.name)]
    assert slug is not None
    plan = site.plan_site(gather(builds.root))
    listed = {rel for rel, _ in plan.items() if rel.endswith(".html") and rel[:7] != "claims/"}
    unread = listed & plan.packed.keys()
    assert len(unread) > 10 and any(b"New." in plan.files[rel] for rel in listed - unread)
    for rel in unread:  # none shows the edited claim
        data = bytes(plan.packed[rel])
        assert plan.digests[rel] == site.file_digest(data) and slug.encode() not in data
    assert not site.plan_site(gather(builds.root), live=True).packed  # `serve` keeps bytes
    assert b"New." in builds.same()["claims.json"]


def test_a_rebuild_makes_its_sources_index_in_a_forked_process(builds: Builds) -> None:
    """Beside the rest of its planning, on the second core; a build from nothing (no
    fragments kept: its other core is busy with the search index) and `serve` do not."""
    forks: list[int] = []
    forked = parallel.forked

    def counted(func: Any) -> Any:
        forks.append(os.getpid())
        return forked(func)

    builds.monkeypatch.setattr(site, "forked", counted)
    builds.warm()  # from nothing
    assert forks == []
    claim = sorted((builds.root / "claims").iterdir())[0]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    builds.same()  # (its build without a cache, from nothing, does not fork either)
    assert forks == [os.getpid()]
    site.plan_site(gather(builds.root), live=True)
    assert forks == [os.getpid()]


def test_check_finds_what_a_build_finds_and_keeps_the_cached_pages(builds: Builds) -> None:
    root = builds.root
    claims = sorted((root / "claims").iterdir())
    claims[2].write_text(claims[2].read_text().replace("checked_on:", "checked_onn:"))
    claims[3].write_text(claims[3].read_text().replace("[@src-", "[@nosuch-", 1))
    checked = gather(root, render=False)  # cold: nothing cached yet
    assert any(p.field == "checked_onn" for p in checked.problems)
    assert any("nosuch" in p.message for p in checked.problems)
    gathered = gather(root)
    assert checked.problems == gathered.problems
    assert gather(root, render=False).problems == gathered.problems  # warm
    first = builds.same()
    stored = _stored(root / CACHE_DIR / "claims")
    assert gather(root, render=False).problems == gathered.problems
    assert _stored(root / CACHE_DIR / "claims") == stored
    # A project gathered without rendering still hands out fully rendered pages.
    page = gather(root, render=False).pages[0]
    assert page == next(p for p in gathered.pages if p.slug == page.slug)
    assert page.summary.html
    with builds.monkeypatch.context() as m:
        m.setenv("CLAIMPRESS_NO_CACHE", "1")
        assert gather(root, render=False).pages == gathered.pages
    assert builds.same() == first


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The claim files gathers read from here on, by name."""
    read: list[str] = []

    def counted(path: Path, rel: str) -> tuple[bytes | None, list[Problem]]:
        if path.parent.name == "claims":
            read.append(path.name)
        return load.read(path, rel)

    monkeypatch.setattr(project, "read", counted)
    return read


def test_a_warm_run_reads_only_the_claim_files_whose_stat_changed(builds: Builds) -> None:
    root, reads = builds.root, _reads(builds.monkeypatch)
    claims = sorted((root / "claims").iterdir())
    # Every file counts as settled: none changed within the last clock tick.
    builds.monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)
    first = builds.same()
    reads.clear()
    assert gather(root).pages == gather(root, render=False).pages
    assert reads == []

    def cold() -> tuple[object, ...]:
        with builds.monkeypatch.context() as m:
            m.setenv("CLAIMPRESS_NO_CACHE", "1")
            return gather(root).pages

    # Edited at the same size, its time of last change set back: its inode's change time moved.
    info = claims[2].stat()
    time.sleep(0.05)  # the next clock tick
    text = claims[2].read_text()
    claims[2].write_text(text.replace("question: ", "question: X", 1)[:-1])
    os.utime(claims[2], ns=(info.st_atime_ns, info.st_mtime_ns))
    assert claims[2].stat().st_size == info.st_size
    expected = cold()
    reads.clear()
    assert gather(root).pages == expected
    assert reads == [claims[2].name]
    # Replaced by another file of the same size and times: another inode.
    swap = root / "swap.yaml"
    swap.write_text(text)
    os.utime(swap, ns=(info.st_atime_ns, info.st_mtime_ns))
    swap.rename(claims[2])
    expected = cold()
    reads.clear()
    assert gather(root).pages == expected
    assert reads == [claims[2].name]
    assert builds.same() == first


def test_a_claim_file_changed_just_now_is_read_again_by_the_next_run(builds: Builds) -> None:
    root, reads = builds.root, _reads(builds.monkeypatch)
    claims = sorted((root / "claims").iterdir())
    builds.monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)
    gather(root, render=False)
    builds.monkeypatch.setattr(project, "SETTLED_NS", 3600 * 10**9)  # nothing is settled
    claims[1].write_text(claims[1].read_text())
    for _ in range(2):
        reads.clear()
        gather(root, render=False)
        assert reads == [claims[1].name]


def test_a_claim_approved_after_it_was_cached_is_seen_as_approved(builds: Builds) -> None:
    root = builds.root
    site = root / "site.yaml"
    site.write_text(site.read_text() + "require_approval: true\n")
    before = builds.same()
    slug = sorted((root / "claims").iterdir())[1].stem
    assert f"claims/{slug}/index.html" not in before
    warm = gather(root, render=False)
    assert any(p.rule == "needs-approval" and slug in p.path for p in warm.problems)
    approve(warm, slug, "An Editor", None, dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    # The claim file did not change, only approvals/: its cached summary is hashed now.
    assert not any(p.rule == "needs-approval" and slug in p.path for p in gather(root).problems)
    with builds.monkeypatch.context() as m:
        m.setenv("CLAIMPRESS_NO_CACHE", "1")
        cold = gather(root).problems
    assert gather(root, render=False).problems == cold
    assert f"claims/{slug}/index.html" in builds.same()


def test_an_approval_goes_stale_when_a_shared_source_it_draws_on_changes(builds: Builds) -> None:
    root = builds.root
    site = root / "site.yaml"
    site.write_text(site.read_text() + "require_approval: true\n")
    claim = sorted((root / "claims").iterdir())[0]
    # The source of a shared figure the claim shows, which the claim does not cite itself.
    k = int(re.findall(r"\{shared_fig_(\d+)", claim.read_text())[0]) % 40
    assert f"[@shared-{k}]" not in claim.read_text()
    builds.same()
    approve(gather(root), claim.stem, "An Editor", None, dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    problems = gather(root).problems
    assert not any(p.rule == "needs-approval" for p in problems if claim.stem in p.path)
    sources = root / "sources" / "shared.yaml"
    sources.write_text(sources.read_text().replace(f"Shared dataset {k}\n", "Retitled\n"))
    warm = gather(root).problems
    assert any(p.rule == "needs-approval" for p in warm if claim.stem in p.path)
    with builds.monkeypatch.context() as m:
        m.setenv("CLAIMPRESS_NO_CACHE", "1")
        assert gather(root).problems == warm


def test_a_pack_drops_unused_entries_and_the_leftovers_of_killed_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    first = Pack(tmp_path, [b"context"], "kind")
    first.put(first.key("a"), b"A")
    first.put(first.key("b"), b"BBBB")
    first.save()
    earlier = first.folder / ("ab" * 32)  # an entry of the one-file-per-entry cache
    unrelated = first.folder / "notes.txt"
    earlier.write_bytes(b"old")
    unrelated.write_bytes(b"mine")
    leftover = first.folder / ".tmp-seg-killed"
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    second = Pack(tmp_path, [b"context"], "kind")
    assert second.get(second.key("a")) == b"A"
    second.save()  # `b` unused, and heavier than what was used: the pack is rewritten
    third = Pack(tmp_path, [b"context"], "kind")
    assert third.get(third.key("a")) == b"A"
    assert third.get(third.key("b")) is None
    assert len(list(first.folder.glob("seg-*"))) == 1
    assert not leftover.exists()
    assert not earlier.exists() and unrelated.exists()
    other = Pack(tmp_path, [b"other context"], "kind")  # another site.yaml, registry...
    assert other.get(other.key("a")) is None


def test_a_pack_merges_the_segments_of_runs_but_leaves_its_largest_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    first = Pack(tmp_path, [b"context"], "kind")
    for n in range(50):
        first.put(first.key(str(n)), b"entry %d" % n)
    first.save()
    [largest] = first.folder.glob("seg-*")
    inode = largest.stat().st_ino
    for run in range(3 * Pack.MAX_SEGMENTS):  # each an edit: all used, one new, one dropped
        pack = Pack(tmp_path, [b"context"], "kind")
        for n in range(50 + run):
            assert pack.get(pack.key(str(n))) == b"entry %d" % n
        pack.put(pack.key(f"run {run}"), b"run %d" % run)
        pack.get(pack.key(f"run {run - 1}"))  # the run before's: the others go unused
        pack.put(pack.key(str(50 + run)), b"entry %d" % (50 + run))
        pack.save()
        assert len(list(pack.folder.glob("seg-*"))) <= Pack.MAX_SEGMENTS
    assert largest.stat().st_ino == inode  # never rewritten
    last = Pack(tmp_path, [b"context"], "kind")
    n = 50 + 3 * Pack.MAX_SEGMENTS
    assert all(last.get(last.key(str(i))) == b"entry %d" % i for i in range(n))
    runs = [last.get(last.key(f"run {run}")) for run in range(3 * Pack.MAX_SEGMENTS)]
    assert runs[-2:] == [b"run %d" % (len(runs) - 2), b"run %d" % (len(runs) - 1)]
    assert runs[: -Pack.MAX_SEGMENTS] == [None] * (len(runs) - Pack.MAX_SEGMENTS)  # merged away


def test_findings_are_reused_on_another_day_only_when_the_date_changes_none(
    builds: Builds,
) -> None:
    root = builds.root

    def cold(day: dt.date) -> tuple[object, ...]:
        with builds.monkeypatch.context() as m:
            m.setenv("CLAIMPRESS_NO_CACHE", "1")
            return gather(root, day, render=False).problems

    first = gather(root, dt.date(2027, 1, 1), render=False)
    stored = _stored(root / CACHE_DIR / "lint")
    # No date after either day and no check stale on either: the same findings, not redone.
    later = gather(root, dt.date(2028, 6, 1), render=False)
    assert later.problems == first.problems == cold(dt.date(2028, 6, 1))
    assert _stored(root / CACHE_DIR / "lint") == stored
    # Stale checks, and dates in the future: those claims' findings are made for that day.
    for day in (dt.date(2031, 1, 1), dt.date(2021, 1, 1)):
        found = gather(root, day, render=False).problems
        assert found == cold(day)
        assert {"stale-check", "future-date"} & {p.rule for p in found}


def test_another_version_of_a_library_that_shapes_the_cache_is_a_new_cache(
    builds: Builds,
) -> None:
    first = builds.same()
    real = cache.version
    for name in cache.SHAPING:
        cache.code_digest.cache_clear()
        with builds.monkeypatch.context() as m:
            m.setattr(cache, "version", lambda n, name=name: "0.0" if n == name else real(n))
            planned = _planned(m)
            reads = _reads(m)
            assert builds.warm() == first
            assert planned == [True] and len(reads) == 12, name
    cache.code_digest.cache_clear()


def test_a_build_drops_the_rendered_cache_of_earlier_versions(builds: Builds) -> None:
    old = builds.root / CACHE_DIR / "pages"
    old.mkdir(parents=True)
    (old / ("cd" * 32)).write_bytes(b"old")
    builds.same()
    assert not old.exists()


def test_a_registry_edit_gathers_again_only_the_claims_that_read_what_changed(
    builds: Builds,
) -> None:
    root, reads = builds.root, _reads(builds.monkeypatch)
    builds.monkeypatch.setattr(project, "SETTLED_NS", -3600 * 10**9)
    claims = sorted((root / "claims").iterdir())
    figures = root / "figures" / "shared.yaml"

    def gathered_again() -> list[str]:
        """The claim files a warm build reads (its output checked against a cold one)."""
        reads.clear()
        warm = builds.warm()
        again = sorted(reads)
        assert warm == builds.cold()
        return again

    def using(figure: str) -> list[str]:
        return sorted(p.name for p in claims if re.search(f"{{{figure}[:}}]", p.read_text()))

    figure = next(f"shared_fig_{k}" for k in range(30) if using(f"shared_fig_{k}"))
    assert 0 < len(using(figure)) < len(claims)
    builds.same()
    text = figures.read_text()
    value = text.index("value: ", text.index(f"\n{figure}:"))
    figures.write_text(text[:value] + "value: 7" + text[value + len("value: ") :])
    assert gathered_again() == using(figure)

    # A shared figure no claim uses: nothing is gathered again.
    figures.write_text(figures.read_text() + "unused_fig:\n  value: 12\n  source: shared-0\n")
    assert gathered_again() == []

    # A claim naming a figure the registry lacks walked the registry for a suggestion: a
    # figure added there may be the one it meant, so it is gathered again.
    claims[1].write_text(
        claims[1].read_text().replace("summary: >-\n", "summary: >-\n  {later_fig}\n", 1)
    )
    assert any("unknown figure `{later_fig}`" in p.message for p in gather(root).problems)
    figures.write_text(figures.read_text() + "later_fig:\n  value: 5\n  source: shared-0\n")
    assert gathered_again() == [claims[1].name]
    assert not any("later_fig" in p.message for p in gather(root).problems)

    # A number typed into prose is matched against every shared figure's value: a new one
    # of that value is suggested (the first by name), so the claim is gathered again.
    claims[2].write_text(
        claims[2].read_text().replace("summary: >-\n", "summary: >-\n  About 61,234,567.\n", 1)
    )
    assert "it matches figure" not in str(gather(root).problems)
    figures.write_text(figures.read_text() + "a_fig:\n  value: 61234567\n  source: shared-0\n")
    assert gathered_again() == [claims[2].name]
    assert "it matches figure `a_fig`" in str(gather(root).problems)


def test_a_theme_edit_outside_what_the_search_index_reads_indexes_no_shard_again(
    builds: Builds,
) -> None:
    """The shards are keyed by what Pagefind reads of their pages: an edit of the claim
    template outside the `data-pagefind-body` element renders every page again and indexes
    nothing again, and the index is the one a build from nothing makes; an edit inside it
    indexes every shard again."""
    builds.same()
    (builds.root / "templates").mkdir()
    theme = (REPO / "templates" / "claim.html").read_text()
    template = builds.root / "templates" / "claim.html"
    template.write_text(theme.replace("</article>", "</article><p>After the article.</p>", 1))
    before = _inodes(builds.root / "build")
    outside = builds.same()
    after = _inodes(builds.root / "build")
    page = f"claims/{sorted((builds.root / 'claims').iterdir())[0].stem}/index.html"
    assert b"After the article." in outside[page] and before[page] != after[page]
    index = [rel for rel in after if rel.startswith("pagefind/") and "shards.json" not in rel]
    assert len({rel.split("/")[1] for rel in index}) == 4  # shards
    assert all(before.get(rel) == after[rel] for rel in index)
    template.write_text(theme.replace("<h1>", "<h1>Asked: ", 1))
    builds.same()
    again = _inodes(builds.root / "build")
    assert not any(again.get(rel) == after[rel] for rel in index if rel.endswith("entry.json"))

PAGE = (
    b'<!doctype html><html lang="en"><head><title>T</title><link rel=stylesheet href="a.css">'
    b'</head><body><header><a href="/">Site</a></header><main><article class="claim" '
    b"data-pagefind-body><h1>Q</h1><p>text</p></article></main><footer>F</footer></body></html>"
)


@pytest.mark.parametrize(
    "old, new",
    [
        (b"a.css", b"b.css"),
        (b">F<", b">G<"),
        (b"</html>", b"</html><!-- x -->"),
        (b"<main>", b'<main class="x">'),
        (b"<header>", b'<header id="top">'),
    ],
)
def test_an_indexed_key_leaves_out_what_pagefind_does_not_read(old: bytes, new: bytes) -> None:
    assert old in PAGE
    assert search.indexed_key(PAGE.replace(old, new, 1)) == search.indexed_key(PAGE)


@pytest.mark.parametrize(
    "old, new, whole",
    [
        (b">Q<", b">R<", False),  # the body's text
        (b'lang="en"', b'lang="fr"', False),  # its language
        (b"<title>T", b"<title>U", False),  # the title, when the body has no heading
        (b"<title>T", b"<TITLE>t", False),  # case kept
        (b"<header>", b"<header><h1>H</h1>", False),  # a heading before the body's
        (b"<footer>", b'<footer><img src="x.png">', False),  # the result's image
        (b">F<", b' data-pagefind-meta="x">F<', True),  # meta, filters... outside the body
        (b"data-pagefind-body", b'title="data-pagefind-body"', True),  # not an attribute
        (b"data-pagefind-body", b"data-pagefind-bodyx", True),
        (b"data-pagefind-body", b"data-pagefind-body><i data-pagefind-body", True),  # two
        (b"</article>", b"", True),  # no end
    ],
)
def test_an_indexed_key_covers_what_pagefind_reads(old: bytes, new: bytes, whole: bool) -> None:
    """Anything Pagefind could read differently changes the key; where what it reads cannot
    be told for sure, the key is the whole page's."""
    page = PAGE.replace(old, new, 1)
    assert old in PAGE and search.indexed_key(page) != search.indexed_key(PAGE)
    assert (search.indexed_part(page) == page) is whole


def test_pagefind_indexes_a_page_and_what_an_indexed_key_covers_of_it_alike(
    builds: Builds,
) -> None:
    """The claim pages of the default theme, and pages with a heading, an image or a title
    outside the indexed element only: Pagefind's bundle of the pages and its bundle of
    their `indexed_part` are the same, file for file."""
    builds.same()
    site = builds.root / "build"
    pages = {path.relative_to(site): path.read_bytes() for path in site.glob("claims/*/index.html")}
    for i, (old, new) in enumerate(
        [
            (b"<header>", b"<header><h1>Before</h1><img src=before.png alt=B>"),
            (b"<h1>Q</h1>", b"<h2>Q</h2>"),  # titled by <title>
            (b"<footer>", b'<footer><h1>After</h1><img src="after.png">'),
        ]
    ):
        pages[Path(f"more/{i}/index.html")] = PAGE.replace(old, new, 1)
    bundles = []
    for name, part in (("pages", lambda page: page), ("parts", search.indexed_part)):
        for rel, page in pages.items():
            (builds.scratch / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (builds.scratch / name / rel).write_bytes(part(page))
        out = builds.scratch / f"{name}-index"
        command = search._command(search._pagefind(), builds.scratch / name, out)
        subprocess.run(command, check=True, capture_output=True)
        bundles.append(tree(out))
    assert len(bundles[0]) > 10 and bundles[0] == bundles[1]
    assert any(search.indexed_part(page) != page for page in pages.values())
