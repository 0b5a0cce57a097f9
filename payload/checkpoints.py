"""Per-epoch checkpoints: ``epoch-NNNN.pt`` (tensors) + ``epoch-NNNN.meta.json`` (the rest).

The ``.pt`` holds model, optimizer and scheduler state; the meta holds epoch,
step, the config fingerprint, the RNG states of python/numpy/torch and the
training loop's own state. Both are written to a temp name and renamed, the
meta last, so a checkpoint exists only once complete. Older ones beyond
``keep`` are deleted. The names, and trimming, are `blut.status.checkpoints`'s.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blut.status.atomic import atomic_file, atomic_write
from blut.status.checkpoints import checkpoints, epoch_files, trim
from blut.status.private import private_dir


def rng_states() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and CUDA when present), JSON-able."""
    version, state, gauss = random.getstate()
    states: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": _jsonable(np.random.get_state(legacy=False)),
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }
    if torch.cuda.is_available():
        states["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()
        ]
    return states


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | np.integer):
        return value.tolist()
    return value


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    np.random.set_state(states["numpy"])
    torch.set_rng_state(_bytes_tensor(states["torch"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_bytes_tensor(s) for s in states["cuda"]])


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def save(
    directory: Path, epoch: int, tensors: dict[str, Any], meta: dict[str, Any], keep: int
) -> Path:
    """Write epoch ``epoch``'s checkpoint, prune to the last ``keep``; the ``.pt`` path."""
    private_dir(directory)
    pt, meta_path = epoch_files(directory, epoch)
    with atomic_file(pt) as f:
        torch.save(tensors, f)
    body = json.dumps({**meta, "epoch": epoch, "weights": pt.name}, indent=1).encode()
    atomic_write(meta_path, body)
    if keep > 0:
        trim(directory, keep)
    return pt


def epochs(directory: Path) -> list[int]:
    """Epochs with a complete checkpoint, ascending."""
    return [p.number for p in checkpoints(directory) if p.complete]


def latest(directory: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The last complete checkpoint as (meta, tensors), or None."""
    done = epochs(directory)
    if not done:
        return None
    meta = json.loads(epoch_files(directory, done[-1])[1].read_text())
    tensors = torch.load(directory / meta["weights"], map_location="cpu", weights_only=True)
    return meta, tensors
