"""Per-epoch metric rows as Parquet parts: ``<dir>/part-<epoch>.parquet``.

Each epoch is written to a hidden temp file, fsynced and renamed into place, so
a crash never leaves a torn part and never touches earlier epochs. Readers open
the parts as one pyarrow dataset, unioning columns that differ between epochs.
pyarrow and pandas are imported here only, when first used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut.status.atomic import atomic_file
from blut.status.errors import StatusError
from blut.status.private import private_dir

if TYPE_CHECKING:
    import pandas
    import pyarrow

Row = Mapping[str, float | int | str | None]
PART_GLOB = "part-*.parquet"


def part_path(directory: Path, epoch: int) -> Path:
    """Where the rows of ``epoch`` live."""
    return directory / f"part-{epoch:06d}.parquet"


class MetricsWriter:
    """Writes one Parquet part per epoch into a metrics folder."""

    def __init__(self, directory: Path) -> None:
        """Use (and create) ``directory``."""
        self.directory = directory
        private_dir(directory)

    def write_epoch(self, epoch: int, rows: Sequence[Row]) -> Path:
        """Atomically write (or replace) the part of ``epoch``; returns its path.

        Rows may have different keys (missing values are null). Rows without an
        ``epoch`` key get ``epoch``. Raises :class:`StatusError` if a column mixes
        types that Parquet cannot hold in one column (say numbers and strings).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [{"epoch": epoch, **row} for row in rows]
        names = list(dict.fromkeys(key for record in records for key in record)) or ["epoch"]
        try:
            table = pa.table({name: [r.get(name) for r in records] for name in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StatusError(f"metrics of epoch {epoch} do not fit in columns: {exc}") from exc
        final = part_path(self.directory, epoch)
        with atomic_file(final) as f:
            pq.write_table(table, f)
        return final


def read_metrics(directory: Path) -> pyarrow.Table:
    """All parts of ``directory`` as one table, sorted by epoch (and step).

    Columns missing from some parts are null there; numeric columns widen as
    needed (int to float). Hidden and temp files are ignored; a missing or empty
    folder gives an empty table. Raises :class:`StatusError` when parts disagree
    beyond that (a column that is a number in one epoch and text in another).
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = sorted(str(p) for p in directory.glob(PART_GLOB)) if directory.is_dir() else []
    if not files:
        return pa.table({})
    try:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
        table = ds.dataset(files, schema=schema, format="parquet").to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise StatusError(f"metrics parts in {directory} do not agree: {exc}") from exc
    keys: list[tuple[str, Any]] = [
        (name, "ascending") for name in ("epoch", "step") if name in table.column_names
    ]
    return table.sort_by(keys) if keys else table


def read_metrics_pandas(directory: Path) -> pandas.DataFrame:
    """:func:`read_metrics` as a pandas DataFrame."""
    frame: pandas.DataFrame = read_metrics(directory).to_pandas()
    return frame
