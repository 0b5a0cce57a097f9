"""A sweep compared without a UI: varied args from the data, final/best Parquet metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.jobs.api import load_sweep
from blut.jobs.store import JobStore
from blut.jobs.sweeps import (
    build_sweep,
    compared_metrics,
    direction,
    flatten,
    format_value,
    read_job_metrics,
    short_names,
    summarize,
    table_curves,
    varied_keys,
)
from blut.status.layout import JobPaths
from blut.status.metrics import MetricsWriter
from tests.cockpit.sweephome import SWEEP, losses, sweep_member, three_point_sweep, with_train


def test_flatten_makes_dotted_keys_and_keeps_lists() -> None:
    args = {"train": {"lr": 0.1, "layers": [1, 2], "opt": {"name": "adam"}}, "seed": 3}
    assert flatten(args) == {
        "train.lr": 0.1,
        "train.layers": [1, 2],
        "train.opt.name": "adam",
        "seed": 3,
    }


def test_varied_keys_come_from_the_differences_between_members() -> None:
    a = {"train": {"lr": 0.1, "hidden": 32, "layers": [1, 2]}, "data": {"window": 20}}
    b = {"train": {"lr": 0.01, "hidden": 32, "layers": [1, 2]}, "data": {"window": 20}}
    c = {"train": {"lr": 0.1, "hidden": 32, "layers": [1, 3]}, "data": {"window": 20}}
    assert varied_keys([a, b]) == ["train.lr"]
    assert varied_keys([a, b, c]) == ["train.lr", "train.layers"]
    assert varied_keys([a, a]) == []
    assert varied_keys([a]) == []
    d = {**a, "extra": {"flag": True}}  # a key only some members have varies
    assert varied_keys([a, d]) == ["extra.flag"]


def test_short_names_keep_the_full_key_when_last_parts_clash() -> None:
    assert short_names(["train.lr", "train.seed"]) == {"train.lr": "lr", "train.seed": "seed"}
    assert short_names(["train.seed", "split.seed", "train.lr"]) == {
        "train.seed": "train.seed",
        "split.seed": "split.seed",
        "train.lr": "lr",
    }


def test_format_value_is_what_the_command_line_takes() -> None:
    assert [format_value(v) for v in (0.001, 1e-5, 3, "gru", True, None, [1, 2])] == [
        "0.001",
        "1e-05",
        "3",
        "gru",
        "true",
        "null",
        "[1, 2]",
    ]


@pytest.mark.parametrize(
    ("name", "better"),
    [
        ("val_loss", "min"),
        ("train_loss", "min"),
        ("loss", "min"),
        ("eval/perplexity", "min"),
        ("val_accuracy", "max"),
        ("reward_margin", "max"),
        ("lr", None),
        ("peak_rss", None),
        ("samples_per_s", None),
    ],
)
def test_direction_of_a_metric(name: str, better: str | None) -> None:
    assert direction(name) == better


def test_compared_metrics_put_held_out_losses_first() -> None:
    names = ["lr", "train_loss", "val_accuracy", "val_loss", "peak_rss", "seconds"]
    assert compared_metrics(names) == ["val_loss", "train_loss", "val_accuracy"]


def test_summarize_final_and_best_by_direction() -> None:
    points = [(1.0, 0.9), (2.0, 0.5), (3.0, 0.7)]
    low = summarize(points, "min")
    assert (low.final, low.best, low.best_x, low.last_x) == (0.7, 0.5, 2.0, 3.0)
    high = summarize(points, "max")
    assert (high.best, high.best_x) == (0.9, 1.0)
    assert summarize(points, None).best is None


def test_table_curves_use_the_epoch_and_skip_gaps() -> None:
    columns = {
        "epoch": [1, 2, 3],
        "step": [10, 20, 30],
        "loss": [1.0, None, float("nan")],
        "val_loss": [2.0, 1.5, 1.2],
        "note": ["a", "b", "c"],
    }
    assert table_curves(columns) == {
        "loss": ((1.0, 1.0),),
        "val_loss": ((1.0, 2.0), (2.0, 1.5), (3.0, 1.2)),
    }
    assert table_curves({"loss": [3.0, 2.0]}) == {"loss": ((0.0, 3.0), (1.0, 2.0))}


def test_table_curves_use_the_step_when_an_epoch_holds_many_rows() -> None:
    columns = {"epoch": [1, 1, 2], "step": [5, 10, 15], "loss": [3.0, 2.0, 1.0]}
    assert table_curves(columns) == {"loss": ((5.0, 3.0), (10.0, 2.0), (15.0, 1.0))}


def test_read_job_metrics_from_parquet_qualifies_shared_names(tmp_path: Path) -> None:
    paths = JobPaths(tmp_path / "job")
    MetricsWriter(paths.stage("sft").metrics).write_epoch(1, [{"loss": 2.0, "lr": 0.1}])
    MetricsWriter(paths.stage("sft").metrics).write_epoch(2, [{"loss": 1.0, "lr": 0.1}])
    MetricsWriter(paths.stage("dpo").metrics).write_epoch(1, [{"loss": 0.5, "reward": 0.2}])
    curves = read_job_metrics(paths, ["sft", "dpo", "evaluate"])
    assert curves == {
        "sft/loss": ((1.0, 2.0), (2.0, 1.0)),
        "lr": ((1.0, 0.1), (2.0, 0.1)),
        "dpo/loss": ((1.0, 0.5),),
        "reward": ((1.0, 0.2),),
    }


def test_build_sweep_orders_points_by_their_values() -> None:
    curves = {"val_loss": ((1.0, 1.0), (2.0, 0.5))}
    sweep = build_sweep(
        "sweep-x",
        [
            ("job-b", with_train(lr=0.01), curves),
            ("job-a", with_train(lr=0.1), {}),
            ("job-c", with_train(lr=0.001), {"val_loss": ((1.0, 2.0),)}),
        ],
    )
    assert sweep.varied == ("train.lr",)
    assert [p.job_id for p in sweep.points] == ["job-c", "job-b", "job-a"]
    assert [sweep.label(p) for p in sweep.points] == ["lr=0.001", "lr=0.01", "lr=0.1"]
    assert sweep.primary == "val_loss"
    summary = sweep.points[1].summary("val_loss")
    assert summary is not None and (summary.final, summary.best) == (0.5, 0.5)
    assert sweep.points[2].summary("val_loss") is None


def test_load_sweep_reads_real_job_folders(blut_home: Path) -> None:
    jobs = three_point_sweep(blut_home)
    sweep_member(blut_home, "20250615-130000-other", with_train(lr=5.0), losses(1, 0.5), sweep="x")
    store = JobStore(blut_home)
    for found in (load_sweep(store, SWEEP), load_sweep(store, SWEEP, [j.id for j in jobs])):
        assert found.id == SWEEP
        assert found.varied == ("train.lr", "train.hidden")
        assert [found.label(p) for p in found.points] == [
            "lr=0.001 hidden=64",
            "lr=0.01 hidden=32",
            "lr=0.1 hidden=32",
        ]
        assert found.metrics == ["val_loss", "train_loss", "val_accuracy"]
        fast = found.point("20250615-120001-aaa1")
        assert fast is not None
        val = fast.summary("val_loss")
        assert val is not None and val.final == pytest.approx(1.1 * 2.0 * 0.25)
        assert val.best == val.final and val.best_x == 3.0
        failed = found.point("20250615-120003-aaa3")
        assert failed is not None and failed.curves["val_loss"] == ((1.0, 2.2),)


def test_a_key_some_members_lack_reads_as_a_dash_and_sorts_last() -> None:
    with_model = with_train(lr=0.1)
    with_model["train"]["extra"] = "big"
    sweep = build_sweep("s", [("a", with_model, {}), ("b", with_train(lr=0.1), {})])
    assert sweep.varied == ("train.extra",)
    assert [sweep.label(p) for p in sweep.points] == ["extra=big", "extra=-"]
    assert "train.extra" not in sweep.points[1].params  # nothing made up for JSON


def test_blut_sweep_prints_the_points_table_and_json(blut_home: Path) -> None:
    import json

    from tests.conftest import blut

    three_point_sweep(blut_home)
    done = blut("sweep", "abcd", env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{SWEEP}: 3 points, varies train.lr, train.hidden"
    head = "JOB lr hidden STATE val_loss min train_loss min"
    assert lines[1].split() == head.split()
    assert lines[2].split() == [
        "20250615-120002-aaa2",
        "0.001",
        "64",
        "succeeded",
        "1.408",
        "1.408",
        "1.28",
        "1.28",
    ]
    assert lines[4].split()[3:5] == ["failed", "(oom)"]
    data = json.loads(blut("sweep", SWEEP, "--format", "json").stdout)
    assert data["varied"] == ["train.lr", "train.hidden"]
    first = data["points"][0]
    assert first["params"] == {"train.lr": 0.001, "train.hidden": 64}
    assert first["state"] == "succeeded"
    assert first["metrics"]["val_loss"]["final"] == pytest.approx(1.408)
    assert first["metrics"]["lr"]["best"] is None


def test_blut_sweep_refuses_an_unknown_sweep_in_one_line(blut_home: Path) -> None:
    from tests.conftest import blut

    three_point_sweep(blut_home)
    done = blut("sweep", "nope")
    assert done.returncode == 2
    assert done.stderr.strip() == f"blut: error: no sweep matches 'nope' (sweeps: {SWEEP})"
