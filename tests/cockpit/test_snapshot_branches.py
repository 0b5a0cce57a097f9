"""The runs of one snapshot compared at 80×24: `w` on a branch opens the sweep screen on the
job the snapshot was taken from and every job started from it, naming the snapshot and
what each run changed. Homes are real job folders (Parquet parts, args.json, events through
the real writers); job.json's snapshot record is the one `blut.jobs.snapshots.Start` keeps."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.sweep import SweepScreen
from blut.cockpit.sweeps import branches_group
from blut.jobs.store import Job
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.sweephome import SWEEP, losses, sweep_member, with_train
from tests.cockpit.test_sweep import cells, header

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
SNAP = "cd" * 32
PARENT, BRANCH, CONTINUED = "20250615-110000-ccc0", "20250615-120001-ccc1", "20250615-120002-ccc2"


def started_from(job: Job, changed: dict[str, list[float]], parent: str | None = PARENT) -> None:
    """Mark ``job`` as started from :data:`SNAP` (job.json's record, args.json's arg)."""
    spec = json.loads(job.paths.spec.read_text())
    spec["snapshot"] = {
        "id": SNAP, "stage": "train", "epoch": 2, "job": parent, "branch": bool(changed),
        "changed": changed,
    }  # fmt: skip
    job.paths.spec.write_text(json.dumps(spec))
    args: dict[str, Any] = copy.deepcopy(json.loads(job.paths.args.read_text()))
    args["train"]["from_snapshot"] = SNAP
    job.paths.args.write_text(json.dumps(args))


def snapshot_runs(home: Path) -> None:
    """The run a snapshot was taken from (epoch 2 of 3), a branch with a new lr, and a
    continuation."""
    sweep_member(home, PARENT, with_train(lr=0.001), losses(2.0, 0.8), sweep=None)
    branch = sweep_member(home, BRANCH, with_train(lr=0.01), losses(1.3, 0.5), sweep=None)
    started_from(branch, {"lr": [0.001, 0.01]})
    same = sweep_member(home, CONTINUED, with_train(lr=0.001), losses(1.3, 0.8), sweep=None)
    started_from(same, {})


async def test_w_on_a_branch_compares_the_runs_of_its_snapshot(blut_home: Path) -> None:
    snapshot_runs(blut_home)
    app = make_app(blut_home, open_job=BRANCH)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 3 and not app.state.loading)
        screen = app.screen
        assert isinstance(screen, JobScreen)
        line = screen.query_one("#sweep", Static)
        await wait_for(pilot, lambda: "w: compare" in static_text(line, width=80))
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen))
        compare = app.screen
        assert isinstance(compare, SweepScreen) and compare.sweep == branches_group(SNAP)
        await wait_for(pilot, lambda: compare.data is not None and len(compare._keys) == 3)
        title = static_text(compare.query_one("#title", Static), width=80)
        assert f"runs of snapshot {SNAP[:12]} (train, epoch 2) ×3" in title
        assert "varies train.lr" in title
        assert "from_snapshot" not in " ".join(header(compare)) + title  # the same for all
        assert header(compare)[:4] == [" ", "lr ▲", "ORIGIN", "STATE"]
        assert {r["ORIGIN"]: r["lr"] for r in cells(compare)} == {
            "parent": "0.001", "continued": "0.001", "lr 0.001 → 0.01": "0.01",
        }  # fmt: skip
        assert app.compare_group(PARENT) == branches_group(SNAP)  # and from the parent's w


async def test_a_sweep_of_branches_names_its_snapshot(blut_home: Path) -> None:
    for job_id, lr in ((BRANCH, 0.01), (CONTINUED, 0.1)):
        job = sweep_member(blut_home, job_id, with_train(lr=lr), losses(1.3, 0.5))
        started_from(job, {"lr": [0.001, lr]}, parent=None)  # an imported snapshot
    app = make_app(blut_home, open_job=BRANCH)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 2 and not app.state.loading)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen))
        compare = app.screen
        assert isinstance(compare, SweepScreen) and compare.sweep == SWEEP
        await wait_for(pilot, lambda: compare.data is not None and len(compare._keys) == 2)
        title = static_text(compare.query_one("#title", Static), width=80)
        assert f"from snapshot {SNAP[:12]} (train, epoch 2)" in title
        assert sorted(r["ORIGIN"] for r in cells(compare)) == [
            "lr 0.001 → 0.01", "lr 0.001 → 0.1",
        ]  # fmt: skip
