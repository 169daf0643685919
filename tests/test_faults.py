"""Faults while writing the site: a full disk, a read-only folder, a build killed at any
moment, two builds at once. The previous build/ stays byte-identical (or becomes the new
build whole), and the temporary folders of a failed build are gone after the next run."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import io
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from claimpress import search, site
from claimpress.problems import OutputError
from claimpress.project import gather
from conftest import CLAIM_YAML, SITE_YAML, run_cli, tree


def leftovers(parent: Path, name: str = "build") -> list[str]:
    """What a build leaves beside its output folder besides the folder and its lock."""
    return sorted(p.name for p in parent.iterdir()
                  if p.name.startswith(f".{name}.") and p.name != f".{name}.lock")


@contextmanager
def failing_writes(fail_at: int, code: int) -> Iterator[list[int]]:
    """Make the `fail_at`-th file opened for writing (or folder or hard link made) fail
    with `code`, in this process: every way Python writes a file goes through one of these."""
    count = [0]
    real_open, real_os_open = builtins.open, os.open
    real_mkdir, real_link = os.mkdir, os.link

    def tick(what: object) -> None:
        count[0] += 1
        if count[0] == fail_at:
            raise OSError(code, os.strerror(code), str(what))

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wxa+"):
            tick(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            tick(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if not os.path.lexists(path):  # an existing folder fails with EEXIST first
            tick(path)
        real_mkdir(path, *args, **kwargs)

    def fake_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        tick(dst)
        real_link(src, dst, *args, **kwargs)

    patches: list[tuple[Any, str, Callable[..., Any]]] = [
        (builtins, "open", fake_open), (io, "open", fake_open),
        (os, "open", fake_os_open), (os, "mkdir", fake_mkdir), (os, "link", fake_link)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, fake in patches:
            setattr(obj, name, fake)
        yield count
    finally:
        for obj, name, real in saved:
            setattr(obj, name, real)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_a_write_failing_anywhere_leaves_the_previous_build(
        code: int, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build staged in a fresh folder (the spare kept in the cache is tested below)."""
    monkeypatch.setattr(site, "spare_folder", lambda root, out: None)
    pristine = tmp_path / "pristine"
    site.build(gather(project), pristine)
    before = tree(pristine)
    claim = project / "claims" / "is-the-sky-blue.yaml"
    claim.write_text(claim.read_text().replace("Is the sky blue?", "Is the sky green?"))
    edited = gather(project)
    for n in (1, 2):  # count what the same build writes, its cache entries saved the first time
        shutil.copytree(pristine, tmp_path / f"count-{n}", symlinks=True)
        with failing_writes(0, code) as count:
            site.build(edited, tmp_path / f"count-{n}")
    after = tree(tmp_path / "count-2")
    total = count[0]
    assert total > 10
    failed = 0
    # Every third write and the last ones: which write is which moves a little from build
    # to build (the search index's pages are written by a process of its own, ahead, or by
    # the build, as they race), so a handful of fixed places could all land on writes whose
    # failure a build gets past.
    for fail_at in sorted({*range(1, total, 3), total - 2, total - 1, total}):
        out = tmp_path / f"out-{fail_at}"
        shutil.copytree(pristine, out, symlinks=True)
        try:
            with failing_writes(fail_at, code):
                site.build(edited, out)
        except (OSError, OutputError) as exc:  # OutputError: the search index's
            failed += 1
            assert os.strerror(code) in str(exc)
            assert tree(out) == before, f"write {fail_at} of {total} failed"
        else:  # a failed hard link falls back to writing the file: the build succeeds
            assert tree(out) == after, f"write {fail_at} of {total} failed"
        assert leftovers(tmp_path, out.name) == [], f"write {fail_at} of {total} failed"
    assert failed >= 5


