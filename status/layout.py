"""The job folder: every file name under ``$BLUT_HOME/jobs/<id>/``, in one place.

::

    job.json        what was submitted (frozen)        plan.json   the stages (a typed DAG)
    args.json       a recipe's resolved arguments     status.jsonl the event stream (truth)
    env             the job's environment (0600)
    reserve         space held while the job is live, to record a full disk (status/reserve.py)
    summary.json    the job index entry (a cache of the fold of status.jsonl)
    driver.log      the executor's own output         driver.result how its unit ended
    stages/<s>/     log, result, launch.json, key.json, args.json, inputs.json,
                    events.jsonl + events.relayed (a cluster stage's own events, relayed),
                    staging/ (outputs before commit), metrics/ (Parquet parts), checkpoints/,
                    work/ (generate's resumable parts)

Everything that reads or writes these (the executor, the CLI, the cockpit, the
stage programs) names them through :class:`JobPaths` and :class:`StagePaths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

JOBS_DIR = "jobs"
"""Where jobs live under ``$BLUT_HOME``."""
LOCKS_DIR = "locks"
"""Machine-wide locks under ``$BLUT_HOME`` (GPU slots, cache keys, live executors)."""


def executor_lock(home: Path, job_id: str) -> Path:
    """The liveness lock a job's executor holds while it runs (free once it dies)."""
    return home / LOCKS_DIR / f"job-{job_id}.lock"


@dataclass(frozen=True)
class StagePaths:
    """The files of one stage under ``stages/<name>/``."""

    dir: Path

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.dir.name

    @cached_property
    def log(self) -> Path:
        """The stage process's stdout and stderr."""
        return self.dir / "log"

    @cached_property
    def result(self) -> Path:
        """How the stage's unit ended (written by its ExecStopPost helper)."""
        return self.dir / "result"

    @cached_property
    def events(self) -> Path:
        """``events.jsonl``: the events of a stage run on a cluster node, which its
        process appends to instead of the job's ``status.jsonl`` (one writer per file
        across hosts); the executor relays them (`blut.status.relay`)."""
        return self.dir / "events.jsonl"

    @cached_property
    def relayed(self) -> Path:
        """``events.relayed``: how far the executor relayed :attr:`events`."""
        return self.dir / "events.relayed"

    @cached_property
    def launch(self) -> Path:
        """``launch.json``: the key, GPUs and start time of the stage's current unit."""
        return self.dir / "launch.json"

    @cached_property
    def key(self) -> Path:
        """``key.json``: the stage's cache key parts (for `blut cache explain`)."""
        return self.dir / "key.json"

    @cached_property
    def args(self) -> Path:
        """``args.json``: the stage's own frozen arguments."""
        return self.dir / "args.json"

    @cached_property
    def inputs(self) -> Path:
        """``inputs.json``: one entry per upstream artifact (kind, path, hash)."""
        return self.dir / "inputs.json"

    @cached_property
    def staging(self) -> Path:
        """The only place a stage writes its outputs; committed to the cache on success."""
        return self.dir / "staging"

    @cached_property
    def metrics(self) -> Path:
        """Per-epoch Parquet metric parts."""
        return self.dir / "metrics"

    @cached_property
    def checkpoints(self) -> Path:
        """Checkpoints (outside staging, so a killed run can resume from them)."""
        return self.dir / "checkpoints"

    @cached_property
    def work(self) -> Path:
        """Resumable work that is no checkpoint (generate's per-sample parts)."""
        return self.dir / "work"


@dataclass(frozen=True)
class JobPaths:
    """The files of one job folder."""

    dir: Path

    @property
    def id(self) -> str:
        """The job id (the folder's name)."""
        return self.dir.name

    @cached_property
    def spec(self) -> Path:
        """``job.json``: what was submitted."""
        return self.dir / "job.json"

    @cached_property
    def status(self) -> Path:
        """``status.jsonl``: the event stream, the source of truth."""
        return self.dir / "status.jsonl"

    @cached_property
    def summary(self) -> Path:
        """``summary.json``: the job's index entry, rebuilt from the stream when in doubt."""
        return self.dir / "summary.json"

    @cached_property
    def plan(self) -> Path:
        """``plan.json``: the stages and their order."""
        return self.dir / "plan.json"

    @cached_property
    def args(self) -> Path:
        """``args.json``: a recipe job's resolved arguments."""
        return self.dir / "args.json"

    @cached_property
    def env(self) -> Path:
        """``env``: the job's environment (0600), which its units read (EnvironmentFile=)."""
        return self.dir / "env"

    @cached_property
    def reserve(self) -> Path:
        """Space held while the job is live, released to record that the disk filled up."""
        return self.dir / "reserve"

    @cached_property
    def driver_log(self) -> Path:
        """The executor's own output."""
        return self.dir / "driver.log"

    @cached_property
    def driver_result(self) -> Path:
        """How the executor's unit ended."""
        return self.dir / "driver.result"

    @cached_property
    def lock(self) -> Path:
        """Held by whoever records the job's outcome (and by a submit until it started)."""
        return self.dir / ".lock"

    @cached_property
    def stages_dir(self) -> Path:
        """``stages/``."""
        return self.dir / "stages"

    def stage(self, name: str) -> StagePaths:
        """The files of stage ``name``."""
        return StagePaths(self.stages_dir / name)


def job_paths(home: Path, job_id: str) -> JobPaths:
    """The folder of ``job_id`` under ``home`` (``$BLUT_HOME``)."""
    return JobPaths(home / JOBS_DIR / job_id)
