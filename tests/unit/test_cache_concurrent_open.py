"""Many processes opening a fresh cache index at once: none fails with "database is locked"."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from blut.jobs.cache import Cache

PROCESSES = 12


def _open(home: str, start: Barrier) -> None:
    start.wait()
    Cache(Path(home)).close()


def test_concurrent_first_opens(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        home = tmp_path / f"home-{round_}"
        start = ctx.Barrier(PROCESSES)
        procs = [ctx.Process(target=_open, args=(str(home), start)) for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [p.exitcode for p in procs] == [0] * PROCESSES, f"round {round_}"