def test_a_write_failing_while_staging_in_the_spare_leaves_the_previous_build(
        project: Path, tmp_path: Path) -> None:
    """A build writes over the build before the previous one, kept in the cache: a failure
    at any write leaves the previous build whole, and the next build is right."""
    claim = project / "claims" / "is-the-sky-blue.yaml"
    texts = [claim.read_text().replace("blue?", f"{c}?") for c in ("blue", "green", "red")]
    claim.write_text(texts[2])
    site.build(gather(project), tmp_path / "expected")
    wanted = tree(tmp_path / "expected")
    out = tmp_path / "out"
    spare = site.spare_folder(project, out)
    assert spare is not None
    failed = 0
    for fail_at in range(1, 1000):
        shutil.rmtree(out, ignore_errors=True)
        folders = []
        for text in texts[:2]:
            claim.write_text(text)
            site.build(gather(project), out)
            folders.append((out / "claims").stat().st_ino)
        before, earlier = tree(out), tree(spare)
        assert b"Is the sky blue?" in earlier["index.html"]  # the first build, kept
        claim.write_text(texts[2])
        edited = gather(project)
        try:
            with failing_writes(fail_at, errno.ENOSPC) as count:
                site.build(edited, out)
        except (OSError, OutputError) as exc:
            failed += 1
            assert os.strerror(errno.ENOSPC) in str(exc)
            assert tree(out) == before, f"write {fail_at} failed"
            site.build(gather(project), out)
        else:
            assert tree(spare) == before  # the previous build, kept for the next one
            assert (out / "claims").stat().st_ino == folders[0]  # written over the first
        assert tree(out) == wanted, f"write {fail_at} failed"
        assert leftovers(tmp_path, out.name) == [], f"write {fail_at} failed"
        if count[0] < fail_at:  # nothing failed: every write has been made to fail
            break
    assert failed >= 5


