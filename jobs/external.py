"""External inputs: recipe args that name a file or directory (a dataset, a model dir).

A payload schema marks such a property ``"x-blut-input": true``, or
``{"builtin": [...]}`` listing the values that name a built-in set instead of a
path (``stocks``, ``toy``); an empty string names nothing. At submit each path
is resolved against the submitter's working directory and recorded absolute in
the args; a stage's cache key then holds the content hash of what each names
(`KeyParts.sources`), so editing a file in place, or naming other data by the
same relative path elsewhere, is a miss.

A mark that lists ``kinds`` (``{"kinds": ["lm"]}``) also takes a job's output
of those kinds: ``job:<id>[:stage]`` or ``artifact:<hash>``, recorded as
``artifact:<hash>`` (see `blut.jobs.outputs`). The stage is handed the
object's folder, or, for an arg whose kinds are all tables (`TABLE_KINDS`: a
data stage's ``source``), the one Parquet file in it (`table_file`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blut.jobs.artifact import TABLE_KINDS
from blut.jobs.errors import JobsError
from blut.jobs.stagedef import StageDef

MARK = "x-blut-input"
JOB = "job:"
ARTIFACT = "artifact:"
HASH = re.compile(r"[0-9a-f]{64}")


def is_reference(value: object) -> bool:
    """Whether an arg value names a job output rather than a path."""
    return isinstance(value, str) and value.startswith((JOB, ARTIFACT))


def reference_hash(value: object) -> str | None:
    """The hash a canonical ``artifact:<hash>`` value names (None for anything else)."""
    if isinstance(value, str) and value.startswith(ARTIFACT):
        digest = value[len(ARTIFACT) :]
        if HASH.fullmatch(digest):
            return digest
    return None


def table_file(folder: Path) -> Path:
    """The one Parquet table of a data artifact's folder (its manifest aside); a
    `JobsError` when it holds none or several."""
    found = sorted(p for p in folder.glob("*.parquet") if p.is_file())
    if len(found) != 1:
        raise JobsError(f"{folder}: expected one Parquet table, found {len(found)}")
    return found[0]


def takes_table(kinds: tuple[str, ...]) -> bool:
    """Whether an arg taking job outputs of ``kinds`` names a data file (all tables)."""
    return bool(kinds) and all(k in TABLE_KINDS for k in kinds)


def launch_args(stage: StageDef, objects: Path) -> dict[str, Any]:
    """``stage``'s args with each canonical ``artifact:<hash>`` replaced by its object's
    path, or by the object's one table for an arg that names a data file (`takes_table`)."""
    kinds = input_kinds(stage.args_schema)
    out = dict(stage.args)
    for name, value in stage.args.items():
        digest = reference_hash(value)
        if digest is not None:
            folder = objects / digest
            out[name] = str(table_file(folder) if takes_table(kinds.get(name, ())) else folder)
    return out


def input_args(section: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The args of a stage's schema ``section`` that name external inputs, with their built-ins."""
    out: dict[str, frozenset[str]] = {}
    for name, prop in section.get("properties", {}).items():
        mark = prop.get(MARK) if isinstance(prop, Mapping) else None
        if mark is True:
            out[name] = frozenset()
        elif isinstance(mark, Mapping):
            out[name] = frozenset(mark.get("builtin", ()))
    return out


def input_kinds(section: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The args of ``section`` that also take job outputs, with the kinds they take."""
    out: dict[str, tuple[str, ...]] = {}
    for name, prop in section.get("properties", {}).items():
        mark = prop.get(MARK) if isinstance(prop, Mapping) else None
        if isinstance(mark, Mapping) and mark.get("kinds"):
            out[name] = tuple(mark["kinds"])
    return out


def _named(value: Any, builtin: frozenset[str]) -> str | None:
    """``value`` when it names a path (not a built-in, not empty)."""
    return value if isinstance(value, str) and value and value not in builtin else None


def stage_paths(stage: StageDef, cwd: Path, objects: Path | None = None) -> dict[str, Path]:
    """Arg name → the path it names, for each external input of ``stage`` (absolute since
    submit; a relative one, from a job submitted before, is the job's ``cwd``'s; a job
    output, the object under ``objects`` — left out when that is None)."""
    out = {}
    for name, builtin in input_args(stage.args_schema).items():
        value = _named(stage.args.get(name), builtin)
        digest = reference_hash(value)
        if digest is not None:
            if objects is not None:
                out[name] = objects / digest
        elif value is not None:
            out[name] = cwd / value
    return out


def resolve_inputs(
    schema: Mapping[str, Any], args: Mapping[str, Any], cwd: Path, home: Path | None = None
) -> dict[str, Any]:
    """``args`` with every external input made absolute against ``cwd``, and each job
    output it names (``job:…``, ``artifact:…``) made ``artifact:<hash>`` from ``home``'s cache.

    A path that does not exist is a `ConfigError` line naming the arg, the path
    and, for a relative one, the directory it was resolved in; so is a bad reference.
    """
    from blut.jobs.config import ConfigError
    from blut.jobs.errors import UsageError
    from blut.jobs.outputs import resolve_reference

    out = copy.deepcopy(dict(args))
    problems = []
    for section, section_schema in schema.get("properties", {}).items():
        values = out.get(section)
        if not isinstance(values, dict):
            continue
        kinds = input_kinds(section_schema)
        for name, builtin in input_args(section_schema).items():
            value = _named(values.get(name), builtin)
            if value is None:
                continue
            arg = f"{section}.{name}"
            try:
                if home is None and is_reference(value):
                    raise UsageError(f"{arg}: {value}: no blut home to find job outputs in")
                ref = (
                    None
                    if home is None
                    else resolve_reference(home, arg, value, kinds.get(name, ()), cwd)
                )
            except UsageError as exc:
                problems.append(str(exc))
                continue
            if ref is not None:
                values[name] = ref
                continue
            given = Path(value).expanduser()
            path = (cwd / given).resolve()
            if not path.exists():
                where = "" if given.is_absolute() else f" (relative to {cwd})"
                problems.append(f"{section}.{name}: no such file or directory: {value}{where}")
                continue
            values[name] = str(path)
    if problems:
        raise ConfigError(problems)
    return out
