"""`blut outputs` and `blut export`: where a job's outputs live, and copying one out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from blut.commands.common import check_format, format_option, job_argument, note, out, store


@click.command()
@job_argument
@click.argument("stage", required=False, help="One stage (default: every stage with an output).")
@format_option
def outputs(job_ref: str, stage: str | None, fmt: str) -> None:
    """Each output of a job: stage, kind, hash and its path in the cache; then where its
    telemetry sinks write.

    Name one in a recipe arg that takes a model or dataset as job:JOB[:STAGE].
    """
    from blut.jobs.api import job_outputs
    from blut.jobs.outputs import telemetry_outputs

    check_format(fmt)
    jobs = store()
    job = jobs.get(job_ref)
    found = job_outputs(jobs, job, stage)
    sinks = telemetry_outputs(job)
    if fmt == "json":
        telemetry = [{"sink": k, "path": str(v)} for k, v in sinks.items()]
        data = {"job": job.id, "outputs": [o.to_dict() for o in found], "telemetry": telemetry}
        out.print_json(json.dumps(data))
        return
    if not found:
        note(f"job {job.id} has no outputs (yet)")
    else:
        rows = [("STAGE", "KIND", "HASH", "PATH")]  # plain lines: a path is never cut short
        rows += [
            (o.stage, o.kind, o.hash[:12], str(o.path) if o.present else "(pruned)") for o in found
        ]
        _lines(rows)
    if sinks:
        click.echo("")
        _lines([("TELEMETRY", "PATH"), *((k, str(v)) for k, v in sinks.items())])


def _lines(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last (a path) never cut or padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]))


@click.command()
@job_argument
@click.argument("stage", help="The stage whose output to copy.")
@click.argument(
    "dest", metavar="DIR", type=click.Path(path_type=Path), help="An empty or new folder."
)
@click.option(
    "--adapter",
    is_flag=True,
    help="Only the LoRA adapter dir (peft's layout) of an lm saved with lora_save=adapter/both.",
)
def export(job_ref: str, stage: str, dest: Path, adapter: bool) -> None:
    """Copy a job stage's output into DIR as plain files (an lm: a standard HF model dir)."""
    from blut.jobs.api import job_outputs
    from blut.jobs.outputs import export as export_output

    jobs = store()
    job = jobs.get(job_ref)
    found = job_outputs(jobs, job, stage)
    if not found:
        from blut.jobs.errors import UsageError

        raise UsageError(f"job {job.id} stage {stage} has no output (yet)")
    written = export_output(found[0], dest, adapter)
    what = "LoRA adapter" if adapter else found[0].kind
    note(f"exported {job.id} {stage} ({what}, {found[0].hash[:12]}) to {written}")
