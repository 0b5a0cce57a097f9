"""Snapshot bundles and the snapshot store, on real files (no units: the stage folder is
written here as a train stage leaves it)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from blut.jobs.errors import UsageError
from blut.jobs.snapshots import SnapshotStore, base_args, restore, start, with_snapshot
from blut.jobs.store import Job, JobStore
from blut.status.errors import StatusError
from blut.status.metrics import MetricsWriter, read_metrics
from blut.status.snapshot import MARKER, checkpoint_meta, open_bundle, write_bundle

SCHEMA = {"properties": {"train": {"properties": {"lr": {}, "from_snapshot": {}}}}}


def bundle_bytes(members: list[tuple[str, bytes | Path]]) -> bytes:
    out = io.BytesIO()
    write_bundle(out, members)
    return out.getvalue()


def test_bundle_bytes_do_not_depend_on_order_time_owner_or_place(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"tensors")
    os.utime(weights, (1, 1))
    first = bundle_bytes([("b.json", b"{}"), ("checkpoint/w.pt", weights)])
    moved = tmp_path / "elsewhere" / "w.pt"
    moved.parent.mkdir()
    shutil.copyfile(weights, moved)  # another path, another mtime
    assert bundle_bytes([("checkpoint/w.pt", moved), ("b.json", b"{}")]) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == ["b.json", "checkpoint/w.pt"]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
        (0, 0, 0, "", "", 0o644)
    }


@pytest.mark.parametrize("name", ["/etc/passwd", "../up", "a/../../b", ""])
def test_bundle_refuses_names_outside_it(name: str) -> None:
    with pytest.raises(StatusError):
        bundle_bytes([(name, b"x")])


def test_measured_fields_leave_the_checkpoint_meta() -> None:
    meta = {"epoch": 2, "metrics": {"val_loss": 0.5, "seconds": 3.1, "peak_rss": 9}}
    assert json.loads(checkpoint_meta(json.dumps(meta).encode())) == {
        "epoch": 2,
        "metrics": {"val_loss": 0.5},
    }


def test_open_bundle_refuses_what_is_not_a_snapshot(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StatusError, match="not a readable snapshot"):
        open_bundle(junk)
    plain = tmp_path / "plain.tar"
    plain.write_bytes(bundle_bytes([("readme", b"hi")]))
    with pytest.raises(StatusError, match=r"not a snapshot \(no snapshot.json\)"):
        open_bundle(plain)
    future = tmp_path / "future.tar"
    future.write_bytes(bundle_bytes([("snapshot.json", b'{"format": 99}')]))
    with pytest.raises(StatusError, match="unknown snapshot format"):
        open_bundle(future)


def train_job(home: Path, epochs: int = 3, seconds: float = 1.0) -> Job:
    """A quant-train job whose train stage checkpointed ``epochs`` epochs (the last 2 kept)."""
    job = JobStore(home).create(
        name="quant-train", argv=["x"], cwd="/", launcher="systemd", stages=["train"],
        recipe="quant-train",
    )  # fmt: skip
    job.paths.args.write_text(json.dumps({"train": {"lr": 0.001, "memory_max": "2G"}}))
    stage = job.paths.stage("train")
    job.stage_dir("train")
    stage.args.write_text(json.dumps({"lr": 0.001}))
    folder = stage.checkpoints
    folder.mkdir()
    writer = MetricsWriter(stage.metrics)
    for epoch in range(1, epochs + 1):
        if epoch > epochs - 2:
            (folder / f"epoch-{epoch:04d}.pt").write_bytes(f"weights {epoch}".encode())
            meta = {
                "epoch": epoch, "step": epoch * 10, "weights": f"epoch-{epoch:04d}.pt",
                "loop": {"best_epoch": 1}, "metrics": {"val_loss": 1 / epoch, "seconds": seconds},
            }  # fmt: skip
            (folder / f"epoch-{epoch:04d}.meta.json").write_text(json.dumps(meta))
        writer.write_epoch(epoch, [{"val_loss": 1 / epoch, "seconds": seconds * epoch}])
    (folder / "best.pt").write_bytes(b"best weights")
    return job


def test_the_same_state_gets_the_same_id_twice_and_in_another_home(tmp_path: Path) -> None:
    job = train_job(tmp_path / "a")
    snaps = SnapshotStore(tmp_path / "a")
    snap = snaps.create(job)
    assert snaps.create(job, "train", epoch=3).id == snap.id
    assert snaps.create(job, step=30).id == snap.id
    other = train_job(tmp_path / "b", seconds=7.5)  # another run's timings, another job id
    assert SnapshotStore(tmp_path / "b").create(other).id == snap.id
    assert snaps.create(job, epoch=2).id != snap.id
    assert [s.id for s in snaps.all()] == [snap.id, snaps.get(snaps.all()[1].id[:6]).id]

    bundle = snap.bundle()
    assert bundle.manifest["epoch"] == 3 and bundle.manifest["step"] == 30
    assert bundle.manifest["config"] == {"lr": 0.001}
    assert bundle.metric_rows() == [{"epoch": e, "val_loss": 1 / e} for e in (1, 2, 3)]


def test_a_trimmed_epoch_and_a_replaced_best_are_named(tmp_path: Path) -> None:
    job = train_job(tmp_path)
    snaps = SnapshotStore(tmp_path)
    with pytest.raises(UsageError, match=r"no checkpoint of epoch 1: kept epoch-0002, epoch-0003"):
        snaps.create(job, epoch=1)
    with pytest.raises(UsageError, match="no stage 'eval'"):
        snaps.create(job, "eval")
    meta = job.paths.stage("train").checkpoints / "epoch-0003.meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "loop": {"best_epoch": 3}}))
    with pytest.raises(UsageError, match="best weights as of epoch-0002 were replaced"):
        snaps.create(job, epoch=2)
    assert not list((tmp_path / "snapshots").glob("*.tar"))


def test_export_import_prune(tmp_path: Path) -> None:
    snap = SnapshotStore(tmp_path / "a").create(train_job(tmp_path / "a"))
    dest = tmp_path / "out.tar"
    SnapshotStore(tmp_path / "a").export(snap.id[:8], dest)
    with pytest.raises(UsageError, match="exists"):
        SnapshotStore(tmp_path / "a").export(snap.id, dest)
    fresh = SnapshotStore(tmp_path / "b")
    imported = fresh.import_(dest)
    assert imported.id == snap.id and imported.origin["imported"] == "out.tar"
    assert fresh.prune(older_than=None, keep_last=0, dry_run=True) == [imported]
    assert [s.id for s in fresh.all()] == [snap.id]
    assert fresh.prune(older_than=3600, keep_last=None, dry_run=False) == []
    assert [s.id for s in fresh.prune(older_than=None, keep_last=0, dry_run=False)] == [snap.id]
    assert fresh.all() == []
    with pytest.raises(UsageError, match="no such snapshot"):
        fresh.get(snap.id)


def test_restore_puts_the_checkpoint_metrics_and_marker_into_a_new_job(tmp_path: Path) -> None:
    snap = SnapshotStore(tmp_path).create(train_job(tmp_path))
    args = {"train": {"lr": 0.01, "memory_max": "2G"}}
    begin = start(snap, "quant-train", args, SCHEMA)
    assert begin.branch and begin.changed == {"lr": [0.001, 0.01]}
    assert with_snapshot(args, begin)["train"]["from_snapshot"] == snap.id
    assert not start(snap, "quant-train", {"train": {"lr": 0.001}}, SCHEMA).branch
    with pytest.raises(UsageError, match="of recipe quant-train, not other"):
        start(snap, "other", args, SCHEMA)
    with pytest.raises(UsageError, match="cannot start from a snapshot"):
        start(snap, "quant-train", args, {"properties": {}})

    target = JobStore(tmp_path / "c").create(
        name="quant-train", argv=["x"], cwd="/", launcher="systemd", stages=["train"]
    )
    restore(target, begin)
    folder = target.paths.stage("train").checkpoints
    assert sorted(p.name for p in folder.iterdir()) == [
        "best.pt", "epoch-0003.meta.json", "epoch-0003.pt", MARKER,
    ]  # fmt: skip
    assert (folder / "epoch-0003.pt").read_bytes() == b"weights 3"
    assert (folder / MARKER).read_text().strip() == snap.id
    assert read_metrics(target.paths.stage("train").metrics).column("epoch").to_pylist() == [
        1, 2, 3,
    ]  # fmt: skip


def test_a_setting_blut_no_longer_has_is_left_out_not_a_branch(tmp_path: Path) -> None:
    """A snapshot made when train still had ``logger`` starts on today's schema."""
    job = train_job(tmp_path)
    old = {"train": {"lr": 0.001, "logger": "none", "memory_max": "2G"}, "other": 1}
    job.paths.args.write_text(json.dumps(old))
    job.paths.stage("train").args.write_text(json.dumps({"lr": 0.001, "logger": "none"}))
    snap = SnapshotStore(tmp_path).create(job)
    schema = {
        "properties": {"train": {"properties": {"lr": {}, "memory_max": {}, "from_snapshot": {}}}}
    }
    base, dropped = base_args(snap, schema)
    assert dropped == ["train.logger"]
    assert base == {"train": {"lr": 0.001, "memory_max": "2G"}, "other": 1}
    assert not start(snap, "quant-train", base, schema).branch
