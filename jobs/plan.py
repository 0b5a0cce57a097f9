"""`Plan`: a typed DAG of stages, built with `PlanBuilder` and saved as plan.json.

The builder keeps a frontier (the stages the next one depends on)::

    plan = (PlanBuilder("smoke").start(make)          # frontier: make
            .fan_out(square, cube)                     # both after make; frontier: square, cube
            .then(total)                               # fan-in: after square and cube
            .finish())

``after(*names)`` moves the frontier to any earlier stages for other shapes.
Every plan is validated when built or loaded: unique names, known edges, no
cycles, and along every edge the upstream's output kind is one the downstream
takes, with each downstream's inputs covered exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.errors import JobsError
from blut.jobs.stagedef import Resources, StageDef
from blut.status.atomic import atomic_write_json

PLAN_VERSION = 1


class PlanError(JobsError):
    """A plan that cannot run: it names the offending stage or edge."""


@dataclass(frozen=True)
class Plan:
    """Stages in insertion order and, per stage, the stages it depends on."""

    name: str
    stages: Mapping[str, StageDef]
    deps: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        _validate(self)

    def order(self) -> list[str]:
        """Stage names in a topological order (ties keep insertion order)."""
        return _toposort(self.stages, self.deps)

    def downstream(self, name: str) -> list[str]:
        """Every stage that depends on ``name``, directly or not, in topological order."""
        reached = {name}
        for stage in self.order():
            if any(d in reached for d in self.deps[stage]):
                reached.add(stage)
        reached.discard(name)
        return [s for s in self.order() if s in reached]

    def upstream(self, name: str) -> Plan:
        """The plan cut down to stage ``name`` and every stage it depends on, directly or not
        (their keys, hence their cached outputs, are the same as in the whole plan)."""
        if name not in self.stages:
            raise PlanError(f"plan {self.name!r} has no stage {name!r}")
        needed = {name}
        for stage in reversed(self.order()):
            if stage in needed:
                needed.update(self.deps[stage])
        kept = [s for s in self.stages if s in needed]
        return Plan(self.name, {s: self.stages[s] for s in kept}, {s: self.deps[s] for s in kept})

    @property
    def outputs(self) -> list[str]:
        """Stages no other stage depends on."""
        used = {d for deps in self.deps.values() for d in deps}
        return [s for s in self.stages if s not in used]

    def to_dict(self) -> dict[str, Any]:
        """The plan.json form."""
        return {
            "version": PLAN_VERSION,
            "name": self.name,
            "stages": [
                {**_stage_dict(stage), "after": list(self.deps[name])}
                for name, stage in self.stages.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """A plan from its plan.json form (validated)."""
        if data.get("version") != PLAN_VERSION:
            raise PlanError(f"unsupported plan version {data.get('version')!r}")
        stages: dict[str, StageDef] = {}
        deps: dict[str, tuple[str, ...]] = {}
        try:
            for raw in data["stages"]:
                fields = dict(raw)
                after = tuple(fields.pop("after"))
                stage = _stage_from_dict(fields)
                if stage.name in stages:
                    raise PlanError(f"duplicate stage name {stage.name!r}")
                stages[stage.name] = stage
                deps[stage.name] = after
            return cls(str(data["name"]), stages, deps)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"malformed plan: {exc!r}") from exc

    def save(self, path: Path) -> None:
        """Write plan.json atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read plan.json."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PlanError(f"{path}: unreadable plan ({exc})") from exc
        if not isinstance(data, dict):
            raise PlanError(f"{path}: unreadable plan (not a JSON object)")
        try:
            return cls.from_dict(data)
        except PlanError as exc:
            raise PlanError(f"{path}: {exc}") from exc


def _stage_dict(stage: StageDef) -> dict[str, Any]:
    out = asdict(stage)
    out["output"] = str(stage.output)
    out["inputs"] = [str(k) for k in stage.inputs]
    out["argv"] = list(stage.argv)
    out["args"] = dict(stage.args)
    out["args_schema"] = dict(stage.args_schema)
    return out


