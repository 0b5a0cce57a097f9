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


def test_an_unreachable_cluster_fails_the_stage_and_resume_can_move_the_job_home(
    blut_home: Path,
) -> None:
    import json

    nowhere = "http://127.0.0.1:9"  # discard port: nothing answers
    failed = blut("run", "--launcher", "ray", "--ray-address", nowhere, "--", "echo", "here")
    assert failed.returncode == 1
    assert "could not launch" in failed.stderr and nowhere in failed.stderr, failed.stderr
    [job_dir] = (blut_home / "jobs").iterdir()
    assert json.loads((job_dir / "job.json").read_text())["ray_address"] == nowhere

    moved = blut("plan", "resume", "--launcher", "local", job_dir.name)
    assert moved.returncode == 0, moved.stderr
    spec = json.loads((job_dir / "job.json").read_text())
    assert (spec["ray_address"], spec["ray_resources"]) == (None, {})
    assert blut("log", job_dir.name).stdout.strip() == "here"
