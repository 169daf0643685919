"""Forked workers: results in order, and interrupts left to the parent."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from claimpress import parallel


def _handlers(item: int) -> tuple[int, Any, Any]:
    return item, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


def test_workers_leave_ctrl_c_to_the_parent_and_die_on_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As under `serve`, whose SIGTERM handler raises KeyboardInterrupt: a worker must not
    # inherit it (each would print a traceback), nor stop at Ctrl-C (the parent stops them).
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    monkeypatch.setattr(parallel, "MIN_ITEMS", 4)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        results = parallel.fork_map(_handlers, list(range(8)))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert results == [(i, signal.SIG_IGN, signal.SIG_DFL) for i in range(8)]


def _found_prctl_looked_up(item: int) -> bool:
    return parallel._prctl.cache_info().hits > 0  # (a miss: this process looked it up)


def test_workers_tie_themselves_to_the_parent_with_what_it_looked_up_before_forking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loading a library in a child forked from a process with threads (`serve`) could wait
    # for ever on a lock another thread held when it forked.
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    monkeypatch.setattr(parallel, "MIN_ITEMS", 4)
    parallel._prctl.cache_clear()
    assert parallel.fork_map(_found_prctl_looked_up, list(range(8))) == [True] * 8
    parallel._prctl.cache_clear()
    with parallel.forked(lambda: _found_prctl_looked_up(0)) as result:
        assert result() is True


def _fails_at_five(item: int) -> int:
    if item == 5:
        raise ValueError(f"item {item}")
    return item


def test_a_failure_in_a_worker_is_raised_again_from_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A template error's message names the template's file and line from its traceback,
    # which a worker's error, pickled back, no longer has.
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    monkeypatch.setattr(parallel, "MIN_ITEMS", 4)
    with pytest.raises(ValueError, match="item 5") as raised:
        parallel.fork_map(_fails_at_five, list(range(8)))
    assert raised.value.__cause__ is None  # not the worker's copy (a RemoteTraceback cause)
    assert raised.traceback[-1].name == "_fails_at_five"
    assert parallel.fork_map(_fails_at_five, list(range(5))) == list(range(5))


def test_work_forked_beside_this_process_comes_back_at_the_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAIMPRESS_JOBS", "2")
    here = os.getpid()
    with parallel.forked(lambda: (os.getpid(), *_handlers(1)[1:])) as result:
        pid, sigint, sigterm = result()
    assert pid != here and (sigint, sigterm) == (signal.SIG_IGN, signal.SIG_DFL)

    # its failure is raised here, from this process, as fork_map's are
    with (
        parallel.forked(lambda: _fails_at_five(5)) as made,
        pytest.raises(ValueError, match="item 5") as raised,
    ):
        made()
    assert raised.traceback[-1].name == "_fails_at_five"

    # left without the call: stopped, not left running
    started = tmp_path / "started"

    def forever() -> None:
        started.write_text(str(os.getpid()))
        time.sleep(60)

    with parallel.forked(forever):
        while not started.exists() or not started.read_text():
            time.sleep(0.01)
    with pytest.raises(ProcessLookupError):  # killed, and reaped
        os.kill(int(started.read_text()), 0)

    # on one core: run at the call, in this process
    monkeypatch.setenv("CLAIMPRESS_JOBS", "1")
    with parallel.forked(os.getpid) as result:
        assert result() == here
