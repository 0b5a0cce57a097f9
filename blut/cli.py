"""The `blut` command: the cockpit (bare `blut`), run, jobs, log, cancel, doctor.

Every user mistake ends as one line on stderr and exit code 2; a job that
failed ends with exit code 1. Heavy modules are imported inside commands so
that `blut --help` stays fast (and never imports torch, pandas or textual).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer._click import exceptions as click_errors  # typer vendors click; version pinned

from blut import __version__
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
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Format = Annotated[str, typer.Option("--format", help="table or json.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit."""
    err.print(f"blut: error: {message}", markup=False)
    raise typer.Exit(code)


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r}: use table or json")


def _store() -> Any:
    from blut.jobs.store import JobStore, blut_home

    return JobStore(blut_home())


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
) -> None:
    """blut: run training jobs contained, cached and watched. Bare `blut` opens the cockpit."""
    if ctx.invoked_subcommand is not None:
        return
    if once:
        from blut.cockpit.app import print_once

        print_once(out)
        return
    raise typer.Exit(_cockpit(readonly=readonly, replay=replay))


def _cockpit(*, readonly: bool, replay: str | None) -> int:
    """Open the Textual cockpit (needs a terminal)."""
    job_id = _store().get(replay).id if replay is not None else None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the cockpit needs a terminal: use `blut --once` or `blut jobs` in scripts")
    from blut.cockpit.app import run_cockpit

    return run_cockpit(readonly=readonly, replay=job_id)


@app.command()
def tui(
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Hide every mutating action.")
    ] = False,
) -> None:
    """Open the cockpit (the same as bare `blut`)."""
    raise typer.Exit(_cockpit(readonly=readonly, replay=None))


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
    from blut.jobs.quantities import parse_duration, parse_size
    from blut.jobs.submit import submit

    argv = list(command or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    mem = parse_size(memory_max) if memory_max is not None else None
    limit = parse_duration(timeout) if timeout is not None else None
    job, warning = submit(
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
    raise typer.Exit(_follow(job, from_start=True))


def _follow(job: Any, *, from_start: bool, stage: str | None = None) -> int:
    """Stream a job's log and notable events until it ends; Ctrl-C detaches."""
    from blut.cockpit.render import describe_end
    from blut.containment.select import launcher_for
    from blut.jobs.follow import LogLine, follow
    from blut.jobs.quantities import format_size
    from blut.jobs.store import MAIN_STAGE
    from blut.status.events import Log, StageStarted
    from blut.status.jobstate import JobView

    stop = threading.Event()
    launcher = launcher_for(job.spec.launcher)
    try:
        for item in follow(
            job, launcher, stage=stage or MAIN_STAGE, stop=stop, from_start=from_start
        ):
            if isinstance(item, LogLine):
                print(item.text, flush=True)
            elif isinstance(item, StageStarted):
                ceiling = (
                    ""
                    if item.memory_max is None
                    else f", memory max {format_size(item.memory_max)}"
                )
                kind = "contained" if item.contained else "UNCONTAINED"
                err.print(
                    f"blut: stage {item.stage} started as {item.unit} ({kind}{ceiling})",
                    style="dim",
                    markup=False,
                )
            elif isinstance(item, Log) and item.level in ("warning", "error"):
                err.print(f"blut: {item.level}: {item.msg}", style="yellow", markup=False)
            elif isinstance(item, JobView):
                style = "green" if item.state == "succeeded" else "bold red"
                err.print(
                    f"blut: job {job.id} {describe_end(item, job.spec.memory_max)}",
                    style=style,
                    markup=False,
                )
                return 0 if item.state == "succeeded" else 1
    except KeyboardInterrupt:
        stop.set()
        err.print(
            f"\nblut: detached; job {job.id} keeps running. "
            f"Re-attach: blut log {job.id} -f   Cancel: blut cancel {job.id}",
            markup=False,
        )
        return 130
    finally:
        launcher.close()
    return 1


@app.command()
def jobs(
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Every job, not only recent.")
    ] = False,
    fmt: Format = "table",
) -> None:
    """List jobs: state, reason, exit code, timing, peak memory vs ceiling."""
    from blut.cockpit.render import jobs_table
    from blut.containment.select import launcher_for
    from blut.jobs.listing import job_row, select_rows
    from blut.jobs.reconcile import reconcile

    _check_format(fmt)
    launchers: dict[str, Any] = {}
    rows = []
    for job in _store().all():
        kind = job.spec.launcher
        launcher = launchers.setdefault(kind, launcher_for(kind))
        rows.append(job_row(job, reconcile(job, launcher)))
    rows = select_rows(rows, show_all)
    if fmt == "json":
        out.print_json(json.dumps([r.to_json() for r in rows]))
    elif rows:
        out.print(jobs_table(rows))
    else:
        err.print("no jobs yet: start one with `blut run -- COMMAND`", markup=False)


@app.command()
def log(
    job_ref: Annotated[str, typer.Argument(metavar="JOB", help="Job id, id prefix or name.")],
    stage: Annotated[
        str | None, typer.Argument(help="Stage (default: the job's main stage).")
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print a job's log (a stage's stdout and stderr)."""
    from blut.jobs.store import MAIN_STAGE

    job = _store().get(job_ref)
    name = stage or MAIN_STAGE
    if name not in job.spec.stages:
        raise UsageError(
            f"job {job.id} has no stage {name!r} (stages: {', '.join(job.spec.stages)})"
        )
    if follow_:
        raise typer.Exit(_follow(job, from_start=True, stage=name))
    path = job.log_path(name)
    if path.exists():
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


@app.command()
def cancel(
    job_ref: Annotated[str, typer.Argument(metavar="JOB", help="Job id, id prefix or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Cancel a running job: its whole process tree is stopped."""
    from blut.containment.select import launcher_for
    from blut.jobs.cancel import cancel as cancel_job

    job = _store().get(job_ref)
    if (
        not yes
        and sys.stdin.isatty()
        and not typer.confirm(f"Cancel job {job.id} ({job.spec.name})?")
    ):
        fail("not cancelled", 1)
    launcher = launcher_for(job.spec.launcher)
    try:
        view = cancel_job(job, launcher)
    finally:
        launcher.close()
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
        err.print(f"blut: error: {exc}", markup=False)
        sys.exit(2)
    except (JobsError, ContainmentError, StatusError) as exc:
        err.print(f"blut: error: {exc}", markup=False)
        sys.exit(2 if isinstance(exc, ContainmentError) else 1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
