"""Retention: how many checkpoints a succeeded stage keeps, and which job paths are in use.

A stage's checkpoints (``stages/<s>/checkpoints/``, `blut.status.checkpoints`)
are there so a killed run can resume. Once the stage succeeded and its output
is committed to the cache, only a re-run of it needs them (after its cache
entry was pruned, say): it resumes from the newest checkpoint and publishes at
once. So the executor trims a succeeded stage's checkpoints to the newest
``checkpoints`` (default 1; 0 keeps none, and a re-run starts over). Failed,
cancelled and running stages are never trimmed.

The policy is the ``[retention]`` table of the config files (user, then
project ``blut.toml``), fixed in job.json when a recipe job is submitted::

    [retention]
    checkpoints = 1    # per succeeded stage; 0: none

Nothing is removed that something else still names: a path under a job folder
that a cache entry's args name (an output that refers to its input, such as a
``model.path`` pointing at another job's checkpoint), or that the args of an
unfinished job name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut.jobs.configfiles import config_paths, known_table
from blut.jobs.errors import UsageError
from blut.jobs.store import Job, JobStore
from blut.status.checkpoints import Trimmed, trim
from blut.status.summary import current_view

if TYPE_CHECKING:
    from blut.jobs.cache import Cache

DEFAULT_CHECKPOINTS = 1
"""Checkpoints a succeeded stage keeps when no config says otherwise."""
KEYS = ("checkpoints",)


@dataclass(frozen=True)
class Retention:
    """What finished stages keep: ``checkpoints`` newest checkpoints per succeeded stage."""

    checkpoints: int = DEFAULT_CHECKPOINTS


def retention_policy(cwd: Path | None = None) -> Retention:
    """The ``[retention]`` tables of the user and project config files (later ones win);
    a bad key or value is a `UsageError` naming the file."""
    found = Retention()
    for path in config_paths(cwd):
        section = known_table(path, "retention", KEYS)
        value = section.get("checkpoints", found.checkpoints)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(
                f"{path}: [retention] checkpoints must be a whole number, 0 or more "
                "(checkpoints kept per succeeded stage; 0: none)"
            )
        found = Retention(checkpoints=value)
    return found


def kept_checkpoints(job: Job) -> int:
    """How many checkpoints ``job``'s succeeded stages keep (the default for jobs submitted
    before the policy was recorded)."""
    kept = job.spec.retain_checkpoints
    return DEFAULT_CHECKPOINTS if kept is None else kept


def named_paths(value: Any, under: Path) -> set[Path]:
    """Every string in ``value`` (nested lists and dicts) naming a path under ``under``."""
    found: set[Path] = set()
    if isinstance(value, str):
        if value.startswith("/"):
            path = Path(value).resolve()
            if under in path.parents:
                found.add(path)
    elif isinstance(value, dict):
        for item in value.values():
            found |= named_paths(item, under)
    elif isinstance(value, list):
        for item in value:
            found |= named_paths(item, under)
    return found


def paths_in_use(store: JobStore, cache: Cache | None) -> set[Path]:
    """Paths under the job folders that a cache entry's args (``cache`` None: there is no
    index), or an unfinished job's args, name (resolved): what retention never removes."""
    import json

    under = store.jobs_dir.resolve()
    found: set[Path] = set()
    for entry in cache.entries() if cache is not None else []:
        found |= named_paths(dict(entry.parts.args), under)
    for job_id in store.ids():
        paths = store.paths(job_id)
        if current_view(paths, job_id).terminal:
            continue
        try:
            found |= named_paths(json.loads(paths.args.read_text()), under)
        except (OSError, ValueError):
            continue
    return found


def trim_stage(
    job: Job, stage: str, keep: int, in_use: Callable[[], Iterable[Path]]
) -> Trimmed | None:
    """Trim the checkpoints of ``job``'s succeeded stage ``stage`` to the newest ``keep``
    (see the module docstring), leaving the paths ``in_use()`` names (asked for only when
    there are checkpoints); None when the stage has none."""
    folder = job.paths.stage(stage).checkpoints
    if not folder.is_dir():
        return None
    return trim(folder.resolve(), keep, {p.resolve() for p in in_use()})


def describe(done: Trimmed, keep: int) -> str:
    """What a trim did, for the stage's log: ``checkpoints after success (keep 1):
    kept epoch-0005; removed epoch-0003, epoch-0004 (freed 18.2 MiB)``."""
    from blut.jobs.quantities import format_size

    gone = sorted({p.name.split(".")[0] for p in done.removed})
    shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
    text = f"checkpoints after success (keep {keep}): kept {', '.join(done.kept) or 'none'}"
    text += f"; removed {shown or 'nothing'} (freed {format_size(done.freed)})"
    if done.protected:
        text += f"; {len(done.protected)} left because the cache or a running job names them"
    return text
