"""The loader of ``train``/``evaluate``: windows of labeled rows as torch tensors.

`WindowDataset` memory-maps the Arrow IPC shards of a ``labeled`` artifact
(no pandas, no copy: a shard's ``x`` column is one [rows, features] float32
array). Sample i is the row of a split with the ``window`` rows of the same
ticker ending at it ([window, features]) and its target. Windows may reach
back before the split's first row (the past, never the future) but never
across a ticker or a shard boundary. Shards are opened lazily in each
process, so the dataset pickles cheaply into DataLoader workers. Indexing
with an array of sample indices gathers a whole batch with one fancy index
per shard. `SeededSampler` yields such index batches, shuffled by (seed,
epoch) alone, so an epoch's order is the same after a resume; under DDP each
rank takes its share of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from blut.payload.errors import InputError
from blut.payload.shards import read_manifest, read_shard

Batch = tuple[torch.Tensor, torch.Tensor]


def _run_starts(tickers: pa.ChunkedArray) -> np.ndarray:
    """For each row, the index of the first row of its ticker run."""
    n = len(tickers)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        change = pc.not_equal(tickers.slice(1), tickers.slice(0, n - 1))
        is_start[1:] = change.to_numpy(zero_copy_only=False)
    return np.maximum.accumulate(np.where(is_start, np.arange(n), 0))


class WindowDataset(Dataset[Batch]):
    """Windows of ``window`` days ending at each row of ``ranges`` (global row ranges)."""

    def __init__(self, directory: Path, ranges: Sequence[Sequence[int]], window: int) -> None:
        """Index the samples of ``ranges`` in the labeled artifact at ``directory``."""
        self.directory = directory
        self.manifest = read_manifest(directory, "labeled")
        self.window = window
        self.classification = self.manifest["task"] == "classification"
        self._tables: dict[int, pa.Table] | None = None
        self._mapped: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        bounds = np.cumsum([0] + [s["rows"] for s in self.manifest["shards"]])
        wanted = np.concatenate([np.arange(a, b) for a, b in ranges] or [np.empty(0, np.int64)])
        shard = np.searchsorted(bounds, wanted, side="right") - 1
        local = wanted - bounds[shard]
        ok = np.zeros(len(wanted), dtype=bool)
        for s in np.unique(shard):
            sel = shard == s
            starts = _run_starts(self._table(int(s)).column("ticker"))
            ok[sel] = local[sel] - (window - 1) >= starts[local[sel]]
        self.rows, self.shard, self.local = wanted[ok], shard[ok], local[ok]
        self._offsets = np.arange(1 - window, 1)

    def _table(self, shard: int) -> pa.Table:
        if self._tables is None:
            self._tables = {}
        if shard not in self._tables:
            self._tables[shard] = read_shard(self.directory, self.manifest["shards"][shard])
        return self._tables[shard]

    def _arrays(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        """The shard's [rows, features] matrix and targets (views of the mapped file)."""
        if shard not in self._mapped:
            table = self._table(shard)
            x = table.column("x").chunk(0)
            matrix = x.values.to_numpy(zero_copy_only=True).reshape(len(x), x.type.list_size)
            target = table.column("target").chunk(0).to_numpy(zero_copy_only=True)
            self._mapped[shard] = matrix, target
        return self._mapped[shard]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the mapped shards (each worker maps its own)."""
        return {**self.__dict__, "_tables": None, "_mapped": {}}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | np.ndarray) -> Batch:
        """Sample ``index`` (x [window, features], y), or a batch for an index array.

        A batch is x [batch, window, features] float32 and y (int64 classes or float32).
        """
        if np.ndim(index) == 0:
            x, y = self[np.array([index])]
            return x[0], y[0]
        idx = np.asarray(index, dtype=np.int64)
        shards, local = self.shard[idx], self.local[idx]
        if len(idx) and shards[0] == shards[-1] and (shards == shards[0]).all():
            matrix, target = self._arrays(int(shards[0]))
            x = matrix[local[:, None] + self._offsets]
            return torch.from_numpy(x), torch.from_numpy(target[local])
        xs = np.empty((len(idx), self.window, len(self.manifest["features"])), dtype=np.float32)
        ys = np.empty(len(idx), dtype=np.int64 if self.classification else np.float32)
        for s in np.unique(shards):
            sel = shards == s
            matrix, target = self._arrays(int(s))
            xs[sel] = matrix[local[sel][:, None] + self._offsets]
            ys[sel] = target[local[sel]]
        return torch.from_numpy(xs), torch.from_numpy(ys)

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of each sample's row, in sample order."""
        out = []
        for s in np.unique(self.shard):
            values = self._table(int(s)).column(name).to_numpy()
            out.append(values[self.local[self.shard == s]])
        return np.concatenate(out) if out else np.empty(0)

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (float64, std floored) of the features over the samples' own rows."""
        total = np.zeros(len(self.manifest["features"]))
        square = np.zeros_like(total)
        for s in np.unique(self.shard):
            rows = self._arrays(int(s))[0][self.local[self.shard == s]].astype(np.float64)
            total += rows.sum(axis=0)
            square += (rows**2).sum(axis=0)
        n = max(len(self), 1)
        mean = total / n
        return mean, np.sqrt(np.maximum(square / n - mean**2, 1e-12))


class SeededSampler(Sampler[np.ndarray]):
    """Batches of a permutation drawn from (seed, epoch) alone.

    With ``world`` > 1 processes (DDP), every rank draws the same permutation
    and cuts it into the same global batches of ``batch_size``; rank ``r``
    takes every ``world``-th index of each global batch from the ``r``-th.
    So the ranks together see exactly the batches one process would, every
    rank yields the same number of batches (DDP needs that), and a share may
    be empty when the last global batch holds fewer than ``world`` samples.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        """Batch ``size`` indices; call `set_epoch` before each epoch."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order next."""
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """This epoch's order of all indices (every rank's)."""
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return np.arange(self.size)

    def global_size(self, batch: int) -> int:
        """How many samples global batch number ``batch`` holds over all ranks."""
        return min(self.batch_size, self.size - batch * self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        order, step = self.order(), self.batch_size
        return (order[i : i + step][self.rank :: self.world] for i in range(0, len(order), step))

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


def _batch(batch: Any) -> Any:
    """The collate of `loader`: indexing `WindowDataset` by an array built the batch."""
    return batch


def loader(dataset: WindowDataset, sampler: SeededSampler, workers: int = 0) -> DataLoader[Batch]:
    """``dataset``'s batches in ``sampler``'s order (workers get their own mappings)."""
    if len(dataset) == 0:
        raise InputError(f"{dataset.directory}: no samples with a full window of {dataset.window}")
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        collate_fn=_batch,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
