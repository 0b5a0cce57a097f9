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

    from blut.jobs.cluster import Cluster
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


CLUSTER_META = "blut.cluster"
"""Where `cluster_options` keep what was given (in the click context's ``meta``)."""


def _keep_cluster(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value and param.name:
        ctx.meta.setdefault(CLUSTER_META, {})[param.name] = value


def cluster_options(command: F) -> F:
    """``--launcher``, ``--ray-address``, ``--ray-resource``: where the stages run (read
    with `chosen_cluster`, so the command's signature stays as it is)."""
    command = click.option(
        "--ray-resource",
        multiple=True,
        metavar="STAGE=NAME[:N]",
        expose_value=False,
        callback=_keep_cluster,
        help="Ray custom resource STAGE needs (pins it to the nodes that have it; repeat).",
    )(command)
    command = click.option(
        "--ray-address",
        metavar="URL",
        expose_value=False,
        callback=_keep_cluster,
        help="The Ray cluster's dashboard address (http://HOST:8265).",
    )(command)
    return click.option(
        "--launcher",
        type=click.Choice(["local", "ray"]),
        expose_value=False,
        callback=_keep_cluster,
        help="Run stages on this machine (default) or as Ray jobs on a cluster.",
    )(command)


def cluster_given() -> bool:
    """True when `cluster_options` were given on this command line."""
    return bool(click.get_current_context().meta.get(CLUSTER_META))


def chosen_cluster() -> Cluster | None:
    """The Ray cluster the options and config files choose (None: this machine)."""
    from blut.jobs.cluster import choose_cluster

    given = click.get_current_context().meta.get(CLUSTER_META, {})
    return choose_cluster(
        given.get("launcher"), given.get("ray_address"), given.get("ray_resource", ())
    )


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
