"""Plan building: fan-out/fan-in, validation errors naming the edge, order, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.jobs.artifact import Kind
from blut.jobs.plan import Plan, PlanBuilder, PlanError
from blut.jobs.stagedef import Resources, StageDef, payload_argv


def stage(name: str, out: Kind, *inputs: Kind, **kw: object) -> StageDef:
    return StageDef(name=name, output=out, inputs=inputs, argv=payload_argv(name), **kw)  # type: ignore[arg-type]


N, R = Kind.NUMBERS, Kind.REPORT


def diamond() -> Plan:
    return (
        PlanBuilder("d")
        .start(stage("make", N))
        .fan_out(stage("square", N, N), stage("cube", N, N, args={"p": 3}))
        .then(stage("total", R, N, N))
        .finish()
    )


def test_fan_out_fan_in_and_order() -> None:
    plan = diamond()
    assert plan.deps["total"] == ("square", "cube")
    assert plan.deps["square"] == ("make",)
    assert plan.order() == ["make", "square", "cube", "total"]
    assert plan.downstream("square") == ["total"]
    assert plan.downstream("make") == ["square", "cube", "total"]
    assert plan.outputs == ["total"]


def test_after_makes_any_shape() -> None:
    plan = (
        PlanBuilder("p")
        .start(stage("a", N), stage("b", N))
        .then(stage("both", N, N, N))
        .after("a")
        .then(stage("only-a", R, N))
        .finish()
    )
    assert plan.deps["both"] == ("a", "b")
    assert plan.deps["only-a"] == ("a",)


def test_kind_mismatch_names_the_edge() -> None:
    builder = PlanBuilder("p").start(stage("make", N)).then(stage("eval", R, Kind.MODEL))
    with pytest.raises(
        PlanError, match=r"edge make -> eval: make outputs 'numbers' but eval takes model"
    ):
        builder.finish()


def test_missing_input_and_duplicates() -> None:
    with pytest.raises(PlanError, match="no upstream stage provides input numbers"):
        PlanBuilder("p").start(stage("make", N)).then(stage("two", R, N, N)).finish()
    with pytest.raises(PlanError, match="duplicate stage name 'make'"):
        PlanBuilder("p").start(stage("make", N)).then(stage("make", N, N))
    with pytest.raises(PlanError, match="unknown stage 'nope'"):
        PlanBuilder("p").start(stage("make", N)).after("nope")


def test_cycle_is_rejected_naming_an_edge() -> None:
    a, b = stage("a", N, N), stage("b", N, N)
    with pytest.raises(PlanError, match=r"cycle: edge (a -> b|b -> a)"):
        Plan("c", {"a": a, "b": b}, {"a": ("b",), "b": ("a",)})


def test_unknown_edge_in_loaded_plan() -> None:
    data = diamond().to_dict()
    data["stages"][1]["after"] = ["ghost"]
    with pytest.raises(PlanError, match="edge ghost -> square: unknown stage"):
        Plan.from_dict(data)


def test_invalid_stage_name() -> None:
    with pytest.raises(Exception, match="invalid stage name"):
        stage("Bad Name", N)


def test_json_round_trip(tmp_path: Path) -> None:
    plan = (
        PlanBuilder("d")
        .start(
            stage(
                "make", N, resources=Resources(cpu=2, gpu=1, cpu_fallback=True), memory_max=1 << 20
            )
        )
        .then(stage("total", R, N, args={"x": [1, 2], "y": {"z": 0.5}}, timeout=3.0))
        .finish()
    )
    path = tmp_path / "plan.json"
    plan.save(path)
    again = Plan.load(path)
    assert again == plan
    assert again.stages["make"].resources.gpu == 1
    with pytest.raises(PlanError, match="unsupported plan version"):
        Plan.from_dict({**plan.to_dict(), "version": 99})