def test_a_full_disk_is_reported_without_a_traceback(project: Path) -> None:
    """The same failure seen from the command line: one line naming the file, exit 1."""
    script = (
        "import errno, os, runpy, sys\n"
        "real = os.open\n"
        "def fake(path, flags, *a, **k):\n"
        "    if str(path).endswith('index.json'):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))\n"
        "    return real(path, flags, *a, **k)\n"
        "import builtins, io\n"
        "real_open = builtins.open\n"
        "def fake_open(file, mode='r', *a, **k):\n"
        "    if str(file).endswith('index.json') and any(c in mode for c in 'wxa+'):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))\n"
        "    return real_open(file, mode, *a, **k)\n"
        "os.open = fake; builtins.open = fake_open; io.open = fake_open\n"
        "sys.argv = ['claimpress', 'build']\n"
        "runpy.run_module('claimpress', run_name='__main__')\n"
    )
    assert run_cli("build", cwd=project).code == 0
    before = tree(project / "build")
    claim = project / "claims" / "is-the-sky-blue.yaml"  # so that index.json is rewritten
    claim.write_text(claim.read_text().replace("Is the sky blue?", "Is the sky green?"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "No space left on device" in proc.stderr
    assert tree(project / "build") == before
    assert leftovers(project) == []


def namespace_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (mapped to root there), where it may
    mount a read-only folder or a tiny tmpfs that the rest of the machine never sees; skip
    where the kernel or the container forbids that (the in-process faults above still run)."""
    probe = ["unshare", "--map-root-user", "--mount", "true"]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("unshare --map-root-user --mount is not allowed here")
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("CLAIMPRESS_DEBUG", None)
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_read_only_output_folder_leaves_the_previous_build(project: Path) -> None:
    """A read-only mount (chmod would not stop root, who runs the tests in CI)."""
    assert run_cli("build", "--out", "out/build", cwd=project).code == 0
    before = tree(project / "out" / "build")
    script = ('mount --bind -o ro out out && '
              '"$PYTHON" -m claimpress build --out out/build; echo "exit=$?"')
    result = namespace_shell(script, project)
    assert result.stdout.endswith("exit=1\n"), result.stderr
    assert result.stderr.startswith("error: ") and "Read-only file system" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(project / "out" / "build") == before
    assert leftovers(project / "out") == []


def test_a_really_full_disk_leaves_the_previous_build(project: Path) -> None:
    """A tiny tmpfs: the first build fits, then the disk is filled and the next one fails."""
    script = (
        "mount -t tmpfs -o size=2m tmpfs out && "
        '"$PYTHON" -m claimpress build --out out/build >/dev/null && '
        "cp -a out/build before && "
        "sed -i 's/Is the sky blue?/Is the sky green?/' claims/is-the-sky-blue.yaml && "
        "(dd if=/dev/zero of=out/filler bs=4k 2>/dev/null; "
        ' "$PYTHON" -m claimpress build --out out/build; echo "exit=$?") ; '
        "rm out/filler; cp -a out/build after-build; ls -A out > after-ls"
    )
    (project / "out").mkdir()
    result = namespace_shell(script, project)
    assert result.stdout.endswith("exit=1\n"), result.stdout + result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert tree(project / "after-build") == tree(project / "before")
    assert (project / "after-ls").read_text() == ".build.lock\nbuild\n"  # no temporary folder


def big_project(root: Path, claims: int) -> Path:
    """A project with many claims, so that a build takes long enough to be killed inside."""
    (root / "claims").mkdir(parents=True)
    (root / "site.yaml").write_text(SITE_YAML)
    for i in range(claims):
        text = CLAIM_YAML.replace("Is the sky blue?", f"Is the sky blue on day {i}?")
        (root / "claims" / f"sky-{i:04d}.yaml").write_text(text)
    return root


def test_a_build_killed_at_any_moment_leaves_a_whole_site(tmp_path: Path) -> None:
    root = big_project(tmp_path / "site", 300)
    assert run_cli("build", cwd=root).code == 0
    old = tree(root / "build")
    for path in (root / "claims").iterdir():
        path.write_text(path.read_text().replace("Rayleigh", "Raleigh"))
    assert run_cli("build", "--out", str(tmp_path / "new"), cwd=root).code == 0
    new = tree(tmp_path / "new")
    assert new != old
    rng = random.Random(7)  # the kill points differ from run to run only by machine speed
    env = {**os.environ}
    env.pop("CLAIMPRESS_DEBUG", None)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "claimpress", "build"], cwd=root,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=rng.uniform(0.1, 2.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the build, its indexers dying with it
            proc.wait()
        now = tree(root / "build")
        assert now in (old, new), "a killed build left a mixed site"
    assert run_cli("build", cwd=root).code == 0
    assert tree(root / "build") == new
    assert leftovers(root) == []


def descendants(pid: int) -> list[int]:
    """The processes under `pid`, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (entry / "stat").read_text()  # pid (name) state ppid ...
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (or is stopped): not gone, and not a zombie left unreaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tied(pid: int, kind: str) -> bool:
    """Whether `pid` is a forked worker of a build, or one of its search indexers (the
    process indexing ahead, or Pagefind), that has tied itself to the build: a worker
    ignores Ctrl-C once it has (`parallel._worker`), a program started through `setpriv`
    has once it no longer is `setpriv`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_text(errors="replace").split("\0")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if kind == "workers":
        ignored = re.search(r"^SigIgn:\s*(\w+)", status, re.MULTILINE)
        return argv[1:3] == ["-m", "claimpress"] and ignored is not None and bool(
            int(ignored[1], 16) & 1 << (signal.SIGINT - 1))
    return "pagefind" in argv[0] or "import ahead" in " ".join(argv[1:3])


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux only)")
@pytest.mark.parametrize("kind", ["workers", "indexers"])
def test_a_build_killed_outright_takes_every_process_it_started_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Killed alone (the OOM killer, `kill -9`), not with its process group: its forked
    workers, the process indexing search shards ahead and every Pagefind are killed too.
    Those of `kind` running then are stopped first, so that none can end on its own."""
    if kind == "indexers" and not search._tied():
        pytest.skip("no util-linux setpriv here to tie indexers to the build")
    root = big_project(tmp_path / "site", 300)
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    monkeypatch.setenv("CLAIMPRESS_SEARCH_SHARD_PAGES", "10")
    # Ctrl-C not ignored by the build (as it is in a job a shell started in the background),
    # so that only its workers ignore it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "claimpress", "build"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    stopped: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not stopped:
            assert proc.poll() is None and time.monotonic() < deadline, f"no {kind} seen"
            for pid in descendants(proc.pid):
                if tied(pid, kind):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(map(alive, stopped)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in stopped if alive(pid)] == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("setpriv", ["", "exit 1", 'exec "$@"'],
                         ids=["none", "one without --pdeathsig", "one that runs it"])
def test_indexers_are_tied_to_the_build_only_by_a_setpriv_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setpriv: str
) -> None:
    """BusyBox's `setpriv` knows no `--pdeathsig`: Pagefind is then started as it is."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no setpriv at all
    if setpriv:  # this one, then the system's commands
        (tmp_path / "setpriv").write_text(f"#!/bin/sh\nshift 2\n{setpriv}\n")
        (tmp_path / "setpriv").chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.defpath}")
    search._tied.cache_clear()
    try:
        tied = search._tied()
    finally:
        search._tied.cache_clear()
    assert tied == (["setpriv", "--pdeathsig", "KILL"] if "exec" in setpriv else [])


def test_two_builds_at_once_do_not_corrupt_each_other(tmp_path: Path) -> None:
    root = big_project(tmp_path / "site", 60)
    assert run_cli("build", "--out", str(tmp_path / "cold"), cwd=root).code == 0
    procs = [subprocess.Popen([sys.executable, "-m", "claimpress", "build"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    assert tree(root / "build") == tree(tmp_path / "cold")
    assert leftovers(root) == []


def test_the_next_build_removes_what_a_killed_build_left(project: Path) -> None:
    """Leftovers of a build killed between making its folder and marking it (empty), or
    while removing the previous site (marker kept to the end), go; anything else stays."""
    assert run_cli("build", cwd=project).code == 0
    (project / ".build.tmp-unmarked").mkdir()
    half = project / ".build.tmp-halfway"
    (half / "claims" / "x").mkdir(parents=True)
    (half / site.MARKER).write_text("")
    mine = project / ".build.tmp-mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert run_cli("build", cwd=project).code == 0
    assert leftovers(project) == [".build.tmp-mine"]
    assert (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(("command", "done"), [("build", "built 1 claim(s)"),
                                               ("review", "wrote the review of")])
def test_a_run_waits_for_another_writing_the_same_folder(
    project: Path, command: str, done: str
) -> None:
    """Builds (and review bundles) to one folder are written one after the other: the
    second says it waits, and makes nothing (not even its scratch folder) meanwhile."""
    assert run_cli(command, cwd=project).code == 0
    with open(project / f".{command}.lock", "r+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a run writing the folder would hold it
        proc = subprocess.Popen([sys.executable, "-m", "claimpress", command], cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            ready, _, _ = select.select([proc.stderr], [], [], 120)
            assert ready, "it neither waited nor said so"
            assert proc.stderr.readline() == (
                f"waiting for another claimpress writing {command}/ to finish\n"
            )
            assert proc.poll() is None
            lock_only = [f".{command}.lock"]
            assert sorted(p.name for p in project.glob(f".{command}.*")) == lock_only
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert done in out


def test_a_builds_forked_workers_do_not_hold_its_lock(tmp_path: Path) -> None:
    """A build killed alone (its workers still finishing their share) does not keep the
    next build waiting: the lock is the build's, not its workers'."""
    out = tmp_path / "build"
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from claimpress import site\n"
        f"with site._locked(Path({str(out)!r})):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"
        "    os._exit(0)  # gone without unlocking, as if killed; its worker lives on\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        assert proc.wait(timeout=60) == 0
        with open(tmp_path / ".build.lock", "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if held
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
