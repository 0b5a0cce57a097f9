"""What every verb shares: the two consoles, one-line errors, options, the job store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.exceptions import Exit
from rich.console import Console

from blut.jobs.errors import UsageError, clip

if TYPE_CHECKING:
    from pathlib import Path

    from blut.jobs.store import JobStore

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Group(click.Group):
    """A click group that lists its commands in the order they were added (not sorted)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names of the commands, in the order they were added."""
        return list(self.commands)


format_option = click.option(
    "--format", "fmt", default="table", show_default=True, help="table or json."
)
job_argument = click.argument("job_ref", metavar="JOB", help="Job id, id prefix or name.")
detach_option = click.option("--detach", "-d", is_flag=True, help="Do not follow.")
telemetry_option = click.option(
    "--telemetry",
    metavar="SINKS",
    help="Telemetry sinks, comma-separated: jsonl, console, tensorboard, mlflow, wandb "
    "(default: [telemetry] of the config files; '' for none).",
)


def set_option(help: str) -> Callable[[F], F]:
    """Repeated ``--set/-s KEY=VALUE``: overrides of a recipe's arguments."""
    return click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help=help)


def env_options(command: F) -> F:
    """``--env-clear`` and repeated ``--env NAME[=VALUE]``: the job's environment."""
    command = click.option(
        "--env",
        "envs",
        multiple=True,
        metavar="NAME[=VALUE]",
        help="Pass NAME as set here, or set it to VALUE (repeat).",
    )(command)
    return click.option(
        "--env-clear",
        is_flag=True,
        help="Start from an empty environment (PATH and blut's own variables stay).",
    )(command)


def path_option(*param_decls: str, help: str) -> Callable[[F], F]:
    """An option naming a file or folder, passed on as a `Path` (the command checks it)."""
    return click.option(*param_decls, type=click.Path(), callback=_to_path, help=help)


def _to_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    from pathlib import Path  # here, not at import: `blut --help` does without it

    return None if value is None else Path(value)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit."""
    err.print(f"blut: error: {message}", markup=False)
    raise Exit(code)


def check_format(fmt: str) -> None:
    """Refuse anything but ``table`` and ``json``."""
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {clip(fmt)!r}: use table or json")


def store() -> JobStore:
    """The job store under ``$BLUT_HOME``."""
    from blut.jobs.store import JobStore, blut_home

    return JobStore(blut_home())


def note(message: str, style: str = "dim") -> None:
    """A status line for humans on stderr (stdout stays for data)."""
    err.print(f"blut: {message}", style=style, markup=False)
