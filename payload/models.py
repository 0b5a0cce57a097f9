"""The small models of ``train``: linear baseline, MLP, 1-D CNN and GRU over a window.

Every model takes x [batch, window, features] and first standardises it with
the train split's feature mean and std, kept as buffers so a saved state dict
carries them. `build` makes a model from the plain config stored in model.json.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

KINDS = ("linear", "mlp", "cnn", "gru")


class _Windowed(nn.Module):
    """Standardise, then ``body`` (which maps [batch, window, features] to [batch, outputs])."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: int, body: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body((x - self.mean) / self.std)
        return out


class _Cnn(nn.Module):
    def __init__(self, features: int, hidden: int, dropout: float, outputs: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(features, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.GELU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))  # [batch, hidden, window]
        return self.head(torch.cat((h.mean(dim=2), h[:, :, -1]), dim=1))  # type: ignore[no-any-return]


class _Gru(nn.Module):
    def __init__(self, features: int, hidden: int, dropout: float, outputs: int) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(x)
        return self.head(last[-1])  # type: ignore[no-any-return]


def build(config: dict[str, Any]) -> nn.Module:
    """A model from ``{kind, features, window, outputs, hidden, dropout}``."""
    kind, f, w, out = config["kind"], config["features"], config["window"], config["outputs"]
    hidden, dropout = config["hidden"], config["dropout"]
    body: nn.Module
    if kind == "linear":
        body = nn.Sequential(nn.Flatten(), nn.Linear(w * f, out))
    elif kind == "mlp":
        body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w * f, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out),
        )
    elif kind == "cnn":
        body = _Cnn(f, hidden, dropout, out)
    elif kind == "gru":
        body = _Gru(f, hidden, dropout, out)
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return _Windowed(f, body)
