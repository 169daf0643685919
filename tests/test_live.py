"""`serve`'s site kept in memory: an edit re-read and re-rendered alone gives, byte for byte,
what gathering and building everything again gives, and writes only what changed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import weakref
from collections import Counter
from pathlib import Path

import pytest
import watchfiles

from claimpress import live as live_module
from claimpress import site as site_module
from claimpress.live import Claims, LiveSite, reload_claims
from claimpress.project import gather
from claimpress.render import Renderer
from claimpress.resolve import LazyPage
from claimpress.serve import Preview, _Server, _Watcher
from claimpress.site import MANIFEST, build, plan_site
from conftest import tree
from test_incremental import _generator


class Live:
    """A project previewed by a `LiveSite`, edits applied to it one by one."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root, self.scratch, self.n = root, scratch, 0
        self.written: list[set[str] | None] = []
        project = gather(root).without_locations()
        self.claims = Claims.of(project)
        self.site = LiveSite(scratch / "live" / "site", self.written.append)
        self.site.start()
        self.site.full(project)
        self.site.idle.wait()

    def edited(self, *paths: Path) -> set[str]:
        """Apply an edit of `paths` (`applied`) and check the result (`checked`); return the
        files the edit rewrote."""
        written = self.applied(*paths)
        self.checked()
        return written

    def applied(self, *paths: Path) -> set[str]:
        """Apply an edit of `paths` the way `serve` does; return the files it rewrote."""
        reloaded = reload_claims(self.claims, paths)
        assert reloaded is not None
        self.claims = reloaded
        self.written.clear()
        self.site.update(reloaded)
        self.site.idle.wait()
        assert None not in self.written
        return set().union(*self.written)  # type: ignore[arg-type]

    def checked(self) -> None:
        """Check the claims and site against a project gathered and a site built from
        nothing."""
        assert self.claims == Claims.of(gather(self.root).without_locations())
        assert self.site.pages == gather(self.root).without_locations().published(drafts=True)
        self.n += 1
        cold = LiveSite(self.scratch / f"cold-{self.n}" / "site", lambda _: None)
        cold.start()
        cold.full(gather(self.root))
        cold.idle.wait()
        assert tree(self.site.out) == tree(cold.out)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Live:
    root = tmp_path / "site"
    _generator().generate(root, 12)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "3")  # the index in several shards
    monkeypatch.chdir(root)
    return Live(root, tmp_path)


