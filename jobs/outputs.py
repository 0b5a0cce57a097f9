"""A job's outputs as first-class references: list them, name them in recipe args, export them.

`job_outputs` lists each cached stage output of a job (path in the cache, kind,
hash), `telemetry_outputs` where its telemetry sinks write. A recipe arg that takes a model or dataset (an ``x-blut-input`` whose
mark lists ``kinds``) also accepts ``job:<id>[:stage]`` (the stage defaults to
the job's last one whose output is of a wanted kind) or ``artifact:<hash or
unique prefix>`` (a bare 64-hex hash too, when no such path exists). At submit
it resolves to the canonical ``artifact:<hash>``, recorded in the job's args:
the stage's key then names the output by its hash, never by a path, and the
executor hands the stage the object's path (`blut.jobs.external.launch_args`). `export` copies an
output out of the cache as a plain folder (an ``lm`` one as a standard HF
model dir).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.cache import Cache
from blut.jobs.errors import UsageError
from blut.jobs.external import ARTIFACT, HASH, JOB, is_reference
from blut.jobs.planview import load_plan, stage_rows
from blut.jobs.store import Job, JobStore
from blut.status.lmdir import adapter_dir
from blut.status.telemetry import Record, TelemetryError

_HEX = re.compile(r"[0-9a-f]{6,64}")
REF_FILE = "ref.json"
"""What the ``model`` stage writes instead of a model when ``model.path`` names one."""


@dataclass(frozen=True)
class Output:
    """One stage output of a job."""

    job: str
    stage: str
    kind: str
    hash: str
    path: Path
    present: bool
    """Whether the object is still in the cache (False: pruned)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--format json``)."""
        return {
            "job": self.job,
            "stage": self.stage,
            "kind": self.kind,
            "hash": self.hash,
            "path": str(self.path),
            "present": self.present,
        }


def job_outputs(job: Job, cache: Cache, stage: str | None = None) -> list[Output]:
    """Every recorded output of ``job`` in plan order (only ``stage``'s when given)."""
    rows = stage_rows(job)
    if stage is not None and stage not in {r.name for r in rows}:
        names = ", ".join(r.name for r in rows)
        raise UsageError(f"job {job.id} has no stage {stage!r} (stages: {names})")
    out = []
    for row in rows:
        if row.artifact is None or (stage is not None and row.name != stage):
            continue
        path = cache.object_path(row.artifact)
        out.append(Output(job.id, row.name, row.output, row.artifact, path, path.exists()))
    return out


def telemetry_outputs(job: Job) -> dict[str, Path]:
    """Where each telemetry sink of ``job`` writes (`blut.status.telemetry`); ``{}`` for none."""
    try:
        record = Record.from_dict(job.spec.telemetry)
    except TelemetryError as exc:
        raise UsageError(f"job {job.id}: {exc}") from None
    return record.locations(job.dir)


def resolve_reference(
    home: Path, arg: str, value: str, kinds: Iterable[str], cwd: Path | None = None
) -> str | None:
    """The canonical ``artifact:<hash>`` that ``value`` (of arg ``arg``) names, or None when
    it is no reference (a bare hash counts only when ``cwd`` has no such path).

    A `UsageError` line when the job or hash is unknown, the output was pruned, or it
    is of a kind ``arg`` does not take.
    """
    wanted = tuple(kinds)
    bare = HASH.fullmatch(value) is not None and not (cwd is not None and (cwd / value).exists())
    if not is_reference(value) and not bare:
        return None
    if not wanted:
        raise UsageError(f"{arg}: takes a path, not a job output ({value})")
    cache = Cache(home)
    try:
        if value.startswith(JOB):
            output = _job_reference(JobStore(home), cache, arg, value[len(JOB) :], wanted)
        else:
            output = _hash_reference(JobStore(home), cache, arg, value.removeprefix(ARTIFACT))
    finally:
        cache.close()
    if output.kind not in wanted:
        raise UsageError(
            f"{arg}: {value} is job {output.job}'s {output.stage} output, of kind "
            f"{output.kind}; {arg} takes {' or '.join(wanted)}"
        )
    if not output.present:
        raise UsageError(
            f"{arg}: {value}: the output {output.hash[:12]} of job {output.job} stage "
            f"{output.stage} was pruned from the cache (run that job again)"
        )
    return ARTIFACT + output.hash


def _job_reference(
    store: JobStore, cache: Cache, arg: str, ref: str, wanted: tuple[str, ...]
) -> Output:
    job_ref, _, stage = ref.partition(":")
    if not job_ref:
        raise UsageError(f"{arg}: job:{ref}: name a job (job:<id>[:stage])")
    try:
        job = store.get(job_ref)
        outputs = job_outputs(job, cache, stage or None)
    except UsageError as exc:
        raise UsageError(f"{arg}: job:{ref}: {exc}") from None
    if stage:
        if not outputs:
            raise UsageError(f"{arg}: job {job.id} stage {stage} has no output (yet)")
        return outputs[0]
    fitting = [o for o in outputs if o.kind in wanted]
    if not fitting:
        have = ", ".join(f"{o.stage} ({o.kind})" for o in outputs) or "none yet"
        raise UsageError(
            f"{arg}: job {job.id} has no {' or '.join(wanted)} output (its outputs: {have})"
        )
    return fitting[-1]


def _hash_reference(store: JobStore, cache: Cache, arg: str, prefix: str) -> Output:
    if not _HEX.fullmatch(prefix):
        raise UsageError(f"{arg}: artifact:{prefix}: give a hash (at least 6 hex digits)")
    entries = [e for e in cache.entries() if e.hash.startswith(prefix)]
    digests = sorted({e.hash for e in entries})
    if not digests:
        raise UsageError(f"{arg}: no cached artifact {prefix}")
    if len(digests) > 1:
        raise UsageError(f"{arg}: artifact {prefix} is ambiguous: {', '.join(digests[:3])}")
    for entry in reversed(entries):  # the newest producer still on record tells its kind
        if entry.job is None or entry.stage is None:
            continue
        try:
            job = store.get(entry.job)
            kind = str(load_plan(job).stages[entry.stage].output)
        except (UsageError, KeyError):
            continue
        path = cache.object_path(digests[0])
        return Output(job.id, entry.stage, kind, digests[0], path, path.exists())
    raise UsageError(
        f"{arg}: artifact {prefix}: the job that made it is gone, so its kind is unknown"
    )


def export(output: Output, dest: Path, adapter: bool = False) -> Path:
    """Copy ``output`` into ``dest`` (created; it must be empty) as plain files.

    An ``lm`` output that only names a local model dir (``ref.json``) exports
    that dir (and the tokenizer dir it names). With ``adapter`` only the peft
    adapter dir of an ``lm`` trained with ``lora_save=adapter`` or ``both`` is
    exported. Returns the folder written.
    """
    if not output.present:
        raise UsageError(
            f"the output {output.hash[:12]} of job {output.job} stage {output.stage} "
            "was pruned from the cache"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest}: exists and is not an empty folder")
    sources = [output.path]
    ref = output.path / REF_FILE
    if adapter:
        found = adapter_dir(output.path) if output.kind == Kind.LM else None
        if found is None:
            raise UsageError(
                f"job {output.job} stage {output.stage} saved no LoRA adapter "
                f"(train with {output.stage}.lora=true {output.stage}.lora_save=adapter or both)"
            )
        sources = [found]
    elif output.kind == Kind.LM and ref.is_file():
        data = json.loads(ref.read_text())
        sources = [Path(data["path"])] + (
            [Path(data["tokenizer"])] if data.get("tokenizer") else []
        )
    dest.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=False)
        else:
            shutil.copy2(source, dest / source.name)
    return dest
