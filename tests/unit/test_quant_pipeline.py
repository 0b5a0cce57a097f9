"""label, split and the loader on real data: labels match pandas, the embargo holds, windows match rows."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from blut.payload.context import StageContext
from blut.payload.errors import ArgsError, InputError
from blut.payload.load import SeededSampler, WindowDataset, loader
from blut.payload.shards import read_shard
from tests.unit.quant_support import REAL_TICKERS, env, run_stage, write_stage_files

H = 5


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quant-job")
    features = run_stage(root, "encode", {"tickers": REAL_TICKERS, "shard_rows": 3000})
    labeled = run_stage(
        root, "label", {"horizon": H, "shard_rows": 2500, "train_end": "2008-01-01"},
        {"features": features},
    )  # fmt: skip
    splits = run_stage(root, "split", {}, {"labeled": labeled})
    return {"root": root, "features": features, "labeled": labeled, "splits": splits}


def frame_of(directory: Path) -> pd.DataFrame:
    manifest = json.loads((directory / "manifest.json").read_text())
    table = pa.concat_tables(read_shard(directory, s) for s in manifest["shards"])
    return table.to_pandas()


def test_labels_equal_a_direct_pandas_computation(job: dict[str, Path]) -> None:
    feats = frame_of(job["features"])
    feats["fwd"] = np.log(feats.groupby("ticker")["adj_close"].shift(-H) / feats["adj_close"])
    feats["end"] = feats.groupby("ticker")["date"].shift(-H)
    feats["next"] = feats.groupby("ticker")["adj_close"].shift(-1) / feats["adj_close"] - 1
    expected = feats.dropna(subset=["fwd"]).reset_index(drop=True)
    in_train = pd.to_datetime(expected["end"]) < pd.Timestamp("2008-01-01")
    low, high = np.quantile(expected.loc[in_train, "fwd"], [0.3333, 0.6667])
    classes = (expected["fwd"] > low).astype(int) + (expected["fwd"] > high).astype(int)
    got = frame_of(job["labeled"])
    assert len(got) == len(feats) - H * len(REAL_TICKERS)
    assert list(got["ticker"]) == list(expected["ticker"])
    assert list(got["date"]) == list(expected["date"])
    assert list(got["label_end"]) == list(expected["end"])
    np.testing.assert_array_equal(got["fwd_return"], expected["fwd"])
    np.testing.assert_array_equal(got["target"], classes)
    np.testing.assert_array_equal(got["next_return"], expected["next"])
    manifest = json.loads((job["labeled"] / "manifest.json").read_text())
    assert manifest["class_cuts"] == [low, high]
    assert manifest["quantile_period_end"] == "2008-01-01"


def _check_embargo(labeled: pd.DataFrame, splits: dict, horizon: int) -> None:
    calendar = np.unique(labeled["date"].to_numpy())
    for fold in splits["folds"]:
        parts = {}
        for name, split in fold["splits"].items():
            idx = np.concatenate([np.arange(a, b) for a, b in split["ranges"]])
            parts[name] = labeled.iloc[idx]
            assert len(idx) == split["rows"] > 0
        order = [n for n in ("train", "val", "test") if n in parts]
        for early, late in itertools.pairwise(order):
            start = parts[late]["date"].min()
            assert parts[early]["label_end"].max() < start  # no label window crosses
            gap = np.searchsorted(calendar, start) - np.searchsorted(
                calendar, parts[early]["date"].max()
            )
            assert gap > splits["embargo"] >= horizon
        all_rows = np.concatenate([p.index.to_numpy() for p in parts.values()])
        assert len(np.unique(all_rows)) == len(all_rows)  # disjoint


def test_holdout_embargo_holds(job: dict[str, Path]) -> None:
    splits = json.loads((job["splits"] / "manifest.json").read_text())
    assert (splits["mode"], splits["embargo"], len(splits["folds"])) == ("holdout", H, 1)
    _check_embargo(frame_of(job["labeled"]), splits, H)


def test_walk_forward_folds_expand_with_embargo(job: dict[str, Path]) -> None:
    root = job["root"] / "wf"
    out = run_stage(
        root,
        "split",
        {"mode": "walk_forward", "folds": 3, "embargo": 10},
        {"labeled": job["labeled"]},
    )
    splits = json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in splits["folds"]] == ["fold-0", "fold-1", "fold-2"]
    trains = [f["splits"]["train"]["rows"] for f in splits["folds"]]
    assert trains == sorted(trains) and trains[0] < trains[-1]
    _check_embargo(frame_of(job["labeled"]), splits, 10)


def test_embargo_shorter_than_horizon_is_refused(job: dict[str, Path]) -> None:
    with pytest.raises(ArgsError, match="embargo 2 is shorter than the label horizon 5"):
        run_stage(job["root"] / "bad", "split", {"embargo": 2}, {"labeled": job["labeled"]})


def test_loader_windows_match_source_rows(job: dict[str, Path]) -> None:
    splits = json.loads((job["splits"] / "manifest.json").read_text())
    ranges = splits["folds"][0]["splits"]["val"]["ranges"]
    ds = WindowDataset(job["labeled"], ranges, window=8)
    labeled = frame_of(job["labeled"])
    features = json.loads((job["labeled"] / "manifest.json").read_text())["features"]
    source = frame_of(job["features"]).set_index(["ticker", "date"])[features]
    assert 0 < len(ds) <= sum(b - a for a, b in ranges)
    for i in [0, 1, len(ds) // 2, len(ds) - 1]:
        x, y = ds[i]
        row = labeled.iloc[ds.rows[i]]
        assert int(y) == row["target"]
        rows = source.loc[row["ticker"]].loc[: row["date"]].tail(8)
        np.testing.assert_array_equal(x.numpy(), rows.to_numpy(dtype=np.float32))
    batches = list(loader(ds, SeededSampler(len(ds), 64, seed=3)))
    again = list(loader(ds, SeededSampler(len(ds), 64, seed=3)))
    other = list(loader(ds, SeededSampler(len(ds), 64, seed=4)))
    assert not torch_equal(batches[0], other[0])
    assert all(torch_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert sum(len(b[1]) for b in batches) == len(ds)


def torch_equal(a: tuple, b: tuple) -> bool:
    return bool((a[0] == b[0]).all() and (a[1] == b[1]).all())


def test_loader_workers_see_the_same_batches(job: dict[str, Path]) -> None:
    splits = json.loads((job["splits"] / "manifest.json").read_text())
    ds = WindowDataset(job["labeled"], splits["folds"][0]["splits"]["test"]["ranges"], window=4)
    inline = list(loader(ds, SeededSampler(len(ds), 256, seed=1)))
    workers = list(loader(ds, SeededSampler(len(ds), 256, seed=1), workers=2))
    assert all(torch_equal(a, b) for a, b in zip(inline, workers, strict=True))


def test_stage_args_and_inputs_come_from_the_stage_dir(tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text(json.dumps({"job_level": 1}))
    write_stage_files(tmp_path, "label", {"horizon": 3}, {"features": tmp_path / "f"})
    ctx = StageContext.from_env("label", env(tmp_path, "label"))
    assert ctx.args == {"horizon": 3}
    assert ctx.input("features") == tmp_path / "f"
    with pytest.raises(
        InputError, match=r"no input of kind 'splits'; available: features \(from features\)"
    ):
        ctx.input("splits")
    ctx.close()


def test_unknown_and_mistyped_args_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ArgsError, match="unknown argument 'horizn'; did you mean 'horizon'"):
        run_stage(tmp_path, "label", {"horizn": 3})
    with pytest.raises(ArgsError, match="'horizon': must be >= 1, got 0"):
        run_stage(tmp_path, "label", {"horizon": 0})
    with pytest.raises(ArgsError, match="'target': expected one of"):
        run_stage(tmp_path, "label", {"target": "ranks"})
