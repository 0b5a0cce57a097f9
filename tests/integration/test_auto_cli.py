"""`blut auto` without --dry-run submits what it printed: a real quant-train job on a
small OHLCV file runs to its end, and once history has taught the policy a ceiling the
printed command carries it."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.conftest import blut
from tests.unit.test_auto import prices

QUICK = ("train.epochs=1", "train.hidden=8", "train.threads=1")


def test_auto_submits_quant_train_on_ohlcv_and_then_offers_learned_ceilings(
    tmp_path: Path, blut_home: Path
) -> None:
    data = prices(tmp_path / "prices.csv", rows=400)
    sets = [a for s in QUICK for a in ("--set", s)]
    result = blut("auto", str(data), *sets, timeout=600)
    assert result.returncode == 0, result.stderr
    command = result.stdout.splitlines()[0]
    assert command == shlex.join(
        ["blut", "recipe", "run", "quant-train", "--set", f"encode.dataset={data}", *sets]
    )
    job = re.search(r"job (\S+) \(quant-train\) submitted", result.stderr)
    assert job and "succeeded" in result.stderr, result.stderr
    inspected = json.loads(blut("plan", "inspect", job.group(1), "--format", "json").stdout)
    assert {s["state"] for s in inspected["stages"]} == {"succeeded"}
    args = json.loads((blut_home / "jobs" / job.group(1) / "args.json").read_text())
    assert args["encode"]["dataset"] == str(data) and args["train"]["epochs"] == 1

    for key, value in [("ceiling.source", "learned"), ("ceiling.min_runs", "1")]:
        assert blut("policy", "set", key, value).returncode == 0
    again = blut("auto", str(data), "--dry-run", *sets)
    assert again.returncode == 0, again.stderr
    train_peak = next(s["peak_memory"] for s in inspected["stages"] if s["name"] == "train")
    wanted = -(-int(train_peak * 1.5) // (1 << 20))
    assert f"--set train.memory_max={max(wanted, 64)}M" in again.stdout, again.stdout
