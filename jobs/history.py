"""Ceilings learned from history: the peak memory of every successful stage run.

Nothing new is stored: each job's index (`blut.status.summary`) holds every stage's
state and peak memory, its plan names the program each stage ran, and its spec the
bytes of the external inputs it was submitted with. A run is grouped by program
(``payload train``, or a command's argv) and input size class (decades of bytes;
``built-in`` for the packaged data). The policy's learned ceiling for a stage is
the highest peak of its group × the margin, once the group has enough runs — as a
Kubernetes VPA recommender does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from blut.jobs.errors import JobsError
from blut.jobs.external import stage_paths
from blut.jobs.plan import Plan
from blut.jobs.policy import MIB, Policy
from blut.jobs.quantities import format_size
from blut.jobs.stagedef import StageDef
from blut.jobs.store import JobStore
from blut.status.summary import current_view

_SI = ("", "k", "M", "G", "T", "P", "E")


def program_name(stage: StageDef) -> str:
    """What ``stage`` runs, independent of the interpreter: ``payload train`` or the argv."""
    if stage.is_payload and len(stage.argv) > 3:
        return f"payload {stage.argv[3]}"
    return " ".join(stage.argv)[:200]


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def input_bytes(plan: Plan, cwd: Path, objects: Path | None = None) -> int:
    """The bytes of every external input (file or folder) the plan's stages name (job
    outputs among them when ``objects``, the cache's objects folder, is given)."""
    paths = {p for s in plan.stages.values() for p in stage_paths(s, cwd, objects).values()}
    return sum(_tree_bytes(p) for p in paths if p.exists())


def size_class(size: int | None) -> str:
    """The decade of bytes ``size`` falls in (``1M-10M``); ``built-in`` for 0, ``unknown``
    for a job submitted before sizes were recorded."""
    if size is None:
        return "unknown"
    if size <= 0:
        return "built-in"
    decade = int(math.log10(size))
    return f"{_si(decade)}-{_si(decade + 1)}"


def _si(decade: int) -> str:
    prefix, rest = divmod(decade, 3)
    return f"{10**rest}{_SI[min(prefix, len(_SI) - 1)]}"


@dataclass(frozen=True)
class Sample:
    """One successful stage run: its group and peak memory."""

    program: str
    size_class: str
    peak: int
    job: str


def samples(store: JobStore) -> list[Sample]:
    """Every succeeded stage run with a recorded peak, oldest job first."""
    out = []
    for job_id in store.ids():
        view = current_view(store.paths(job_id), job_id, save=False)
        peaks = {
            name: s.peak_memory
            for name, s in view.stages.items()
            if s.state == "succeeded" and s.peak_memory
        }
        if not peaks:
            continue
        try:
            job = store.load(store.paths(job_id).dir)
            plan = Plan.load(job.plan_path)
        except JobsError:
            continue
        group = size_class(job.spec.input_bytes)
        for name, peak in peaks.items():
            if name in plan.stages:
                out.append(Sample(program_name(plan.stages[name]), group, peak, job_id))
    return out


@dataclass(frozen=True)
class Suggestion:
    """What the policy would set as a stage's ceiling, and why."""

    stage: str
    program: str
    size_class: str
    runs: int
    max_peak: int | None
    ceiling: int | None
    """None: too few runs to learn from."""
    current: int | None

    def why(self, policy: Policy) -> str:
        """One line: the runs and peak it rests on."""
        group = f"{self.program} ({self.size_class} inputs)"
        if self.max_peak is None or self.ceiling is None:
            need = policy.ceiling_min_runs
            return f"{self.runs} runs of {group} ({need} needed): keeps the recipe's ceiling"
        return (
            f"{self.runs} runs of {group}, max peak {format_size(self.max_peak)} "
            f"× {policy.ceiling_margin:g}"
        )


def learned_ceiling(policy: Policy, peaks: list[int]) -> int | None:
    """max(peaks) × margin, rounded up to a MiB and at least the floor; None with too few."""
    if len(peaks) < policy.ceiling_min_runs:
        return None
    wanted = math.ceil(max(peaks) * policy.ceiling_margin / MIB) * MIB
    return max(wanted, policy.ceiling_floor)


def suggest(policy: Policy, plan: Plan, group: str, history: Iterable[Sample]) -> list[Suggestion]:
    """Per stage of ``plan`` (submitted with inputs of size class ``group``): the ceiling
    learned from ``history``."""
    by_key: dict[tuple[str, str], list[int]] = {}
    for sample in history:
        by_key.setdefault((sample.program, sample.size_class), []).append(sample.peak)
    out = []
    for name in plan.order():
        stage = plan.stages[name]
        program = program_name(stage)
        peaks = by_key.get((program, group), [])
        out.append(
            Suggestion(
                stage=name,
                program=program,
                size_class=group,
                runs=len(peaks),
                max_peak=max(peaks) if peaks else None,
                ceiling=learned_ceiling(policy, peaks),
                current=stage.memory_max,
            )
        )
    return out


@dataclass(frozen=True)
class CeilingOffer:
    """The ceiling offered to a stage that ran out of memory, and why."""

    stage: str
    ceiling: int
    """Bytes, a whole number of MiB."""
    why: str

    @property
    def value(self) -> str:
        """The ceiling as typed in a form or on the command line: ``450M``."""
        return f"{self.ceiling // MIB}M"

    @property
    def setting(self) -> str:
        """``train.memory_max=450M`` (what ``--set`` takes)."""
        return f"{self.stage}.memory_max={self.value}"

    def __str__(self) -> str:
        return f"{self.setting}: {self.why}"


def after_oom(policy: Policy, failed: Suggestion, peak: int | None) -> CeilingOffer:
    """The ceiling to offer a stage that ran out of memory at ``peak``, and why: the larger
    of ``peak`` (the bump a VPA gives after an OOM) and the highest peak of the successful
    runs of its program, × the margin, at least the floor."""
    ran_out = peak or failed.current or 0
    highest = max(ran_out, failed.max_peak or 0)
    ceiling = max(math.ceil(highest * policy.ceiling_margin / MIB) * MIB, policy.ceiling_floor)
    if failed.max_peak is None:
        history = f"no successful runs of {failed.program} yet"
    else:
        history = f"max peak {format_size(failed.max_peak)} in {failed.runs} successful runs"
    why = f"ran out at {format_size(ran_out)}, {history}; the larger × {policy.ceiling_margin:g}"
    return CeilingOffer(failed.stage, ceiling, why)
