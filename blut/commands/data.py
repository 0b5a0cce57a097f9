"""`blut data list|show`: the market data sets a recipe can train on."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from blut.commands.common import Format, check_format, out

app = typer.Typer(help="Market data: the packaged and generated sets.", no_args_is_help=True)


@app.command("list")
def list_(fmt: Format = "table") -> None:
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
def show(
    name: Annotated[str, typer.Argument(help="A set name, or a CSV/Parquet file or folder.")],
    tickers: Annotated[
        int, typer.Option("--tickers", min=1, max=100_000, help="Tickers of the synthetic set.")
    ] = 10,
    days: Annotated[
        int, typer.Option("--days", min=2, max=1_000_000, help="Days of the synthetic set.")
    ] = 2520,
    fmt: Format = "table",
) -> None:
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
