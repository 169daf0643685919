"""Spread per-claim work over the machine's cores with forked workers.

Workers are forked, so they inherit everything already in memory (the project, the
compiled templates); only item indices go to them and only results come back, pickled.
Where fork is unavailable, or the work is small, everything runs in this process.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .problems import env_int

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 200
"""Below this many items, forking costs more than it saves."""

_PR_SET_PDEATHSIG = 1
"""prctl(2)'s option for the signal a process gets when its parent ends."""

_JOB: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def cores() -> int:
    """The cores this process may run on (CLAIMPRESS_JOBS overrides)."""
    found = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, env_int("CLAIMPRESS_JOBS", found or 1))


def _worker(parent: int) -> None:
    """A worker leaves Ctrl-C to the parent, which stops the pool, dies quietly on
    SIGTERM (which `serve` turns into a KeyboardInterrupt for itself), and dies with the
    parent (`parent`, by pid; `_prctl` looked up first)."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux, for `_die_with`: looked up by the parent before it forks, as
    loading a library in a child forked from a process with threads (`serve`) could wait
    for ever on a lock another thread held. Imported only then, not by every command."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None).prctl


def _die_with(parent: int) -> None:
    """Have this process killed when the thread that started it ends, and end it now if
    its parent is no longer `parent` (by pid): a build killed outright (the OOM killer,
    `kill -9`) would otherwise leave its workers running, a pool's waiting for ever."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _run(span: tuple[int, int]) -> list[Any]:
    assert _JOB is not None
    func, items = _JOB
    return _each(func, items[span[0] : span[1]])


def _each(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`func` over `items`, collecting the young generations after each: the garbage cycles
    an item leaves are freed at once, and long-lived results are never traversed again."""
    results = []
    for item in items:
        results.append(func(item))
        gc.collect(1)
    return results


def fork_map(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[func(x) for x in items]`, in forked workers when there are several cores and
    enough items; results come back in order. When a worker fails, its share of the work
    is done again in this process, so that the error raised is the real one, with its
    traceback (a template's file and line), not a copy pickled by the worker."""
    workers = min(cores(), len(items) // (MIN_ITEMS // 2) or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return _each(func, items)
    global _JOB
    _JOB = (func, items)
    try:
        step = -(-len(items) // (workers * 4))
        spans = [(i, min(i + step, len(items))) for i in range(0, len(items), step)]
        parts = []
        _prctl()  # before forking
        with multiprocessing.get_context("fork").Pool(
            workers, initializer=_worker, initargs=(os.getpid(),)
        ) as pool:
            done = pool.imap(_run, spans)
            for start, end in spans:
                try:
                    parts.append(next(done))
                except Exception:
                    _each(func, items[start:end])  # raises it again here, as a rule
                    raise
    finally:
        _JOB = None
    return [result for part in parts for result in part]


@contextmanager
def forked(func: Callable[[], R]) -> Iterator[Callable[[], R]]:
    """Start `func()` in a forked process, to run beside this one's own work until the call
    given is made, which returns its result (pickled back). With one core, or no fork,
    `func` runs at that call instead. When the process fails, `func` runs again at that
    call, so that the error raised is the real one, with its traceback. Leaving the block
    without making the call stops the process."""
    if cores() < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield func
        return
    read, write = os.pipe()
    parent = os.getpid()
    _prctl()  # before forking
    pid = os.fork()
    if pid == 0:  # the forked process: leaves only through `os._exit`
        status = 1
        try:
            os.close(read)
            _worker(parent)
            data = pickle.dumps(func(), protocol=5)
            with open(write, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    running = True

    def result() -> R:
        nonlocal running
        with open(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        running = False
        return pickle.loads(data) if status == 0 else func()

    try:
        yield result
    finally:
        if running:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause automatic cyclic garbage collection: a build allocates millions of small objects
    that live until it ends, and repeated full collections over them cost more than the
    build itself. Reference counting still frees everything acyclic at once, and `fork_map`
    collects the young generations after each item."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