def _stage_from_dict(data: dict[str, Any]) -> StageDef:
    data["output"] = Kind(data["output"])
    data["inputs"] = tuple(Kind(k) for k in data["inputs"])
    data["argv"] = tuple(data["argv"])
    data["resources"] = Resources(**data["resources"])
    return StageDef(**data)


class PlanBuilder:
    """Builds a `Plan` stage by stage; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stages: dict[str, StageDef] = {}
        self._deps: dict[str, tuple[str, ...]] = {}
        self._frontier: tuple[str, ...] = ()

    def _add(self, stage: StageDef, after: tuple[str, ...]) -> None:
        if stage.name in self._stages:
            raise PlanError(f"duplicate stage name {stage.name!r}")
        self._stages[stage.name] = stage
        self._deps[stage.name] = after

    def start(self, *stages: StageDef) -> PlanBuilder:
        """Add stages with no upstream; they become the frontier."""
        for stage in stages:
            self._add(stage, ())
        self._frontier = tuple(s.name for s in stages)
        return self

    def then(self, stage: StageDef) -> PlanBuilder:
        """Add ``stage`` after every frontier stage (a fan-in when there are several)."""
        return self.fan_out(stage)

    def fan_out(self, *stages: StageDef) -> PlanBuilder:
        """Add each of ``stages`` after the whole frontier; together they become the frontier."""
        if not self._frontier:
            raise PlanError(f"{stages[0].name if stages else '?'}: call start() first")
        for stage in stages:
            self._add(stage, self._frontier)
        self._frontier = tuple(s.name for s in stages)
        return self

    def after(self, *names: str) -> PlanBuilder:
        """Make ``names`` (earlier stages) the frontier."""
        unknown = [n for n in names if n not in self._stages]
        if unknown:
            raise PlanError(f"after(): unknown stage {unknown[0]!r}")
        self._frontier = names
        return self

    def finish(self) -> Plan:
        """The validated plan."""
        return Plan(self.name, dict(self._stages), dict(self._deps))


def _toposort(stages: Mapping[str, StageDef], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm; raises naming an edge of a cycle if there is one."""
    remaining = {name: set(deps[name]) for name in stages}
    order: list[str] = []
    while remaining:
        ready = [n for n in stages if n in remaining and not remaining[n]]
        if not ready:
            stuck = next(iter(remaining))
            dep = sorted(remaining[stuck])[0]
            raise PlanError(f"cycle: edge {dep} -> {stuck} is part of a dependency cycle")
        for name in ready:
            del remaining[name]
            order.append(name)
        for pending in remaining.values():
            pending.difference_update(ready)
    return order


def _validate(plan: Plan) -> None:
    if not plan.stages:
        raise PlanError(f"plan {plan.name!r} has no stages")
    if set(plan.deps) != set(plan.stages):
        raise PlanError("plan stages and dependency table disagree")
    for name, stage in plan.stages.items():
        if stage.name != name:
            raise PlanError(f"stage {stage.name!r} is stored under {name!r}")
        for dep in plan.deps[name]:
            if dep not in plan.stages:
                raise PlanError(f"edge {dep} -> {name}: unknown stage {dep!r}")
        if len(set(plan.deps[name])) != len(plan.deps[name]):
            raise PlanError(f"stage {name!r} lists an upstream stage twice")
    _toposort(plan.stages, plan.deps)
    for name, stage in plan.stages.items():
        _check_kinds(plan, name, stage)


def _check_kinds(plan: Plan, name: str, stage: StageDef) -> None:
    """Every upstream output must be a wanted input; every input must be supplied."""
    wanted = Counter(stage.inputs)
    for dep in plan.deps[name]:
        kind = plan.stages[dep].output
        if wanted[kind] == 0:
            takes = ", ".join(str(k) for k in stage.inputs) or "nothing"
            extra = " (one too many)" if kind in stage.inputs else ""
            raise PlanError(
                f"edge {dep} -> {name}: {dep} outputs {str(kind)!r} but {name} takes {takes}{extra}"
            )
        wanted[kind] -= 1
    missing = [str(k) for k in wanted.elements()]
    if missing:
        raise PlanError(f"stage {name}: no upstream stage provides input {', '.join(missing)}")
