"""A sweep's points compared: which arguments vary, and each point's final and best metrics.

UI-free, for the cockpit's sweep screen and the CLI. What varies comes from the
data: the dotted keys whose values differ between the members' resolved args
(args.json), never from a list of names. Metrics are the per-epoch rows the
stages wrote as Parquet (``stages/<s>/metrics``, read through
:mod:`blut.status.metrics`): each numeric column becomes a curve over the
epoch (else the step, else the row), summarised as its final value and, for a
metric with a known better direction (losses down, accuracies up), its best.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from blut.status.errors import StatusError
from blut.status.layout import JobPaths

Points: TypeAlias = tuple[tuple[float, float], ...]
Direction: TypeAlias = Literal["min", "max"]

X_COLUMNS = ("epoch", "step")
"""Columns that place a row (the x of every curve), never metrics themselves."""
LOWER_IS_BETTER = ("loss", "error", "perplexity", "ppl", "mse", "mae", "nll")
HIGHER_IS_BETTER = ("accuracy", "acc", "auc", "f1", "precision", "recall", "reward", "sharpe")
_MISSING = object()


def flatten(args: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested args as ``{"train.lr": 0.01, ...}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _same(values: Sequence[Any]) -> bool:
    first = json.dumps(values[0], sort_keys=True, default=str) if values else ""
    return all(json.dumps(v, sort_keys=True, default=str) == first for v in values[1:])


def varied_keys(args: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dotted keys whose values differ between ``args`` (a key some lack counts as
    differing), in the order they first appear."""
    flat = [flatten(a) for a in args]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [k for k in keys if not _same([f.get(k, _MISSING) for f in flat])]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each key by its last part (``train.lr`` → ``lr``) unless two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def format_value(value: Any) -> str:
    """A parameter value as typed on the command line: ``0.01``, ``gru``, ``true``."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return f"{value:g}" if value == value else "nan"
    return str(value)


def value_order(value: Any) -> tuple[int, float, str]:
    """A sort key that puts numbers in numeric order and everything else after them."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return (0, float(value), "")
    return (2, 0.0, "") if value is _MISSING else (1, 0.0, format_value(value))


def direction(metric: str) -> Direction | None:
    """``min`` for a loss-like metric, ``max`` for an accuracy-like one, else None."""
    words = metric.lower().replace("/", "_").replace(".", "_").replace("-", "_").split("_")
    if any(w in LOWER_IS_BETTER for w in words) or "loss" in metric.lower():
        return "min"
    if any(w in HIGHER_IS_BETTER for w in words):
        return "max"
    return None


