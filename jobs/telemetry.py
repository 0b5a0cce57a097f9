"""Which telemetry sinks a job gets: ``--telemetry`` over the ``[telemetry]`` config table.

The user and project config files (`blut.jobs.configfiles`) may hold::

    [telemetry]
    sinks = ["tensorboard", "mlflow"]   # or "tensorboard,mlflow"
    dir = "/data/runs"   # optional: where they write (default: the job folder;
                        # a relative path is relative to the config file)

``--telemetry NAMES`` on a submitting command replaces ``sinks`` (``--telemetry
""`` turns them off). A sink whose packages this Python lacks is a `UsageError`
before anything is submitted. The result is recorded in job.json, so the stage
programs never read config (`blut.status.telemetry`).
"""

from __future__ import annotations

from pathlib import Path

from blut.jobs.configfiles import config_paths, known_table
from blut.jobs.errors import UsageError
from blut.status.telemetry import (
    Record,
    TelemetryError,
    install_hint,
    missing_modules,
    parse_sinks,
)

KEYS = ("sinks", "dir")


def telemetry_config(cwd: Path | None = None, sinks: str | None = None) -> Record:
    """The telemetry of a job submitted from ``cwd``: the ``[telemetry]`` tables of the user
    and project config files (later ones win), ``sinks`` (``--telemetry``) over them.

    A bad table, an unknown sink or one whose packages are missing is a `UsageError`.
    """
    found = Record()
    workdir = cwd or Path.cwd()
    for path in config_paths(workdir):
        section = known_table(path, "telemetry", KEYS)
        names, where = section.get("sinks", found.sinks), section.get("dir", found.dir)
        if not isinstance(names, str | list | tuple):
            raise UsageError(f"{path}: [telemetry] sinks must be a list of sink names")
        if where is not None and not (isinstance(where, str) and where):
            raise UsageError(f"{path}: [telemetry] dir must be a path")
        if "dir" in section and where is not None:  # relative to the file that names it
            where = str((path.parent / Path(where).expanduser()).resolve())
        try:
            found = Record(parse_sinks(names), where)
        except TelemetryError as exc:
            raise UsageError(f"{path}: [telemetry] {exc}") from None
    if sinks is not None:
        try:
            found = Record(parse_sinks(sinks), found.dir)
        except TelemetryError as exc:
            raise UsageError(f"--telemetry: {exc}") from None
    check_available(found)
    return found


def check_available(record: Record) -> None:
    """A `UsageError` naming the first sink of ``record`` whose packages are missing."""
    for sink in record.sinks:
        missing = missing_modules(sink)
        if missing:
            raise UsageError(
                f"telemetry sink {sink} needs {', '.join(missing)}, which is not installed: "
                f"{install_hint(sink)}"
            )
