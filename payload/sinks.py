"""The telemetry sinks a stage feeds (through `blut.payload.telemetry.Hub`).

Each writes where `blut.status.telemetry` says (the job's ``telemetry/`` folder
unless the config named another place) and imports its library in `open`,
which runs on the hub's thread: a stage never waits for torch, mlflow or wandb
to load. The names are `blut.status.telemetry.SINKS`; ``jsonl`` is the job's
status.jsonl, which the context writes anyway, so it has no class here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blut.payload.telemetry import Sink
from blut.status.events import Checkpoint, Event, Metric, StageDone, StageFailed, StageStarted
from blut.status.telemetry import Record, mlflow_dir, tensorboard_dir, wandb_dir

EXPERIMENT = "blut"
"""The MLflow experiment and wandb project every stage run goes to."""


@dataclass
class RunInfo:
    """What every sink needs to name its run."""

    job: str
    stage: str
    root: Path
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        """``<job>/<stage>``."""
        return f"{self.job}/{self.stage}"


def _x(event: Metric) -> int:
    """The x of a metric: its step, else its epoch, else 0."""
    if event.step is not None:
        return int(event.step)
    return int(event.epoch) if event.epoch is not None else 0


def _end(event: StageDone | StageFailed) -> str:
    seconds = f"{event.seconds:.1f} s" if event.seconds is not None else "?"
    if isinstance(event, StageDone):
        return f"done in {seconds}"
    return f"failed after {seconds} ({event.detail})"


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested args as ``a.b`` → text (what MLflow params and TensorBoard text take)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


class ConsoleSink:
    """One line per record in the stage's log (its stdout)."""

    name, lazy = "console", False

    def __init__(self, info: RunInfo) -> None:
        self.info = info

    def open(self) -> None:
        """Nothing to open."""

    def write(self, event: Event) -> None:
        """A ``telemetry: ...`` line."""
        stage = self.info.stage
        if isinstance(event, StageStarted):
            line = f"stage {stage} started"
        elif isinstance(event, StageDone | StageFailed):
            line = f"stage {stage} {_end(event)}"
        elif isinstance(event, Metric):
            where = " ".join(
                f"{k} {v}"
                for k, v in (("step", event.step), ("epoch", event.epoch))
                if v is not None
            )
            values = " ".join(f"{k}={v:.6g}" for k, v in event.values.items())
            line = f"{where} {values}".strip()
        elif isinstance(event, Checkpoint):
            line = f"checkpoint step {event.step}: {event.path}"
        else:
            return
        sys.stdout.write(f"telemetry: {line}\n")  # one write: no interleaving with the stage
        sys.stdout.flush()

    def close(self) -> None:
        """Nothing to close."""


