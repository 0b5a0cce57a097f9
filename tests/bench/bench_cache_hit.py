"""A cache hit's integrity check, each figure against a baseline measured in the same run.

    python tests/bench/bench_cache_hit.py [RUNS] [MIB]

One entry of MIB (default 1024) MiB in 1,000 files, committed with `Cache.commit`:
999 files share half the bytes, one large file holds the other half.

- a hit with every file unchanged (`Cache.get`: one ``stat`` per file, nothing
  re-hashed), per 1,000 files (goal ≤ 5 ms), against a bare ``os.lstat`` of every
  file (the floor of any check that looks at each file);
- a hit after the large file was touched (new mtime, same bytes: it is re-hashed
  and its mark updated), against raw multithreaded blake3 (``update_mmap``) of
  that file (goal ≥ 0.85× its speed);
- the first hit on an entry without marks (an index from before them): a full
  re-hash, against raw blake3 of every file.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from blake3 import blake3
from clirun import compile_bytecode

from blut.jobs.cache import Cache
from blut.jobs.keys import KeyParts

FILES = 1000


def fill(root: Path, mib: int) -> Path:
    """The staging dir of the entry; returns its large file."""
    small = (mib << 19) // (FILES - 1)
    chunk = os.urandom(1 << 20)
    for i in range(FILES - 1):
        folder = root / f"shard-{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i:04d}.bin").write_bytes(chunk[: small // 2] + os.urandom(small // 2))
    large = root / "weights.bin"
    with large.open("wb") as f:
        for _ in range(mib // 2):
            f.write(chunk)
    return large


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def timed(
    fn: Callable[[], object], runs: int, before: Callable[[], object] = lambda: None
) -> list[float]:
    out = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    print(compile_bytecode())
    with tempfile.TemporaryDirectory(prefix="blut-bench-") as tmp:
        cache = Cache(Path(tmp) / "home")
        staging = Path(tmp) / "staging"
        fill(staging, mib)
        parts = KeyParts("bench", ("bench",), 1, {}, {"mib": mib})
        entry = cache.commit(parts, staging, job="bench", stage="bench")
        obj = cache.object_path(entry.hash)
        files = [Path(d) / n for d, _, names in os.walk(obj) for n in names]
        large = obj / "weights.bin"
        assert len(files) == FILES and cache.get(entry.key) is not None

        def hit() -> None:
            assert cache.get(entry.key) is not None

        def lstat_all() -> None:
            for path in files:
                os.lstat(path)

        lstat_all()
        hits, floor = [], []
        for _ in range(runs):  # interleaved, so a change of load hits both alike
            hits += timed(hit, 1)
            floor += timed(lstat_all, 1)
        h, f = ms(hits) * 1000 / FILES, ms(floor) * 1000 / FILES
        print(
            f"hit, {FILES} files unchanged: {h:.2f} ms per 1,000 files (goal ≤ 5) "
            f"vs os.lstat of each {f:.2f} ms → ratio {h / f:.2f}"
        )

        stamp = [large.stat().st_mtime_ns]

        def touch() -> None:
            stamp[0] += 1_000_000_000
            os.utime(large, ns=(stamp[0], stamp[0]))

        def raw_large() -> None:
            blake3(max_threads=blake3.AUTO).update_mmap(large)

        runs_large = max(runs // 4, 3)
        touched, raw = [], []
        for _ in range(runs_large):
            touched += timed(hit, 1, before=touch)
            raw += timed(raw_large, 1)
        t, r = min(touched), min(raw)
        size = large.stat().st_size >> 20
        print(
            f"hit, one touched file of {size} MiB re-hashed: {t * 1000:.0f} ms vs raw blake3 "
            f"{r * 1000:.0f} ms → speed ratio {r / t:.2f} (goal ≥ 0.85)"
        )

        def unmarked_hit() -> None:
            cache._db.execute("DELETE FROM object_marks")
            hit()

        def raw_all() -> None:
            for path in files:
                blake3(max_threads=blake3.AUTO).update_mmap(path)

        full, raw_full = [], []
        for _ in range(3):
            full += timed(unmarked_hit, 1)
            raw_full += timed(raw_all, 1)
        u, a = min(full), min(raw_full)
        print(
            f"first hit without marks (older index), {mib} MiB re-hashed: {u * 1000:.0f} ms "
            f"vs raw blake3 {a * 1000:.0f} ms → speed ratio {a / u:.2f}"
        )
        cache.close()


if __name__ == "__main__":
    main()
