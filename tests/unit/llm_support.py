"""Helpers of the LLM payload tests: a tiny model, data stages and runs with explicit inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload.context import StageContext
from blut.payload.stages import STAGES
from tests.unit.quant_support import env, run_stage

FAST = {"max_steps": 6, "batch_size": 4, "save_every": 3, "threads": 1}


def stage_files(
    job: Path, stage: str, args: dict[str, Any], inputs: list[tuple[str, str, Path]]
) -> Path:
    """Write plan stage ``stage``'s args.json and inputs.json (as `run_program` takes them)."""
    stage_dir = job / "stages" / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "args.json").write_text(json.dumps(args))
    listing = [
        {"stage": up, "kind": kind, "path": str(path), "hash": f"h-{up}"}
        for up, kind, path in inputs
    ]
    (stage_dir / "inputs.json").write_text(json.dumps(listing))
    return stage_dir


def run_program(
    job: Path,
    stage: str,
    program: str,
    args: dict[str, Any],
    inputs: list[tuple[str, str, Path]],
) -> Path:
    """Run ``program`` as plan stage ``stage`` with ``inputs`` = [(upstream stage, kind, path)]."""
    stage_files(job, stage, args, inputs)
    with StageContext.from_env(stage, env(job, stage)) as ctx:
        assert STAGES[program](ctx, []) == 0
        return ctx.staging


def first_last(values: list[float], k: int = 2) -> tuple[float, float]:
    """Mean of the first ``k`` and of the last ``k`` values."""
    return sum(values[:k]) / k, sum(values[-k:]) / k


def tiny_lm_and_data(root: Path, **examples: int) -> dict[str, Path]:
    """The tiny model and toy data under ``root``: ``tokenize``, ``prefs``, ``prompts`` → examples.

    Keys: ``root``, ``lm`` and ``tokens`` / ``prefs`` / ``prompts`` for the data stages asked for.
    """
    out = {"root": root, "lm": run_stage(root, "tiny-model", {"threads": 1})}
    names = {"tokenize": "tokens", "prefs": "prefs", "prompts": "prompts"}
    for stage, count in examples.items():
        inputs = {"lm": out["lm"]} if stage == "tokenize" else None
        out[names[stage]] = run_stage(root, stage, {"examples": count}, inputs)
    return out