class TensorBoardSink:
    """Scalars (x: the step) and text (start, checkpoints, end) in TensorBoard event files,
    one run per stage under ``<root>/tensorboard/<job>/<stage>``."""

    name, lazy = "tensorboard", True

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.writer: Any = None

    def open(self) -> None:
        """Create the event file writer (imports torch.utils.tensorboard)."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(tensorboard_dir(self.info.root, self.info.job, self.info.stage))
        )

    def write(self, event: Event) -> None:
        """One scalar per metric value; text for the rest."""
        w = self.writer
        if isinstance(event, Metric):
            for key, value in event.values.items():
                w.add_scalar(key, value, _x(event), walltime=event.ts)
        elif isinstance(event, StageStarted):
            params = "\n".join(f"    {k} = {v}" for k, v in flat_params(self.info.params).items())
            w.add_text("stage", f"{self.info.run_name} started\n\n{params}", 0, walltime=event.ts)
        elif isinstance(event, Checkpoint):
            w.add_text("checkpoint", event.path, event.step or 0, walltime=event.ts)
        elif isinstance(event, StageDone | StageFailed):
            if event.seconds is not None:
                w.add_scalar("stage/seconds", event.seconds, 0, walltime=event.ts)
            w.add_text("stage", f"{self.info.run_name} {_end(event)}", 1, walltime=event.ts)
        w.flush()

    def close(self) -> None:
        """Close the event file."""
        self.writer.close()


class MlflowSink:
    """One MLflow run per stage in the file store ``<root>/mlruns`` (experiment ``blut``):
    the args as params, metrics with their step, the checkpoint and the outcome as tags."""

    name, lazy = "mlflow", True

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.client: Any = None
        self.run_id = ""

    def open(self) -> None:
        """Create the run (imports mlflow)."""
        # MLflow 3 keeps its file store only for those who ask for it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        store = mlflow_dir(self.info.root)
        store.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=store.as_uri())
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is None:
            try:
                experiment = self.client.create_experiment(EXPERIMENT)
            except MlflowException:  # another stage made it meanwhile
                experiment = self.client.get_experiment_by_name(EXPERIMENT).experiment_id
        else:
            experiment = found.experiment_id
        tags = {"blut.job": self.info.job, "blut.stage": self.info.stage}
        run = self.client.create_run(experiment, run_name=self.info.run_name, tags=tags)
        self.run_id = run.info.run_id

    def write(self, event: Event) -> None:
        """Metrics, params (at the start), tags (checkpoints, the outcome)."""
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param

        client, run = self.client, self.run_id
        if isinstance(event, StageStarted):
            params = [Param(k, v[:6000]) for k, v in flat_params(self.info.params).items()]
            for i in range(0, len(params), 100):  # MLflow takes 100 params per batch
                client.log_batch(run, params=params[i : i + 100])
        elif isinstance(event, Metric):
            ms = int(event.ts * 1000)
            metrics = [MlflowMetric(k, float(v), ms, _x(event)) for k, v in event.values.items()]
            client.log_batch(run, metrics=metrics)
        elif isinstance(event, Checkpoint):
            client.set_tag(run, "blut.checkpoint", event.path)
            client.log_metric(run, "checkpoint_step", float(event.step or 0), step=event.step or 0)
        elif isinstance(event, StageDone | StageFailed):
            if event.seconds is not None:
                client.log_metric(run, "stage_seconds", event.seconds)
            if isinstance(event, StageFailed):
                client.set_tag(run, "blut.error", event.detail[:5000])
            status = "FINISHED" if isinstance(event, StageDone) else "FAILED"
            client.set_terminated(run, status)

    def close(self) -> None:
        """Nothing to flush: every call was written through."""


class WandbSink:
    """One offline wandb run per stage under ``<root>/wandb`` (``WANDB_MODE`` may say
    otherwise): the args as config, metrics at their step, the rest in the summary."""

    name, lazy = "wandb", True

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.run: Any = None
        self.code = 0

    def open(self) -> None:
        """Start the run (imports wandb; starts its service process)."""
        import wandb  # type: ignore[import-not-found, unused-ignore]

        where = wandb_dir(self.info.root)
        where.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
        self.run = wandb.init(
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type, unused-ignore]
            dir=str(where.parent),  # wandb adds the "wandb" folder itself
            project=EXPERIMENT,
            group=self.info.job,
            name=self.info.run_name,
            config=dict(self.info.params),
            settings=settings,
            reinit="create_new",
        )

    def write(self, event: Event) -> None:
        """Metrics to the history, the rest to the summary."""
        run = self.run
        if isinstance(event, Metric):
            step = event.step
            values: dict[str, Any] = dict(event.values)
            if event.epoch is not None:
                values["epoch"] = event.epoch
            if step is not None and step >= run.step:
                run.log(values, step=int(step))
            else:  # wandb drops a step below its current one: log at the current step
                run.log(values)
        elif isinstance(event, Checkpoint):
            run.summary["checkpoint"] = event.path
            run.summary["checkpoint_step"] = event.step
        elif isinstance(event, StageDone | StageFailed):
            run.summary["stage_seconds"] = event.seconds
            if isinstance(event, StageFailed):
                run.summary["error"] = event.detail
                self.code = event.exit_code or 1

    def close(self) -> None:
        """Finish the run (writes its last records)."""
        self.run.finish(exit_code=self.code)


FACTORIES: dict[str, type[ConsoleSink | TensorBoardSink | MlflowSink | WandbSink]] = {
    "console": ConsoleSink,
    "tensorboard": TensorBoardSink,
    "mlflow": MlflowSink,
    "wandb": WandbSink,
}


def build(record: Record, info: RunInfo) -> list[Sink]:
    """The sinks ``record`` names (``jsonl`` needs none: status.jsonl is always written)."""
    return [FACTORIES[name](info) for name in record.sinks if name in FACTORIES]
