"""The `blut` command: the cockpit (bare `blut`), run, jobs (and jobs prune), log, cancel, doctor
(and the verb groups of `blut.commands`: train, recipe, stage, plan, cache, data, sweep).

Every user mistake ends as one line on stderr and exit code 2, and so does a
full disk under BLUT_HOME (whatever the command was doing); a job that failed
ends with exit code 1. Heavy modules are imported inside commands so
that `blut --help` stays fast (and never imports torch, pandas or textual).
"""

from __future__ import annotations

import errno
import json
import sys
from typing import NoReturn

import click
from click.exceptions import Exit, NoArgsIsHelpError

from blut import __version__
from blut.commands import auto as auto_cmd
from blut.commands import cache as cache_cmd
from blut.commands import data as data_cmd
from blut.commands import jobs as jobs_cmd
from blut.commands import outputs as outputs_cmd
from blut.commands import plan as plan_cmd
from blut.commands import policy as policy_cmd
from blut.commands import recipe as recipe_cmd
from blut.commands import snapshot as snapshot_cmd
from blut.commands import stage as stage_cmd
from blut.commands import sweep as sweep_cmd
from blut.commands import train as train_cmd
from blut.commands.common import (
    Group,
    chosen_cluster,
    cluster_options,
    detach_option,
    env_options,
    err,
    fail,
    format_option,
    job_argument,
    note,
    out,
)
from blut.commands.common import check_format as _check_format
from blut.commands.common import store as _store
from blut.commands.following import follow_job
from blut.containment.errors import ContainmentError
from blut.jobs.diskfull import DiskFull, disk_full_detail, is_disk_full
from blut.jobs.errors import JobsError, UsageError, clip
from blut.status.errors import StatusError
from blut.status.private import go_private


@click.group(
    "blut",
    cls=Group,
    help="A terminal cockpit for ML training jobs: every job a contained systemd unit.",
    invoke_without_command=True,
)
@click.version_option(__version__, message="blut %(version)s", help="Print the version.")
@click.option(
    "--readonly", is_flag=True, help="Open the cockpit with every mutating action hidden."
)
@click.option("--once", is_flag=True, help="Print the jobs table once and exit (no TUI).")
@click.option("--replay", metavar="JOB", help="Open the cockpit replaying a job's history.")
@click.option("--open", "open_job", metavar="JOB", help="Open the cockpit on a job.")
@click.pass_context
def app(
    ctx: click.Context, readonly: bool, once: bool, replay: str | None, open_job: str | None
) -> None:
    """blut: run training jobs contained, cached and watched. Bare `blut` opens the cockpit."""
    if ctx.invoked_subcommand is not None:
        return
    if once:
        print_jobs(show_all=False, fmt="table")
        return
    raise Exit(_cockpit(readonly=readonly, replay=replay, open_job=open_job))


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
@click.option("--readonly", is_flag=True, help="Hide every mutating action.")
def tui(readonly: bool) -> None:
    """Open the cockpit (the same as bare `blut`)."""
    raise Exit(_cockpit(readonly=readonly))


@app.command(context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, help="The command and its arguments.")
@click.option("--name", "-n", help="A name for the job.")
@click.option("--memory-max", "-m", help="Memory ceiling, e.g. 2G.")
@click.option("--timeout", "-t", help="Time limit, e.g. 30m, 1h.")
@env_options
@detach_option
@click.option("--uncontained", is_flag=True, help="Run as a plain subprocess (no systemd unit).")
@cluster_options
def run(
    command: tuple[str, ...],
    name: str | None,
    memory_max: str | None,
    timeout: str | None,
    env_clear: bool,
    envs: tuple[str, ...],
    detach: bool,
    uncontained: bool,
) -> None:
    """Run COMMAND as a contained job: `blut run -m 2G -- python train.py`."""
    from blut.containment.select import containment_requested
    from blut.jobs.api import submit_command
    from blut.jobs.environment import env_policy
    from blut.jobs.quantities import parse_duration, parse_size

    argv = list(command)
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
        env=env_policy(clear=env_clear, passed=envs),
        cluster=chosen_cluster(),
    )
    if warning:
        err.print(f"blut: warning: {warning}", style="bold yellow", markup=False)
    if detach:
        out.print(job.id)
        return
    err.print(f"blut: job {job.id} ({job.spec.name}) submitted", style="dim", markup=False)
    raise Exit(follow_job(job))


@app.group(cls=Group, invoke_without_command=True)
@click.option("--all", "-a", "show_all", is_flag=True, help="Every job, not only recent.")
@format_option
@click.pass_context
def jobs(ctx: click.Context, show_all: bool, fmt: str) -> None:
    """List jobs: state, reason, exit code, timing, peak memory vs ceiling
    (`blut jobs prune` removes finished ones)."""
    if ctx.invoked_subcommand is None:
        print_jobs(show_all=show_all, fmt=fmt)


