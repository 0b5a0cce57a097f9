"""`blut data list|show`: the market data sets a recipe can train on."""

from __future__ import annotations

import json
from typing import Any

import click

from blut.commands.common import Group, check_format, format_option, out

app = Group("data", help="Market data: the packaged and generated sets.", no_args_is_help=True)


@app.command("list")
@format_option
def list_(fmt: str) -> None:
    """The data sets blut ships or generates (or pass your own CSV/Parquet to `show`)."""
    from rich.table import Table

    from blut.payload.data.catalog import list_datasets

    check_format(fmt)
    sets = list_datasets()
    if fmt == "json":
        out.print_json(json.dumps(sets))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("NAME", "KIND", "DESCRIPTION"):
        table.add_column(header)
    for item in sets:
        table.add_row(item["name"], item["kind"], item["description"])
    out.print(table)


@app.command()
@click.argument("name", help="A set name, or a CSV/Parquet file or folder.")
@click.option(
    "--tickers",
    type=click.IntRange(1, 100_000),
    default=10,
    show_default=True,
    help="Tickers of the synthetic set.",
)
@click.option(
    "--days",
    type=click.IntRange(2, 1_000_000),
    default=2520,
    show_default=True,
    help="Days of the synthetic set.",
)
@format_option
def show(name: str, tickers: int, days: int, fmt: str) -> None:
    """Tickers, rows, date span, columns, provenance and licence of a data set."""
    from blut.jobs.errors import UsageError
    from blut.payload.data.catalog import show_dataset
    from blut.payload.errors import PayloadError

    check_format(fmt)
    try:
        info: dict[str, Any] = show_dataset(name, tickers=tickers, days=days)
    except PayloadError as exc:
        raise UsageError(str(exc)) from exc
    if fmt == "json":
        out.print_json(json.dumps(info))
        return
    per = info.get("rows_per_ticker", {})
    rows = [
        ("name", f"{info['name']} ({info['kind']})"),
        ("tickers", ", ".join(f"{t} ({per[t]})" if t in per else t for t in info["tickers"])),
        ("rows", f"{info['rows']:,}"),
        ("dates", f"{info['first_date']} .. {info['last_date']}"),
        ("columns", ", ".join(info["columns"])),
        ("provenance", info["provenance"]),
        ("licence", info["licence"]),
    ]
    for key, value in rows:
        out.print(f"[bold]{key:<11}[/]", end="")
        out.print(str(value), markup=False)