def compared_metrics(names: Iterable[str]) -> list[str]:
    """The metrics worth comparing (those with a better direction): losses first, the
    validation ones before the rest, then the higher-is-better ones."""

    def rank(name: str) -> tuple[int, int, str]:
        lower = name.lower()
        held_out = any(w in lower for w in ("val", "eval", "test"))
        return (0 if direction(name) == "min" else 1, 0 if held_out else 1, lower)

    return sorted((n for n in set(names) if direction(n) is not None), key=rank)


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one point: its last value, and its best with where it was reached."""

    final: float
    best: float | None
    """None when the metric has no better direction."""
    best_x: float | None
    last_x: float


def summarize(points: Sequence[tuple[float, float]], better: Direction | None) -> MetricSummary:
    """The final (last) and best value of a curve with at least one point."""
    last_x, final = points[-1]
    if better is None:
        return MetricSummary(final, None, None, last_x)
    pick = min if better == "min" else max
    best_x, best = pick(points, key=lambda p: p[1])
    return MetricSummary(final, best, best_x, last_x)


def x_column(columns: Mapping[str, Sequence[Any]]) -> str | None:
    """The column that places each row: the epoch when each row has its own (one row per
    epoch), else the step when each row has its own, else None (the row number)."""
    for name in X_COLUMNS:
        values = columns.get(name)
        present = values is not None and None not in values and _numeric(values)
        if present and values is not None and len(set(values)) == len(values):
            return name
    return None


def table_curves(columns: Mapping[str, Sequence[Any]]) -> dict[str, Points]:
    """Each numeric column of a metrics table (``to_pydict()``) as points over its
    :func:`x_column`; missing and non-finite values are left out."""
    rows = max((len(v) for v in columns.values()), default=0)
    x = x_column(columns)
    xs: Sequence[Any] = columns[x] if x is not None else range(rows)
    out: dict[str, Points] = {}
    for name, values in columns.items():
        if name in X_COLUMNS or not _numeric(values):
            continue
        points = tuple(
            (float(x), float(y))
            for x, y in zip(xs, values, strict=False)
            if _number(x) and _number(y) and math.isfinite(y)
        )
        if points:
            out[name] = points
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(_number(v) for v in present)


def read_job_metrics(paths: JobPaths, stages: Sequence[str]) -> dict[str, Points]:
    """A job's Parquet metrics as curves (stages in ``stages`` order): a metric reported by
    one stage keeps its name, one reported by several is ``stage/name``. A stage whose parts
    cannot be read together is left out."""
    from blut.status.metrics import read_metrics

    by_stage: dict[str, dict[str, Points]] = {}
    for stage in stages:
        folder = paths.stage(stage).metrics
        if not folder.is_dir():
            continue
        try:
            curves = table_curves(read_metrics(folder).to_pydict())
        except (StatusError, OSError):
            continue
        if curves:
            by_stage[stage] = curves
    seen: dict[str, int] = {}
    for curves in by_stage.values():
        for name in curves:
            seen[name] = seen.get(name, 0) + 1
    return {
        (name if seen[name] == 1 else f"{stage}/{name}"): points
        for stage, curves in by_stage.items()
        for name, points in curves.items()
    }


@dataclass(frozen=True)
class SweepPoint:
    """One member of a sweep: its varied arguments and its metrics."""

    job_id: str
    params: dict[str, Any]
    """Varied key → this point's value (a key its args lack is absent)."""
    curves: dict[str, Points] = field(default_factory=dict)

    def value_text(self, key: str) -> str:
        """This point's value of ``key`` as typed (``-`` when its args lack the key)."""
        return format_value(self.params[key]) if key in self.params else "-"

    def order(self, key: str) -> tuple[int, float, str]:
        """Where this point goes when sorted by ``key`` (see :func:`value_order`)."""
        return value_order(self.params.get(key, _MISSING))

    def summary(self, metric: str) -> MetricSummary | None:
        """The final/best of ``metric`` (None when this point has not reported it)."""
        points = self.curves.get(metric)
        return summarize(points, direction(metric)) if points else None


@dataclass(frozen=True)
class Sweep:
    """The points of one sweep, in a stable order (by their varied values, then job id)."""

    id: str
    varied: tuple[str, ...]
    points: tuple[SweepPoint, ...]

    @property
    def names(self) -> dict[str, str]:
        """Short display names of the varied keys."""
        return short_names(self.varied)

    @property
    def metrics(self) -> list[str]:
        """Every compared metric some point reports (see :func:`compared_metrics`)."""
        return compared_metrics(n for p in self.points for n in p.curves)

    @property
    def primary(self) -> str | None:
        """The metric a point is judged by first (a validation loss when there is one)."""
        metrics = self.metrics
        return metrics[0] if metrics else None

    def point(self, job_id: str) -> SweepPoint | None:
        """The point of ``job_id``."""
        return next((p for p in self.points if p.job_id == job_id), None)

    def label(self, point: SweepPoint) -> str:
        """``lr=0.01 seed=1`` (the job id when nothing varies)."""
        names = self.names
        parts = [f"{names[k]}={point.value_text(k)}" for k in self.varied]
        return " ".join(parts) or point.job_id


def build_sweep(
    sweep_id: str,
    members: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Points]]],
) -> Sweep:
    """The sweep of ``members``: (job id, resolved args or None, metric curves) each."""
    args = [a or {} for _, a, _ in members]
    keys = varied_keys(args)
    flat = [flatten(a) for a in args]
    points = [
        SweepPoint(job_id, {k: f[k] for k in keys if k in f}, dict(curves))
        for (job_id, _, curves), f in zip(members, flat, strict=True)
    ]
    points.sort(key=lambda p: ([p.order(k) for k in keys], p.job_id))
    return Sweep(sweep_id, tuple(keys), tuple(points))