def test_edits_of_claims_match_a_full_build_and_rewrite_only_what_they_touch(live: Live) -> None:
    root = live.root
    claims = sorted((root / "claims").iterdir())
    assert (live.site.out / "pagefind").is_dir()

    # One summary edited: that claim's files and the lists showing it, no other claim.
    claims[3].write_text(claims[3].read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    written = live.edited(claims[3])
    assert f"claims/{claims[3].stem}/index.html" in written
    assert "index.html" in written
    assert not any(p.startswith(f"claims/{claims[4].stem}/") for p in written)
    assert not any(p.startswith("static/") for p in written)

    # A question another claim's follow-up asks: that claim's page changes too.
    text = claims[0].read_text()
    question = text.split("\n", 1)[0].removeprefix("question: ")
    claims[0].write_text(text.replace(question, "Is this a brand new question?", 1))
    live.edited(claims[0])
    claims[0].write_text(text)  # and back: the follow-ups asking it link to it again
    live.edited(claims[0])

    # A new date moves the claim in every list.
    text = claims[7].read_text()
    claims[7].write_text(text.replace("checked_on: 20", "checked_on: 19", 1))
    assert "checked_on: 19" in claims[7].read_text()
    live.edited(claims[7])

    # Topics changed, a claim deleted and one added in one go.
    text = claims[1].read_text()
    claims[1].write_text(text.replace("topics: [", "topics: [Brand new topic, ", 1))
    claims[6].unlink()
    added = root / "claims" / "a-new-claim.yaml"
    added.write_text(claims[2].read_text())
    written = live.edited(claims[1], claims[6], added)
    assert "topics/brand-new-topic/index.html" in written
    assert f"claims/{claims[6].stem}/index.html" in written
    assert not (live.site.out / "claims" / claims[6].stem).exists()
    assert "claims/a-new-claim/index.json" in written

    # A claim that turns invalid keeps the last good site; fixed, it is shown again.
    claims[4].write_text(claims[4].read_text().replace("checked_on:", "checked_onn:"))
    broken = reload_claims(live.claims, [claims[4]])
    assert broken is not None and broken == Claims.of(gather(root).without_locations())
    assert any(p.field == "checked_onn" for p in broken.problems)
    live.claims = broken
    claims[4].write_text(claims[4].read_text().replace("checked_onn:", "checked_on:"))
    live.edited(claims[4])


def test_a_preview_started_over_its_cache_loads_only_the_pages_an_edit_shows_anew(
    live: Live,
) -> None:
    """`serve` started again holds each claim as its facts until its page is needed (at
    10,000 claims, loading every page was a quarter of its start); an edit loads no page
    but its own."""
    again = Live(live.root, live.scratch / "again")

    def loaded() -> set[str]:
        return {rel for rel, page in again.claims.pages.items() if type(page) is not LazyPage}

    assert len(again.claims.pages) == 12
    assert loaded() == set()
    claim = sorted((live.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    assert f"claims/{claim.stem}/index.html" in again.applied(claim)
    assert loaded() == {f"claims/{claim.name}"}
    again.checked()


def test_build_after_serve_renders_no_claim_again(live: Live, rendered: list[str]) -> None:
    """`serve`'s claim files are `build`'s (the reload script is added as a page is served),
    and one cache of them serves both."""
    rendered.clear()
    plan = plan_site(gather(live.root).without_locations())  # as `claimpress build` plans
    assert plan.pages and "claim.html" not in rendered


def test_changes_beyond_claims_need_a_full_gather(live: Live) -> None:
    root = live.root
    project = live.claims
    assert reload_claims(project, [root / "site.yaml"]) is None
    assert reload_claims(project, [root / "figures" / "shared.yaml"]) is None
    assert reload_claims(project, [root / "claims" / "notes.txt"]) == project
    duplicate = sorted((root / "claims").glob("*.yaml"))[0].with_suffix(".yml")
    duplicate.write_text(sorted((root / "claims").glob("*.yaml"))[0].read_text())
    assert reload_claims(project, [duplicate]) is None  # two files, one slug


def test_listings_after_an_edit_render_again_only_its_claims_entries(
    live: Live, rendered: list[str]
) -> None:
    claims = sorted((live.root / "claims").iterdir())
    rendered.clear()  # the first listings since the full build reuse its fragments
    claims[5].write_text(claims[5].read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, [claims[5]])
    assert reloaded is not None
    live.site.update(reloaded)
    live.site.idle.wait()
    page = next(p for p in live.site.pages if p.slug == claims[5].stem)
    assert page.claim.topics and page.sources
    assert Counter(t for t in rendered if t.startswith("_")) == {
        "_claim_item.html": 2,  # on the front page, and on its topics' pages
        "_source_entry.html": len(page.sources),
        **({"_feed_entry.xml": 1} if page.claim.status == "published" else {}),
    }
    assert b"New." in (live.site.out / "index.html").read_bytes()
    live.claims = reloaded
    live.edited()  # and all of it as a full build gives it


def test_a_full_build_is_not_followed_by_its_listings_again(
    live: Live, rendered: list[str]
) -> None:
    rendered.clear()
    site = LiveSite(live.scratch / "again" / "site", lambda _: None)
    site.start()
    site.full(gather(live.root))  # its fragments come from the cache of the first one
    site.idle.wait()  # then the search index catches up in the background
    assert rendered.count("feed.xml") == 1  # the listings, once
    assert "index.html" not in rendered  # its pages kept whole, as their entries
    assert not [t for t in rendered if t.startswith("_")]


def test_background_listings_wait_while_an_edit_is_applied(live: Live) -> None:
    """The watching thread applies an edit ahead of the listings of the one before."""
    claim = sorted((live.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, [claim])
    assert reloaded is not None
    front = (live.site.out / "index.html").read_bytes()
    with live.site.first():
        live.site.update(reloaded)  # the claim's own page now; its listings wait
        assert not live.site.idle.wait(1)
        assert (live.site.out / "index.html").read_bytes() == front
    assert live.site.idle.wait(60)
    assert b"New." in (live.site.out / "index.html").read_bytes()
    live.claims = reloaded
    live.edited()


def test_the_search_index_is_updated_at_a_lower_priority_than_edits(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    indexing = live.site._indexing

    def seen(process: subprocess.Popen[str]) -> None:
        commands.append(list(process.args))  # type: ignore[arg-type]
        indexing(process)

    monkeypatch.setattr(live.site, "_indexing", seen)
    claim = sorted((live.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    live.edited(claim)
    assert commands and all(command[:3] == ["nice", "-n", "10"] for command in commands)


def test_an_edit_leaves_the_manifest_to_its_listings(live: Live) -> None:
    """The manifest (28,000 lines at 10,000 claims) is not written while an edit must show:
    it is deleted, so that no full build trusts it, and written again with the listings."""
    claim = sorted((live.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, [claim])
    assert reloaded is not None
    assert (live.site.out / MANIFEST).is_file()
    with live.site.first():
        live.site.update(reloaded)
        assert not (live.site.out / MANIFEST).exists()
    assert live.site.idle.wait(60)
    assert (live.site.out / MANIFEST).is_file()
    live.claims = reloaded
    live.edited()  # the manifest too, as a full build writes it


def _first_preview(live: Live, name: str, lender: Path) -> LiveSite:
    """A preview with no site of its own kept yet (the first `serve`), lent `lender`."""
    site = LiveSite(live.scratch / name / "site", lambda _: None, lender=lender)
    site.start()
    site.full(gather(live.root).without_locations())
    assert site.idle.wait(60)
    assert tree(site.out) == tree(live.site.out)  # what a preview made alone has
    return site


def _linked(site: LiveSite, lender: Path) -> set[str]:
    """The files of the preview that are the lender's, hard-linked."""
    return {
        rel
        for rel in tree(site.out)
        if (lender / rel).is_file() and (lender / rel).samefile(site.out / rel)
    }


def test_the_first_preview_links_the_files_a_build_made_alike_and_never_changes_them(
    live: Live,
) -> None:
    built = live.root / "build"
    build(gather(live.root), built)
    site = _first_preview(live, "first", built)
    claim_files = {rel for rel in tree(built) if rel.startswith("claims/")}
    assert len(claim_files) > 20 and claim_files <= _linked(site, built)

    # An edit replaces the preview's files: build/'s stay as they were.
    before = tree(built)
    claim = next(
        c for c in sorted((live.root / "claims").iterdir()) if (built / "claims" / c.stem).is_dir()
    )
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(Claims.of(gather(live.root).without_locations()), [claim])
    assert reloaded is not None
    site.update(reloaded)
    assert site.idle.wait(60)
    page = f"claims/{claim.stem}/index.html"
    assert b"New." in (site.out / page).read_bytes()
    assert tree(built) == before and b"New." not in before[page]


def test_a_preview_links_nothing_from_a_build_being_written_or_locked_or_changed_by_hand(
    live: Live,
) -> None:
    built = live.root / "build"
    build(gather(live.root), built)
    with site_module._locked(built):  # a build writing there
        assert _linked(_first_preview(live, "while-built", built), built) == set()
    lock = live.root / ".build.lock"  # one planted as a symlink: never followed, no error
    lock.unlink()
    lock.symlink_to(live.scratch / "created-by-serve")
    assert _linked(_first_preview(live, "lock-planted", built), built) == set()
    assert not (live.scratch / "created-by-serve").exists()
    lock.unlink()
    page = built / "claims" / sorted((live.root / "claims").iterdir())[3].stem / "index.html"
    page.write_bytes(page.read_bytes().replace(b"<title>", b"<TITLE>", 1))  # same size
    linked = _linked(_first_preview(live, "after-hand-edit", built), built)
    assert len(linked) > 20 and str(page.relative_to(built)) not in linked


def test_a_preview_stopped_before_an_edits_listings_leaves_its_files_to_reuse(
    live: Live,
) -> None:
    """The manifest an edit deleted is written when the preview stops, if its listings
    have not written it yet: without one, the next `serve` wrote every file again."""
    claims = sorted((live.root / "claims").iterdir())
    claims[3].write_text(claims[3].read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, [claims[3]])
    assert reloaded is not None
    kept = live.site.out / "claims" / claims[4].stem / "index.html"
    inode = kept.stat().st_ino
    with live.site.first():  # its listings wait, then find the preview stopped
        live.site.update(reloaded)
        assert not (live.site.out / MANIFEST).exists()
        live.site.stop()  # and the process ends: its listings would not run
        assert (live.site.out / MANIFEST).is_file()
    assert live.site.idle.wait(60)
    again = LiveSite(live.site.out, lambda _: None)  # the next start
    again.start()
    again.full(gather(live.root).without_locations())
    assert again.idle.wait(60)  # its search index too
    assert kept.stat().st_ino == inode  # hard-linked from the site before, not written
    live.claims = reloaded
    live.checked()  # and the site is what a build from nothing gives


def test_background_listings_write_a_megabyte_at_a_time_giving_way_to_edits(
    live: Live, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # three megabytes and a bit
    path = tmp_path / "big.json"
    with live.site.first():
        writer = threading.Thread(target=live.site._write_slowly, args=(path, data))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and path.read_bytes() == b""
    writer.join(60)
    assert path.read_bytes() == data


def test_listing_loops_outside_templates_give_way_every_256_items() -> None:
    renderer = Renderer.__new__(Renderer)
    renderer.pause = None
    assert list(renderer.paced(range(600))) == list(range(600))
    seen: list[int] = []
    items = iter(range(600))
    renderer.pause = lambda: seen.append(next(items, -1))  # where the loop was at each
    assert list(renderer.paced(range(600))) == list(range(600))
    assert seen == [0, 1, 2]  # before items 0, 256 and 512


def test_a_listings_pass_leaves_no_cycle_to_collect_during_an_edit(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass's garbage is collected at its end, not by whichever thread allocates next
    (at 10,000 claims, an edit then took 1.5 s longer); what remains is frozen."""
    made: list[weakref.ref[Renderer]] = []

    class Tracked(Renderer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(weakref.ref(self))

    monkeypatch.setattr(live_module, "Renderer", Tracked)
    claim = sorted((live.root / "claims").iterdir())[3]
    claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, [claim])
    assert reloaded is not None
    live.site.update(reloaded)
    assert live.site.idle.wait(60)
    assert len(made) == 1  # the pass's renderer, a cycle (its environment calls it) ...
    assert made[0]() is None  # ... collected before the rest was frozen


def test_stopping_the_preview_ends_a_search_index_run_under_way(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the background thread indexes: its Pagefind processes are killed, the
    thread ends quietly, and an indexer starting after that is killed at once."""
    started: list[subprocess.Popen[str]] = []
    indexing = live.site._indexing

    def seen(process: subprocess.Popen[str]) -> None:
        started.append(process)
        indexing(process)
        if len(started) == 1:
            live.site.stop()  # the preview closes while this one runs
            assert process.poll() is not None

    monkeypatch.setattr(live.site, "_indexing", seen)
    claims = sorted((live.root / "claims").iterdir())
    for claim in claims[0], claims[6]:  # in two shards: two indexers
        claim.write_text(claim.read_text().replace("summary: >-\n", "summary: >-\n  New.\n"))
    reloaded = reload_claims(live.claims, claims[:7:6])
    assert reloaded is not None
    live.site.update(reloaded)
    deadline = time.monotonic() + 60
    while not started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started
    for process in started:
        assert process.wait(timeout=60) == -signal.SIGKILL
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # nothing it started is left either
    assert not live.site.idle.wait(1)  # the thread ended without marking itself idle
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_closed(p) for p in started):
        time.sleep(0.05)
    assert len(started) == 2 and all(_closed(p) for p in started)  # no pipe left open


def _closed(process: subprocess.Popen[str]) -> bool:
    return all(pipe is None or pipe.closed for pipe in (process.stdout, process.stderr))


def test_the_watcher_stops_for_a_signal_another_thread_received(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM can be delivered to any thread (watchfiles' among them): the
    watching loop still hears it within a moment. It waited for a change before."""

    class Stopped(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGUSR1, stop)
    watcher = _Watcher(tmp_path, lambda change, path: True)
    signalled = threading.Timer(
        0.2, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    )  # delivered to the timer's thread
    woken = threading.Timer(10, watcher.found.put, [{(watchfiles.Change.added, "x")}])
    try:
        signalled.start()
        woken.start()  # (a loop that waits for a change for good would wake only then)
        started = time.monotonic()
        with pytest.raises(Stopped):
            next(iter(watcher))
        assert time.monotonic() - started < 5
    finally:
        woken.cancel()
        watcher.close()
        signal.signal(signal.SIGUSR1, previous)


def test_a_dropped_connection_is_not_reported_but_other_errors_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A browser closing a connection mid-response (a reload) is no error for the terminal."""
    server = _Server.__new__(_Server)  # handle_error uses none of a server's state
    for error in (ConnectionResetError(104, "reset"), BrokenPipeError(32, "broken pipe")):
        try:
            raise error
        except ConnectionError:
            server.handle_error(None, ("127.0.0.1", 50000))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a real bug")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 50000))
    assert "ValueError: a real bug" in capsys.readouterr().err


def test_serve_names_the_files_of_an_edit_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve -C site` from the parent: the problems of an edit, read again alone, name the
    claim file from there, as `check` does."""
    root = tmp_path / "site"
    _generator().generate(root, 12)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "3")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    preview = Preview(Path("site").absolute(), tmp_path / "out")
    preview.site.start()
    try:
        preview.rebuild()
        claim = sorted((root / "claims").iterdir())[3]
        text = claim.read_text()
        claim.write_text(re.sub(r"\n    archive_url: .*", "", text, count=1))
        capsys.readouterr()
        preview.rebuild({(watchfiles.Change.modified, str(claim))})
        err = capsys.readouterr().err.splitlines()
        assert err and all(line.startswith(f"site/claims/{claim.name}:") for line in err)
        assert any(line.endswith("[no-archive]") for line in err)
        claim.write_text(text.replace("checked_on:", "checked_onn:"))
        preview.rebuild({(watchfiles.Change.modified, str(claim))})
        assert f"\nsite/claims/{claim.name}:" in capsys.readouterr().err
        assert preview.error is not None
        assert f"site/claims/{claim.name}:" in preview.error
        assert "checked_onn: unknown field `checked_onn`" in preview.error
    finally:
        preview.site.stop()
