"""The `blut` command: the cockpit (bare `blut`), run, jobs, log, cancel, doctor.

Every user mistake ends as one line on stderr and exit code 2; a job that
failed ends with exit code 1. Heavy modules are imported inside commands so
that `blut --help` stays fast (and never imports torch, pandas or textual).
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Annotated

import typer
from typer._click import exceptions as click_errors  # typer vendors click; version pinned

from blut import __version__
from blut.commands import cache as cache_cmd
from blut.commands import data as data_cmd
from blut.commands import plan as plan_cmd
from blut.commands import recipe as recipe_cmd
from blut.commands import train as train_cmd
from blut.commands.common import Format, err, fail, out
from blut.commands.common import check_format as _check_format
from blut.commands.common import store as _store
from blut.commands.following import follow_job
from blut.containment.errors import ContainmentError
from blut.jobs.errors import JobsError, UsageError
from blut.status.errors import StatusError

app = typer.Typer(
    name="blut",
    help="A terminal cockpit for ML training jobs: every job a contained systemd unit.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(recipe_cmd.app, name="recipe")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(cache_cmd.app, name="cache")
app.add_typer(data_cmd.app, name="data")
app.command("train")(train_cmd.train)


def _version(value: bool) -> None:
    if value:
        out.print(f"blut {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Open the cockpit with every mutating action hidden.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Print the jobs table once and exit (no TUI).")
    ] = False,
    replay: Annotated[
        str | None,
        typer.Option("--replay", metavar="JOB", help="Open the cockpit replaying a job's history."),
    ] = None,
    open_job: Annotated[
        str | None, typer.Option("--open", metavar="JOB", help="Open the cockpit on a job.")
    ] = None,
) -> None:
    """blut: run training jobs contained, cached and watched. Bare `blut` opens the cockpit."""
    if ctx.invoked_subcommand is not None:
        return
    if once:
        print_jobs(show_all=False, fmt="table")
        return
    raise typer.Exit(_cockpit(readonly=readonly, replay=replay, open_job=open_job))


def _cockpit(*, readonly: bool, replay: str | None = None, open_job: str | None = None) -> int:
    """Open the Textual cockpit (needs a terminal)."""
    jobs = _store()
    replay_id = jobs.get(replay).id if replay is not None else None
    open_id = jobs.get(open_job).id if open_job is not None else None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the cockpit needs a terminal: use `blut --once` or `blut jobs` in scripts"
        )
    from blut.cockpit.app import run_cockpit

    return run_cockpit(readonly=readonly, replay=replay_id, open_job=open_id)


@app.command()
def tui(
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Hide every mutating action.")
    ] = False,
) -> None:
    """Open the cockpit (the same as bare `blut`)."""
    raise typer.Exit(_cockpit(readonly=readonly))


@app.command(
    context_settings={"allow_interspersed_args": False},
)
def run(
    command: Annotated[
        list[str] | None, typer.Argument(help="The command and its arguments.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="A name for the job.")] = None,
    memory_max: Annotated[
        str | None, typer.Option("--memory-max", "-m", help="Memory ceiling, e.g. 2G.")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", "-t", help="Time limit, e.g. 30m, 1h.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Do not follow.")] = False,
    uncontained: Annotated[
        bool, typer.Option("--uncontained", help="Run as a plain subprocess (no systemd unit).")
    ] = False,
) -> None:
    """Run COMMAND as a contained job: `blut run -m 2G -- python train.py`."""
    from blut.containment.select import containment_requested
    from blut.jobs.api import submit_command
    from blut.jobs.quantities import parse_duration, parse_size

    argv = list(command or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    mem = parse_size(memory_max) if memory_max is not None else None
    limit = parse_duration(timeout) if timeout is not None else None
    job, warning = submit_command(
        _store(),
        argv,
        name=name,
        memory_max=mem,
        timeout=limit,
        contained=containment_requested() and not uncontained,
    )
    if warning:
        err.print(f"blut: warning: {warning}", style="bold yellow", markup=False)
    if detach:
        out.print(job.id)
        return
    err.print(f"blut: job {job.id} ({job.spec.name}) submitted", style="dim", markup=False)
    raise typer.Exit(follow_job(job))


@app.command()
def jobs(
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Every job, not only recent.")
    ] = False,
    fmt: Format = "table",
) -> None:
    """List jobs: state, reason, exit code, timing, peak memory vs ceiling."""
    print_jobs(show_all=show_all, fmt=fmt)


def print_jobs(*, show_all: bool, fmt: str) -> None:
    """`blut jobs` and `blut --once`: the same rows from the same code."""
    from blut.cockpit.render import jobs_table
    from blut.jobs.api import list_jobs

    _check_format(fmt)
    listing = list_jobs(_store(), show_all=show_all)
    for problem in listing.unreadable:
        err.print(f"blut: warning: skipped a job: {problem}", style="yellow", markup=False)
    rows = listing.rows
    if fmt == "json":
        out.print_json(json.dumps([r.to_json() for r in rows]))
    elif rows:
        out.print(jobs_table(rows, width=out.width))
    else:
        err.print("no jobs yet: start one with `blut run -- COMMAND`", markup=False)


@app.command()
def log(
    job_ref: Annotated[str, typer.Argument(metavar="JOB", help="Job id, id prefix or name.")],
    stage: Annotated[
        str | None, typer.Argument(help="One stage (default: every stage of the job).")
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print a job's log (each stage's stdout and stderr)."""
    job = _store().get(job_ref)
    if stage is not None and stage not in job.spec.stages:
        raise UsageError(
            f"job {job.id} has no stage {stage!r} (stages: {', '.join(job.spec.stages)})"
        )
    stages = [stage] if stage is not None else job.spec.stages
    if follow_:
        raise typer.Exit(follow_job(job, stages=stages))
    for name in stages:
        path = job.log_path(name)
        if not path.exists():
            continue
        if len(stages) > 1:
            sys.stdout.write(f"==> {name} <==\n")
        sys.stdout.flush()
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()


