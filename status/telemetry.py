"""Telemetry sinks: their names, what each needs, and where each writes (one place).

A job's sinks are chosen at submit (``--telemetry`` or the ``[telemetry]``
table of the config files, `blut.jobs.telemetry`) and recorded in job.json as
``telemetry: {"sinks": [...], "dir": ... | null}``; the stage programs read that
record (`read_record`) and feed the sinks (`blut.payload.telemetry`).

- ``jsonl``: the job's ``status.jsonl`` (always written; naming it changes nothing)
- ``console``: one line per record in the stage's log
- ``tensorboard``: event files under ``<root>/tensorboard/<job>/<stage>/``
- ``mlflow``: an MLflow file store ``<root>/mlruns`` (one run per stage)
- ``wandb``: offline wandb runs under ``<root>/wandb/``

``<root>`` is the record's ``dir`` when the config names one, else the job's
``telemetry/`` folder. Presence is checked with `importlib.util.find_spec`,
which imports nothing.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blut.status.layout import JobPaths

SINKS: dict[str, tuple[str, ...]] = {
    "jsonl": (),
    "console": (),
    "tensorboard": ("tensorboard", "torch"),
    "mlflow": ("mlflow",),
    "wandb": ("wandb",),
}
"""Sink → the top-level modules it needs (each optional sink is the extra of its name)."""
BUILTIN = frozenset({"jsonl", "console"})
"""Sinks that need no extra."""
TELEMETRY_DIR = "telemetry"
"""The folder under a job's dir that sinks write to when the config names no other place."""


class TelemetryError(ValueError):
    """A sink name that does not exist, or a record that is not one."""


def parse_sinks(names: str | Iterable[str]) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` (or a list of names) as sink names, in order, without repeats;
    an unknown one is a `TelemetryError` naming the known ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TelemetryError(f"telemetry sink names are strings, got {item!r}")
        name = item.strip().lower()
        if not name:
            continue
        if name not in SINKS:
            raise TelemetryError(
                f"unknown telemetry sink {item.strip()!r} (sinks: {', '.join(SINKS)})"
            )
        if name not in found:
            found.append(name)
    return tuple(found)


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(sink: str) -> list[str]:
    """The modules ``sink`` needs that this Python lacks."""
    return [m for m in SINKS[sink] if not _present(m)]


def install_hint(sink: str) -> str:
    """The pip command that brings ``sink``'s packages."""
    return f"pip install 'blut[{sink}]'"


@dataclass(frozen=True)
class Record:
    """A job's telemetry as job.json holds it: the sinks, and where they write (None: the
    job's ``telemetry/`` folder)."""

    sinks: tuple[str, ...] = ()
    dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job.json form."""
        return {"sinks": list(self.sinks), "dir": self.dir}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Record:
        """A record from job.json's ``telemetry`` value (None or missing: no sinks)."""
        if not data:
            return cls()
        where = data.get("dir")
        if where is not None and not isinstance(where, str):
            raise TelemetryError(f"telemetry dir must be a path, got {where!r}")
        return cls(parse_sinks(data.get("sinks") or ()), where)

    def root(self, job_dir: Path) -> Path:
        """Where the sinks of the job in ``job_dir`` write."""
        return Path(self.dir) if self.dir else job_dir / TELEMETRY_DIR

    def locations(self, job_dir: Path) -> dict[str, Path]:
        """Sink → the file or folder it writes for the job in ``job_dir``."""
        paths = JobPaths(job_dir)
        root = self.root(job_dir)
        where = {
            "jsonl": paths.status,
            "console": paths.stages_dir,  # each stage's log
            "tensorboard": tensorboard_dir(root, paths.id),
            "mlflow": mlflow_dir(root),
            "wandb": wandb_dir(root),
        }
        return {sink: where[sink] for sink in self.sinks}


def tensorboard_dir(root: Path, job_id: str, stage: str | None = None) -> Path:
    """A job's TensorBoard log dir (one run per stage below it)."""
    base = root / "tensorboard" / job_id
    return base / stage if stage else base


def mlflow_dir(root: Path) -> Path:
    """The MLflow file store (shared by every job that writes to ``root``)."""
    return root / "mlruns"


def wandb_dir(root: Path) -> Path:
    """Where offline wandb runs go."""
    return root / "wandb"


def read_record(job_dir: Path) -> Record:
    """The telemetry record of the job in ``job_dir`` (no job.json or no record: no sinks)."""
    try:
        data = json.loads(JobPaths(job_dir).spec.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Record()
    except (OSError, ValueError) as exc:
        raise TelemetryError(f"{JobPaths(job_dir).spec}: unreadable ({exc})") from exc
    value = data.get("telemetry") if isinstance(data, dict) else None
    if value is not None and not isinstance(value, dict):
        raise TelemetryError(f"{JobPaths(job_dir).spec}: telemetry must be an object")
    return Record.from_dict(value)
