"""What every verb shares: the two consoles, one-line errors, formats, the job store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from blut.jobs.errors import UsageError

if TYPE_CHECKING:
    from blut.jobs.store import JobStore

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Format = Annotated[str, typer.Option("--format", help="table or json.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit."""
    err.print(f"blut: error: {message}", markup=False)
    raise typer.Exit(code)


def check_format(fmt: str) -> None:
    """Refuse anything but ``table`` and ``json``."""
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r}: use table or json")


def store() -> JobStore:
    """The job store under ``$BLUT_HOME``."""
    from blut.jobs.store import JobStore, blut_home

    return JobStore(blut_home())


def note(message: str, style: str = "dim") -> None:
    """A status line for humans on stderr (stdout stays for data)."""
    err.print(f"blut: {message}", style=style, markup=False)
