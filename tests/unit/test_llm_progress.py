"""LLM stages report progress as events, keep bars and repeated warnings out of the log, and a
resumed run carries its token count and mean loss on from the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

import torch

from blut.payload.llm import common
from blut.status.events import Metric, Progress
from blut.status.layout import JobPaths
from blut.status.metrics import read_metrics_pandas
from blut.status.tailer import read_events
from tests.unit.llm_support import FAST, run_program
from tests.unit.quant_support import run_stage

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

ARGS = {**FAST, "save_every": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted sft run and one stopped after step 4's checkpoint, then resumed."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("llm-progress")
    lm = run_stage(root, "tiny-model", {"threads": 1})
    tokens = run_stage(root, "tokenize", {"examples": 64}, {"lm": lm})
    inputs = [("model", "lm", lm), ("tokenize", "tokens", tokens)]
    whole = run_program(root / "whole", "sft", "sft", ARGS, inputs)
    mp = pytest.MonkeyPatch()
    mp.setenv(common.KILL_ENV, "4")
    mp.setenv(common.KILL_MODE_ENV, "raise")
    with pytest.raises(common.StopForTest):
        run_program(root / "resumed", "sft", "sft", ARGS, inputs)
    mp.undo()
    resumed = run_program(root / "resumed", "sft", "sft", ARGS, inputs)
    return {"root": root, "whole": whole, "resumed": resumed}


def _summary(staging: Path) -> dict[str, object]:
    return dict(json.loads((staging / "train.json").read_text())["metrics"])


def test_a_resumed_run_counts_tokens_on_and_averages_every_step(runs: dict[str, Path]) -> None:
    a, b = (
        read_metrics_pandas(runs["root"] / r / "stages/sft/metrics") for r in ("whole", "resumed")
    )
    assert list(b["step"]) == [1, 2, 3, 4, 5, 6]
    assert list(a["num_tokens"]) == list(b["num_tokens"])  # not from 0 again at step 5
    whole, resumed = _summary(runs["whole"]), _summary(runs["resumed"])
    assert resumed["resumed_from_step"] == 4
    assert "resumed_from_step" not in whole
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    assert whole["train_loss"] == pytest.approx(sum(a["loss"]) / 6, rel=1e-6)


def test_progress_and_speed_are_events_not_parquet(runs: dict[str, Path]) -> None:
    job = runs["root"] / "whole"
    events = read_events(JobPaths(job).status)
    steps = [e for e in events if isinstance(e, Progress)]
    assert steps and steps[-1].step == 6 and steps[-1].total == 6 and steps[-1].unit == "step"
    speed = [e.values for e in events if isinstance(e, Metric) and "eta_s" in e.values]
    assert speed and all(v["steps_per_s"] > 0 and v["eta_s"] >= 0 for v in speed)
    assert speed[-1]["eta_s"] == 0
    assert all(v["tokens_per_s"] > 0 for v in speed)
    columns = set(read_metrics_pandas(job / "stages/sft/metrics").columns)
    assert not columns & {"eta_s", "steps_per_s", "tokens_per_s"}


def test_quiet_draws_no_bar_and_says_each_warning_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import warnings
        from blut.payload.llm import progress
        progress.quiet()
        from tqdm import tqdm
        import datasets
        for _ in tqdm(range(3), desc="BAR-TQDM"):
            pass
        datasets.Dataset.from_dict({"x": [1, 2]}).map(lambda r: r, desc="BAR-MAP")
        for _ in range(3):
            warnings.warn("old knob", FutureWarning)
        warnings.warn("another", UserWarning)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path)},
        check=True,
    )
    text = out.stdout + out.stderr
    assert "BAR-" not in text and "\r" not in text
    lines = text.splitlines()
    assert [line for line in lines if "old knob" in line] == [
        next(line for line in lines if "old knob" in line)
    ]
    assert next(line for line in lines if "old knob" in line).startswith(
        "warning: FutureWarning: old knob ("
    )
    assert sum("another" in line for line in lines) == 1
