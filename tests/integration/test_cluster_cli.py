"""`--launcher ray` options refused before any job exists (no cluster needed for that)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import blut


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("recipe", "run", "smoke", "--launcher", "ray"), "needs the cluster's address"),
        (
            ("recipe", "run", "smoke", "--ray-address", "h:1", "--ray-resource", "nope=x"),
            "no such stage",
        ),
        (
            ("run", "--launcher", "local", "--ray-address", "h:1", "--", "true"),
            "need --launcher ray",
        ),
    ],
)
def test_bad_cluster_options_are_one_line_and_exit_2(
    blut_home: Path, args: tuple[str, ...], says: str
) -> None:
    result = blut(*args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())
