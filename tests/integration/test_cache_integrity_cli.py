"""The cache never serves damaged bytes, nor what was computed from them: the CLI under systemd."""

from __future__ import annotations

import json
from pathlib import Path

from blut.jobs.cache import Cache
from tests.conftest import blut


def make_numbers(home: Path) -> Path:
    cache = Cache(home)
    try:
        [entry] = [e for e in cache.entries() if e.stage == "make"]
        return cache.object_path(entry.hash) / "numbers.json"
    finally:
        cache.close()


def damage(path: Path) -> None:
    """What root (or a stray ``chmod u+w``) can do to a read-only object."""
    numbers = json.loads(path.read_text())
    path.chmod(0o644)
    path.write_text(json.dumps([numbers[0] + 1, *numbers[1:]]))


def ran(result_stderr: str) -> list[str]:
    """The stages that ran, in a fixed order (square and cube run side by side)."""
    return sorted(line.split()[2] for line in result_stderr.splitlines() if " done in " in line)


def test_damage_is_caught_at_the_hit_and_by_verify_and_cascades(blut_home: Path) -> None:
    assert blut("recipe", "run", "smoke").returncode == 0
    damage(make_numbers(blut_home))
    hit = blut("recipe", "run", "smoke", "--set", "cube.sleep=0.1")
    assert hit.returncode == 0, hit.stderr
    assert "was damaged (files differ: numbers.json (changed))" in hit.stderr
    assert "quarantined 1, and 3 computed from them" in hit.stderr
    assert ran(hit.stderr) == ["cube", "make", "square", "total"]
    clean = blut("cache", "verify")
    assert clean.returncode == 0 and "0 bad" in clean.stderr, clean.stderr
    again = blut("recipe", "run", "smoke", "--set", "cube.sleep=0.1")
    assert again.returncode == 0 and again.stderr.count(" cached (") == 4, again.stderr

    damage(make_numbers(blut_home))
    found = blut("cache", "verify")
    assert found.returncode == 1
    assert "1 bad (quarantined 1, and 3 computed from them)" in found.stderr, found.stderr
    assert "computed from corrupt bytes: dropped" in found.stderr
    after = blut("recipe", "run", "smoke")
    assert ran(after.stderr) == ["cube", "make", "square", "total"], after.stderr
    assert blut("cache", "verify").returncode == 0


def test_a_missing_input_path_is_one_line_and_exit_2(blut_home: Path, tmp_path: Path) -> None:
    result = blut("recipe", "run", "quant-train", "--set", f"encode.dataset={tmp_path}/nope.csv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"blut: error: encode.dataset: no such file or directory: {tmp_path}/nope.csv"
    ]
