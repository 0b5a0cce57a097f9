"""The job driver: ``python -m blut.jobs.driver JOB_DIR``, run as its own unit.

It launches the job's stage as a contained unit, samples its memory, watches
for cancel requests, and records the outcome in status.jsonl. Because it runs
detached from the CLI (unit ``blut-<job>``), a job survives SSH logout and a
killed ``blut`` process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from blut.containment.cgroup import unapplied_limit
from blut.containment.errors import ContainmentError
from blut.containment.launcher import Launcher
from blut.containment.select import launcher_for
from blut.containment.spec import Handle, Outcome, UnitSpec
from blut.jobs.outcomes import outcome_events
from blut.jobs.store import Job, JobStore
from blut.status.events import (
    CancelRequested,
    JobFailed,
    JobStarted,
    Log,
    Resources,
    StageFailed,
    StageStarted,
)
from blut.status.tailer import Tailer
from blut.status.writer import EventWriter

SAMPLE_EVERY = 1.0
# Variables systemd sets for the driver's own unit; a stage unit gets its own.
_UNIT_VARS = ("INVOCATION_ID", "JOURNAL_STREAM", "MANAGERPID", "SYSTEMD_EXEC_PID", "NOTIFY_SOCKET")


def stage_env(job: Job, stage: str, contained: bool) -> dict[str, str]:
    """The environment of a stage: the submitter's, plus where to report."""
    env = {k: v for k, v in os.environ.items() if k not in _UNIT_VARS}
    env.update(
        BLUT_JOB_DIR=str(job.dir),
        BLUT_JOB_ID=job.id,
        BLUT_STAGE_NAME=stage,
        BLUT_CONTAINED="1" if contained else "0",
        PYTHONUNBUFFERED="1",
    )
    return env


class Driver:
    """Runs one job's stages in order and records every outcome."""

    def __init__(self, job: Job, launcher: Launcher) -> None:
        self.job = job
        self.launcher = launcher
        self.events = EventWriter(job.status_path)
        self.cancel = False
        self._cancel_watch = Tailer(job.status_path)

    def _cancel_requested(self) -> bool:
        if not self.cancel:
            self.cancel = any(isinstance(e, CancelRequested) for e in self._cancel_watch.read())
        return self.cancel

    def run(self) -> int:
        """Drive the job to an end; 0 when it succeeded."""
        job = self.job
        self.events.emit(
            JobStarted(job=job.id, driver=job.spec.driver_unit, launcher=self.launcher.kind)
        )
        for stage in job.spec.stages:
            if not self.run_stage(stage):
                return 1
        return 0

    def run_stage(self, stage: str) -> bool:
        """Launch, supervise and record one stage; True when it succeeded."""
        job, spec = self.job, self.job.spec
        contained = self.launcher.kind == "systemd"
        job.stage_dir(stage)
        unit = UnitSpec(
            name=spec.stage_unit(stage),
            argv=spec.argv,
            log_path=job.log_path(stage),
            result_path=job.result_path(stage),
            env=stage_env(job, stage, contained),
            cwd=Path(spec.cwd),
            memory_max=spec.memory_max,
            timeout=spec.timeout,
            description=f"blut job {job.id} ({spec.name}) stage {stage}",
        )
        if self._cancel_requested():
            return self._record(stage, Outcome("cancelled"), None, None)
        try:
            handle = self.launcher.launch(unit)
        except ContainmentError as exc:
            with job.lock():
                self.events.emit(
                    StageFailed(job=job.id, stage=stage, reason="error", detail=str(exc))
                )
                self.events.emit(JobFailed(job=job.id, reason="error", detail=str(exc)))
            return False
        started = time.monotonic()
        self.events.emit(
            StageStarted(
                job=job.id,
                stage=stage,
                unit=unit.name,
                launcher=self.launcher.kind,
                memory_max=spec.memory_max,
                contained=contained,
                log=str(unit.log_path),
            )
        )
        self._check_limit(handle, stage)
        outcome, peak = self._supervise(handle, stage)
        return self._record(stage, outcome, time.monotonic() - started, peak)

    def _check_limit(self, handle: Handle, stage: str) -> None:
        requested = self.job.spec.memory_max
        if requested is None or self.launcher.kind != "systemd":
            return
        msg = unapplied_limit(handle.name, requested, self.launcher.memory_limit(handle))
        if msg is None:
            return
        print(f"blut: warning: {msg}", file=sys.stderr)
        self.events.emit(Log(job=self.job.id, stage=stage, level="warning", msg=msg))

    def _supervise(self, handle: Handle, stage: str) -> tuple[Outcome, int | None]:
        peak: int | None = None
        last_sample: int | None = None
        stopping = False
        while True:
            outcome = self.launcher.wait(handle, timeout=SAMPLE_EVERY)
            if outcome is not None:
                return outcome, peak
            if self._cancel_requested() and not stopping:
                self.launcher.stop(handle)
                stopping = True
            current = self.launcher.state(handle).memory_current
            if current is not None:
                peak = max(peak or 0, current)
                if last_sample is None or abs(current - last_sample) > 1 << 20:
                    last_sample = current
                    self.events.emit(
                        Resources(
                            job=self.job.id,
                            stage=stage,
                            memory_bytes=current,
                            memory_max=self.job.spec.memory_max,
                        )
                    )

    def _record(
        self, stage: str, outcome: Outcome, seconds: float | None, peak: int | None
    ) -> bool:
        with self.job.lock():
            for event in outcome_events(
                self.job.id,
                stage,
                outcome,
                cancelled=self._cancel_requested() and not outcome.ok,
                seconds=seconds,
                peak=peak,
            ):
                self.events.emit(event)
        return outcome.ok


def main(argv: list[str] | None = None) -> int:
    """Entry point of the driver unit."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m blut.jobs.driver JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    job = JobStore(job_dir.parent.parent).load(job_dir)
    driver = Driver(job, launcher_for(job.spec.launcher))

    def on_term(signum: int, frame: FrameType | None) -> None:
        driver.cancel = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        return driver.run()
    finally:
        driver.launcher.close()


if __name__ == "__main__":
    sys.exit(main())
