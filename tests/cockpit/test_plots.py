"""Plots people can read: losses alone on their axis (log when they span decades), other
metrics as numbers, whole y labels (issue: lr and memory flattened the losses, labels cut)."""

from __future__ import annotations

from blut.cockpit.plot import Curve, render_plot, short_number, wants_log
from blut.cockpit.screens.job import plotted_metrics


def rows_right_half(lines: list[str]) -> int:
    """How many rows the right half of the curve (its later points) spans."""
    plots = [line.split("│", 1)[1] for line in lines]
    half = len(plots[0]) // 2
    return sum(1 for line in plots if line[half:].strip())


def test_a_falling_loss_uses_the_height_on_a_log_axis() -> None:
    loss = Curve("loss", [(i, 5.0 * 0.6**i) for i in range(12)], "cyan")  # 5 → 0.018
    assert wants_log([loss])
    linear = render_plot([loss], 60, 8)
    logged = render_plot([loss], 60, 8, log_y=True)
    # On a linear axis the later half of the run lies flat on the bottom row; on a log one
    # it still slopes down over several rows: "is the loss going down?" can be answered.
    assert rows_right_half([t.plain for t in linear]) == 1
    assert rows_right_half([t.plain for t in logged]) >= 3


def test_labels_are_whole() -> None:
    lines = render_plot([Curve("lr", [(0, 1.2e-4), (1, 3e-4)], "cyan")], 40, 5)
    assert lines[0].plain.split("│")[0].strip() == short_number(3e-4) == "3.0e-4"
    assert lines[-1].plain.split("│")[0].strip() == "1.2e-4"
    assert short_number(4.25) == "4.25" and short_number(0.538) == "0.538"


def test_only_losses_share_the_plot() -> None:
    names = ["lr", "peak_rss", "train_loss", "val_loss", "accuracy"]
    assert plotted_metrics(names) == ["train_loss", "val_loss"]
    assert plotted_metrics(["reward", "kl", "lr"]) == ["reward"]
    assert plotted_metrics(["total"]) == ["total"]
