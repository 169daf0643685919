"""Forked workers: results in order, and interrupts left to the parent."""

from __future__ import annotations

import signal
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