jobs.add_command(jobs_cmd.prune)


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
@job_argument
@click.argument("stage", required=False, help="One stage (default: every stage of the job).")
@click.option("--follow", "-f", "follow_", is_flag=True, help="Keep printing new lines.")
def log(job_ref: str, stage: str | None, follow_: bool) -> None:
    """Print a job's log (each stage's stdout and stderr)."""
    import shutil

    jobs = _store()
    job = jobs.get(job_ref)
    if stage is not None and stage not in job.spec.stages:
        raise UsageError(
            f"job {job.id} has no stage {stage!r} (stages: {', '.join(job.spec.stages)})"
        )
    stages = [stage] if stage is not None else job.spec.stages
    if follow_:
        raise Exit(follow_job(job, stages=stages))
    from blut.jobs.api import reused_stages
    from blut.jobs.planview import reuse_line

    reused = reused_stages(jobs, job) if job.is_recipe else {}
    for name in stages:
        path = job.log_path(name)
        if name in reused:  # nothing ran: say whose output it is, and where its log is
            sys.stdout.flush()
            note(reuse_line(job, name, reused[name]))
        if not path.exists():
            continue
        if len(stages) > 1:
            sys.stdout.write(f"==> {name} <==\n")
        sys.stdout.flush()
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()


@app.command()
@job_argument
@click.argument(
    "stage",
    required=False,
    help="Cancel only this stage of a recipe job: what depends on it is skipped, "
    "other branches finish, and the job ends failed.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cancel(job_ref: str, stage: str | None, yes: bool) -> None:
    """Cancel a running job (its whole process tree is stopped), or one stage of it."""
    from blut.jobs.api import Launchers, cancel_stage
    from blut.jobs.api import cancel as cancel_job

    job = _store().get(job_ref)
    what = f"job {job.id} ({job.spec.name})" if stage is None else f"stage {stage} of job {job.id}"
    if not yes and sys.stdin.isatty() and not click.confirm(f"Cancel {what}?"):
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
@format_option
@click.option(
    "--start-user-manager",
    is_flag=True,
    help="Start a private systemd user manager if none answers and print its exports: "
    'eval "$(blut doctor --start-user-manager)".',
)
@click.option("--ray-address", metavar="URL", help="Also check this Ray cluster and its nodes.")
def doctor(fmt: str, start_user_manager: bool, ray_address: str | None) -> None:
    """Check this machine: user manager, memory delegation, linger, GPUs, disk, versions."""
    from blut.containment.doctor import exit_code, run_checks
    from blut.containment.usermanager import ensure_user_manager, export_lines

    _check_format(fmt)
    if start_user_manager:
        out.print(export_lines(ensure_user_manager()), markup=False, end="")
        return
    from blut.cockpit.render import doctor_table
    from blut.jobs.cluster import configured_address
    from blut.jobs.store import home_path

    checks = run_checks(home_path(), configured_address(ray_address))  # creates, changes nothing
    if fmt == "json":
        out.print_json(json.dumps([c.to_dict() for c in checks]))
    else:
        out.print(doctor_table(checks))
    raise Exit(exit_code(checks))


app.add_command(train_cmd.train)
app.add_command(recipe_cmd.app)
app.add_command(stage_cmd.app)
app.add_command(plan_cmd.app)
app.add_command(policy_cmd.app)
app.add_command(auto_cmd.auto)
app.add_command(cache_cmd.app)
app.add_command(snapshot_cmd.app)
app.add_command(data_cmd.app)
app.add_command(sweep_cmd.sweep)
app.add_command(outputs_cmd.outputs)
app.add_command(outputs_cmd.export)


MAX_ERROR_LINE = 300
"""Longest error line: a message echoing a huge argument is clipped."""


def _fail(message: str, code: int) -> NoReturn:
    """Print each line of ``message`` as a ``blut: error:`` line and exit with ``code``."""
    for line in message.splitlines() or [""]:
        err.print(f"blut: error: {clip(line, MAX_ERROR_LINE)}", markup=False)
    sys.exit(code)


def main() -> None:
    """Console-script entry point: map errors to one line and an exit code."""
    go_private()  # everything created under BLUT_HOME is 0600/0700, whatever the umask
    try:
        code = app.main(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a group without its command: its help, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        _fail(f"{clip(exc.format_message(), 200)}{hint}", 2)
    except (click.Abort, KeyboardInterrupt):
        err.print("blut: aborted", markup=False)
        sys.exit(130)
    except (UsageError, DiskFull) as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(*_error_line(exc))
    sys.exit(code if isinstance(code, int) else 0)


def _error_line(exc: Exception) -> tuple[str, int]:
    """The line and exit code for blut's own errors, OS errors and a full disk (whatever
    raised it: a library's sqlite error too); anything else is a bug, raised again."""
    from blut.jobs.store import home_path

    if is_disk_full(exc, home_path()):
        return f"{disk_full_detail(home_path())}: {exc}", 2
    if isinstance(exc, (JobsError, ContainmentError, StatusError)):
        return str(exc), 2 if isinstance(exc, ContainmentError) else 1
    if isinstance(exc, OSError):  # e.g. a folder under BLUT_HOME that is not ours
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", 2 if exc.errno == errno.ENAMETOOLONG else 1
    raise exc


if __name__ == "__main__":
    main()
