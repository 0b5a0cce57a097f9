"""Snapshots for real: quant-train jobs in systemd units, snapshotted, moved to a fresh home and
continued bit-identically, or branched with a new lr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.payload.train import KILL_ENV
from blut.status.metrics import read_metrics
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

QUICK = ("train.epochs=10", "train.hidden=8", "train.threads=1", "train.batch_size=512")


def quant_train(home: Path) -> Job:
    recipe = find("quant-train")
    (args,) = recipe.resolve(sets=QUICK)
    job, _warning = submit_recipe(JobStore(home), recipe, args)
    return job


def cli(home: Path, *argv: str) -> str:
    result = blut(*argv, env={"BLUT_HOME": str(home)}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(home: Path, *argv: str) -> str:
    result = blut(*argv, env={"BLUT_HOME": str(home)})
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def model_bytes(job: Job) -> bytes:
    return (job.paths.stage("train").checkpoints / "best.pt").read_bytes()


def last_weights(job: Job) -> bytes:
    folder = job.paths.stage("train").checkpoints
    [last] = sorted(folder.glob("epoch-*.pt"))[-1:]
    return last.read_bytes()


def lrs(job: Job) -> dict[int, float]:
    rows = read_metrics(job.paths.stage("train").metrics).to_pylist()
    return {int(r["epoch"]): float(r["lr"]) for r in rows}


def test_ten_epochs_equal_five_then_snapshot_then_five_on_a_fresh_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = {name: tmp_path / name for name in ("whole", "first", "again", "fresh")}
    monkeypatch.setenv(KILL_ENV, "5")  # the jobs' environment: SIGKILL after epoch 5
    first, again = quant_train(homes["first"]), quant_train(homes["again"])
    monkeypatch.delenv(KILL_ENV)
    whole = quant_train(homes["whole"])
    for job in (first, again, whole):
        wait_for_job(job, timeout=400)
    assert whole.view().state == "succeeded", whole.view()
    assert first.view().stages["train"].state == "failed"

    # The same state gives the same id: twice in one home, and in another home.
    snap = cli(homes["first"], "snapshot", "create", first.id).strip()
    assert len(snap) == 64
    assert cli(homes["first"], "snapshot", "create", first.id, "train", "--epoch", "5").strip() == (
        snap
    )
    assert cli(homes["again"], "snapshot", "create", again.id).strip() == snap
    assert snap[:12] in cli(homes["first"], "snapshot", "list")
    shown = json.loads(cli(homes["first"], "snapshot", "show", snap[:8]))
    assert shown["epoch"] == 5 and shown["stage"] == "train" and shown["recipe"] == "quant-train"
    assert shown["config"]["lr"] == 0.001 and shown["versions"]["blut"]
    assert "checkpoint/epoch-0005.pt" in shown["entries"] and "metrics.jsonl" in shown["entries"]
    assert all(not name.startswith("/") for name in shown["entries"])

    # After success only the last epoch is kept: an older one is named as trimmed.
    stderr = refused(homes["whole"], "snapshot", "create", whole.id, "--epoch", "3")
    assert "no checkpoint of epoch 3" in stderr and "kept epoch-" in stderr

    bundle = tmp_path / "snap.tar"
    cli(homes["first"], "snapshot", "export", snap, str(bundle))
    assert cli(homes["fresh"], "snapshot", "import", str(bundle)).strip() == snap

    cont = cli(homes["fresh"], "recipe", "run", "quant-train", "--from-snapshot", snap[:10], "-d")
    continued = JobStore(homes["fresh"]).get(cont.strip())
    assert wait_for_job(continued, timeout=300).state == "succeeded", continued.view()
    assert last_weights(continued) == last_weights(whole)  # byte-equal
    assert model_bytes(continued) == model_bytes(whole)
    record = json.loads(continued.paths.spec.read_text())["snapshot"]
    # an imported snapshot: no job of this home it was taken from
    assert record == {
        "id": snap, "stage": "train", "epoch": 5, "step": shown["step"], "job": None,
        "branch": False, "changed": {},
    }  # fmt: skip
    assert "train: resumed after epoch 5" in continued.log_path("train").read_text()

    # A branch with a new lr: recorded in job.json and the events, shown by `blut jobs`.
    out = cli(
        homes["fresh"], "recipe", "run", "quant-train", "--from-snapshot", snap, "-s",
        "train.lr=0.01", "-d",
    )  # fmt: skip
    branch = JobStore(homes["fresh"]).get(out.strip())
    assert wait_for_job(branch, timeout=300).state == "succeeded", branch.view()
    record = json.loads(branch.paths.spec.read_text())["snapshot"]
    assert record["branch"] is True and record["changed"] == {"lr": [0.001, 0.01]}
    assert f"branched from snapshot {snap[:12]} (epoch 5): lr 0.001 → 0.01" in (
        branch.status_path.read_text()
    )
    assert "train: branched from snapshot" in branch.log_path("train").read_text()
    assert last_weights(branch) != last_weights(whole)
    branch_lr, whole_lr = lrs(branch), lrs(whole)
    assert [branch_lr[e] for e in range(1, 6)] == [whole_lr[e] for e in range(1, 6)]  # restored
    assert branch_lr[6] == pytest.approx(10 * whole_lr[6])  # the same schedule, 10× the peak
    rows = {r["id"]: r for r in json.loads(cli(homes["fresh"], "jobs", "--format", "json"))}
    assert rows[branch.id]["origin"] == f"branch of {snap[:12]}"
    assert rows[continued.id]["origin"] == f"from {snap[:12]}"

    # A sweep from the snapshot: one job per point, each cached from the runs above.
    ids = cli(
        homes["fresh"], "recipe", "run", "quant-train", "--from-snapshot", snap, "--sweep",
        "train.lr=0.001,0.01", "-d",
    ).split()  # fmt: skip
    members = [JobStore(homes["fresh"]).get(i) for i in ids]
    for member in members:
        assert wait_for_job(member, timeout=120).state == "succeeded"
    records = [json.loads(m.paths.spec.read_text())["snapshot"] for m in members]
    assert [r["branch"] for r in records] == [False, True]
    sweeps = {m.view().sweep for m in members}
    assert len(sweeps) == 1 and None not in sweeps
    assert members[1].view().stages["train"].artifact == branch.view().stages["train"].artifact

    # Bad input: one line, exit 2, nothing written.
    refused(homes["fresh"], "snapshot", "show", "beef")
    refused(homes["fresh"], "snapshot", "import", str(tmp_path / "missing.tar"))
    refused(homes["fresh"], "snapshot", "export", snap, str(bundle))  # exists
    refused(homes["fresh"], "recipe", "run", "quant-baseline", "--from-snapshot", snap)
    refused(homes["fresh"], "snapshot", "prune")

    # Prune: a dry run removes nothing; --keep-last 0 removes it.
    assert snap[:12] in cli(homes["fresh"], "snapshot", "prune", "--keep-last", "0", "--dry-run")
    assert snap[:12] in cli(homes["fresh"], "snapshot", "list")
    cli(homes["fresh"], "snapshot", "prune", "--keep-last", "0")
    assert cli(homes["fresh"], "snapshot", "list", "--format", "json").strip() == "[]"
