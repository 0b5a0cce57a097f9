"""Helpers of the quant payload tests: run a stage in-process inside a throwaway job dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload.context import StageContext
from blut.payload.stages import STAGES

REAL_TICKERS = ["AAPL", "IBM", "MSFT"]


def write_stage_files(job: Path, stage: str, args: dict[str, Any], inputs: dict[str, Path]) -> None:
    """What the engine writes before launching ``stage``: its args.json and inputs.json."""
    stage_dir = job / "stages" / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "args.json").write_text(json.dumps(args))
    listing = [
        {"stage": kind, "kind": kind, "path": str(path), "hash": "test"}
        for kind, path in inputs.items()
    ]
    (stage_dir / "inputs.json").write_text(json.dumps(listing))


def env(job: Path, stage: str) -> dict[str, str]:
    """The driver's environment for ``stage`` of ``job``."""
    return {
        "BLUT_JOB_DIR": str(job),
        "BLUT_STAGE_NAME": stage,
        "BLUT_JOB_ID": job.name,
        "BLUT_CONTAINED": "0",
    }


def run_stage(
    job: Path, stage: str, args: dict[str, Any], inputs: dict[str, Path] | None = None
) -> Path:
    """Run ``stage`` in this process as the driver would; its staging dir."""
    write_stage_files(job, stage, args, inputs or {})
    with StageContext.from_env(stage, env(job, stage)) as ctx:
        assert STAGES[stage](ctx, []) == 0
        return ctx.staging
