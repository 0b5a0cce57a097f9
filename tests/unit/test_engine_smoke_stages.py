"""The smoke recipe's payload programs, run in-process on a StageContext."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload import smoke
from blut.payload.context import StageContext
from blut.payload.stages import STAGES


def ctx(
    tmp_path: Path, stage: str, args: dict[str, Any], inputs: list[dict[str, Any]]
) -> StageContext:
    return StageContext(job_dir=tmp_path, stage=stage, job_id="j", args=args, inputs=inputs)


def test_registered() -> None:
    assert {"smoke-make", "smoke-power", "smoke-total"} <= set(STAGES)


def test_make_power_total(tmp_path: Path) -> None:
    with ctx(tmp_path, "make", {"count": 5, "seed": 1}, []) as c:
        assert smoke.make(c, []) == 0
    numbers = json.loads((c.staging / "numbers.json").read_text())
    assert len(numbers) == 5
    made = {"stage": "make", "kind": "numbers", "path": str(c.staging), "hash": "h"}
    with ctx(tmp_path, "cube", {"exponent": 3}, [made]) as p:
        assert smoke.power(p, []) == 0
    cubes = json.loads((p.staging / "numbers.json").read_text())
    assert cubes == [n**3 for n in numbers]
    cubed = {"stage": "cube", "kind": "numbers", "path": str(p.staging), "hash": "h"}
    with ctx(tmp_path, "total", {}, [made, cubed]) as t:
        assert smoke.total(t, []) == 0
    report = json.loads((t.staging / "report.json").read_text())
    assert report == {
        "sums": {"make": sum(numbers), "cube": sum(cubes)},
        "total": sum(numbers) + sum(cubes),
    }


def test_fail_on_request_writes_nothing(tmp_path: Path) -> None:
    with ctx(tmp_path, "make", {"fail": True}, []) as c:
        assert smoke.make(c, []) == 3
    assert list(c.staging.iterdir()) == []
    events = (tmp_path / "status.jsonl").read_text()
    assert "fails on request" in events