@app.command()
def cancel(
    job_ref: Annotated[str, typer.Argument(metavar="JOB", help="Job id, id prefix or name.")],
    stage: Annotated[
        str | None,
        typer.Argument(
            metavar="[STAGE]",
            help="Cancel only this stage of a recipe job: what depends on it is skipped, "
            "other branches finish, and the job ends failed.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Cancel a running job (its whole process tree is stopped), or one stage of it."""
    from blut.jobs.api import Launchers, cancel_stage
    from blut.jobs.api import cancel as cancel_job

    job = _store().get(job_ref)
    what = f"job {job.id} ({job.spec.name})" if stage is None else f"stage {stage} of job {job.id}"
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Cancel {what}?"):
        fail("not cancelled", 1)
    with Launchers() as launchers:
        launcher = launchers.for_job(job)
        view = cancel_job(job, launcher) if stage is None else cancel_stage(job, launcher, stage)
    found = view.stages.get(stage) if stage is not None else None
    if found is not None and found.state in ("failed", "succeeded"):
        ended = found.reason or found.state
        err.print(f"blut: job {job.id} stage {stage} {ended}; job {view.state}", markup=False)
    else:
        err.print(f"blut: job {job.id} {view.state}", markup=False)


@app.command()
def doctor(
    fmt: Format = "table",
    start_user_manager: Annotated[
        bool,
        typer.Option(
            "--start-user-manager",
            help="Start a private systemd user manager if none answers and print its exports: "
            'eval "$(blut doctor --start-user-manager)".',
        ),
    ] = False,
) -> None:
    """Check this machine: user manager, memory delegation, linger, GPUs, disk, versions."""
    from blut.containment.doctor import exit_code, run_checks
    from blut.containment.usermanager import ensure_user_manager, export_lines

    _check_format(fmt)
    if start_user_manager:
        out.print(export_lines(ensure_user_manager()), markup=False, end="")
        return
    from blut.cockpit.render import doctor_table
    from blut.jobs.store import blut_home

    checks = run_checks(blut_home())
    if fmt == "json":
        out.print_json(json.dumps([c.to_dict() for c in checks]))
    else:
        out.print(doctor_table(checks))
    raise typer.Exit(exit_code(checks))


def main() -> None:
    """Console-script entry point: map errors to one line and an exit code."""
    try:
        code = app(standalone_mode=False)
    except click_errors.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        err.print(f"blut: error: {exc.format_message()}{hint}", markup=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("blut: aborted", markup=False)
        sys.exit(130)
    except UsageError as exc:
        for line in str(exc).splitlines() or [""]:
            err.print(f"blut: error: {line}", markup=False)
        sys.exit(2)
    except (JobsError, ContainmentError, StatusError) as exc:
        err.print(f"blut: error: {exc}", markup=False)
        sys.exit(2 if isinstance(exc, ContainmentError) else 1)
    except OSError as exc:  # e.g. a folder under BLUT_HOME that is not ours: one line, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"blut: error: {exc.strerror or exc}{where}", markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
