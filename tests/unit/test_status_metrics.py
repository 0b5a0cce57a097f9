# mypy: disable-error-code="import-untyped"
"""Parquet metric parts: one per epoch, atomic, read back as one table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blut.status.errors import StatusError
from blut.status.metrics import MetricsWriter, read_metrics, read_metrics_pandas


def test_epochs_read_back_as_one_sorted_table(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path / "metrics")
    assert (tmp_path / "metrics").is_dir()
    for epoch in (2, 0, 1):
        path = writer.write_epoch(
            epoch, [{"step": epoch * 10 + i, "loss": 1.0 / (epoch + i + 1)} for i in (1, 0)]
        )
        assert path.name == f"part-{epoch:06d}.parquet"
    table = read_metrics(tmp_path / "metrics")
    assert table.column_names == ["epoch", "step", "loss"]
    assert table.column("epoch").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert table.column("step").to_pylist() == [0, 1, 10, 11, 20, 21]


def test_rewriting_an_epoch_replaces_its_part(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.write_epoch(0, [{"loss": 1.0}])
    writer.write_epoch(0, [{"loss": 0.5}, {"loss": 0.25}])
    assert read_metrics(tmp_path).column("loss").to_pylist() == [0.5, 0.25]
    assert [p.name for p in tmp_path.iterdir()] == ["part-000000.parquet"]


def test_explicit_epoch_column_is_kept(tmp_path: Path) -> None:
    MetricsWriter(tmp_path).write_epoch(3, [{"epoch": 7, "loss": 1.0}, {"loss": 2.0}])
    assert read_metrics(tmp_path).column("epoch").to_pylist() == [3, 7]


def test_missing_or_empty_folder_is_an_empty_table(tmp_path: Path) -> None:
    assert read_metrics(tmp_path / "absent").num_rows == 0
    assert read_metrics(tmp_path).num_rows == 0
    assert read_metrics_pandas(tmp_path).empty
    MetricsWriter(tmp_path).write_epoch(0, [])
    assert read_metrics(tmp_path).column_names == ["epoch"]


def test_schema_evolution_unions_and_promotes(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.write_epoch(0, [{"step": 1, "loss": 2}])  # int loss
    writer.write_epoch(1, [{"step": 2, "loss": 1.5, "acc": 0.5}, {"step": 3, "note": None}])
    writer.write_epoch(2, [{"step": 4, "loss": 1.0, "note": "lr drop"}])
    table = read_metrics(tmp_path)
    assert table.schema.field("loss").type == pa.float64()
    assert table.schema.field("note").type == pa.string()
    assert table.to_pylist() == [
        {"epoch": 0, "step": 1, "loss": 2.0, "acc": None, "note": None},
        {"epoch": 1, "step": 2, "loss": 1.5, "acc": 0.5, "note": None},
        {"epoch": 1, "step": 3, "loss": None, "acc": None, "note": None},
        {"epoch": 2, "step": 4, "loss": 1.0, "acc": None, "note": "lr drop"},
    ]


def test_incompatible_parts_raise_status_error(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.write_epoch(0, [{"loss": 1.0}])
    writer.write_epoch(1, [{"loss": "nan-ish"}])
    with pytest.raises(StatusError, match="do not agree"):
        read_metrics(tmp_path)


def test_mixed_column_types_in_one_epoch_raise_status_error(tmp_path: Path) -> None:
    with pytest.raises(StatusError):
        MetricsWriter(tmp_path).write_epoch(0, [{"x": 1.0}, {"x": "one"}])
    assert list(tmp_path.iterdir()) == []


def test_pandas_view(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.write_epoch(1, [{"step": 2, "loss": 0.5}])
    writer.write_epoch(0, [{"step": 1, "loss": 1.0}])
    frame = read_metrics_pandas(tmp_path)
    assert list(frame.columns) == ["epoch", "step", "loss"]
    assert frame["loss"].tolist() == [1.0, 0.5]


def test_failed_write_leaves_earlier_parts_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = MetricsWriter(tmp_path)
    writer.write_epoch(0, [{"loss": 1.0}])

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        writer.write_epoch(1, [{"loss": 0.5}])
    assert [p.name for p in tmp_path.iterdir()] == ["part-000000.parquet"]
    assert read_metrics(tmp_path).column("loss").to_pylist() == [1.0]


CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from blut.status.metrics import MetricsWriter

    writer = MetricsWriter(Path(sys.argv[1]))
    writer.write_epoch(0, [{"loss": 1.0}])
    writer.write_epoch(1, [{"loss": 0.5}])
    # Die the hard way after the temp part is written and synced, before the rename.
    Path.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    writer.write_epoch(1, [{"loss": 0.1}])
    writer.write_epoch(2, [{"loss": 0.1}])
    """
)


def test_killed_writer_never_corrupts_earlier_parts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1  # the killed write's temp file
    leftovers[0].write_bytes(b"garbage, not parquet")
    (tmp_path / "_also_ignored.parquet").write_bytes(b"garbage")
    table = read_metrics(tmp_path)
    assert table.to_pylist() == [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]
