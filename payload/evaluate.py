"""Stage ``evaluate``: the trained model on a split (kind ``evaluation``).

Classification: accuracy, F1 per class and macro, a confusion matrix;
regression: MSE and the information coefficient (Spearman rank correlation of
predictions and forward returns). Positions (up → +1, down → -1, flat → 0, or
the prediction's sign) feed a daily long/short backtest against buy-and-hold.
Staging receives metrics.parquet (one row), confusion.parquet,
predictions.parquet, equity.parquet and summary.json; the log gets a summary.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch

from blut.payload import args, backtest, models
from blut.payload.context import StageContext
from blut.payload.errors import InputError
from blut.payload.load import SeededSampler, WindowDataset, loader
from blut.payload.shards import read_manifest

KIND = "evaluation"


def predict(model: torch.nn.Module, dataset: WindowDataset, batch_size: int) -> np.ndarray:
    """Model outputs for every sample, in sample order ([n, classes] or [n])."""
    model.eval()
    outs = []
    with torch.no_grad():
        for x, _ in loader(dataset, SeededSampler(len(dataset), batch_size, shuffle=False)):
            outs.append(model(x).numpy())
    out = np.concatenate(outs)
    return out if dataset.classification else out[:, 0]


def classification_metrics(
    true: np.ndarray, pred: np.ndarray, classes: list[str]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Accuracy, F1 per class and macro F1; the confusion matrix (rows true, columns predicted)."""
    k = len(classes)
    confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    metrics: dict[str, float] = {"accuracy": float(np.mean(true == pred))}
    f1s = []
    for i, name in enumerate(classes):
        tp = confusion[i, i]
        precision = tp / max(confusion[:, i].sum(), 1)
        recall = tp / max(confusion[i, :].sum(), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics[f"f1_{name}"] = float(f1)
        f1s.append(f1)
    metrics["f1_macro"] = float(np.mean(f1s))
    table = pd.DataFrame(confusion, columns=[f"pred_{c}" for c in classes])
    table.insert(0, "true", classes)
    return metrics, table


def regression_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE and the rank information coefficient."""
    ranks = pd.Series(pred).rank(), pd.Series(true).rank()  # Spearman, without scipy
    ic = ranks[0].corr(ranks[1]) if len(true) > 1 else np.nan
    return {"mse": float(np.mean((pred - true) ** 2)), "ic": float(ic)}


def positions(output: np.ndarray, classification: bool, min_signal: float) -> np.ndarray:
    """+1 / 0 / -1 per sample."""
    if classification:
        return np.asarray(output.argmax(axis=1) - 1)  # down/flat/up → -1/0/+1
    return np.where(np.abs(output) > min_signal, np.sign(output), 0.0).astype(np.int64)


def load_model(ctx: StageContext) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model (CPU) and its model.json."""
    directory = ctx.input("model")
    try:
        config = json.loads((directory / "model.json").read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{directory}: no model.json (expected a 'model' artifact)") from exc
    model = models.build(config)
    model.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
    return model, config


def run(ctx: StageContext, argv: list[str]) -> int:
    """Evaluate the ``model`` input on a split of ``labeled`` + ``splits``."""
    opts = args.resolve("evaluate", ctx.args, argv)
    model, config = load_model(ctx)
    labeled, splits = ctx.input("labeled"), read_manifest(ctx.input("splits"), "splits")
    fold_index = config["args"]["fold"] if opts["fold"] is None else opts["fold"]
    fold = splits["folds"][fold_index]["splits"]
    if opts["split"] not in fold:
        raise InputError(
            f"evaluate: the splits have no {opts['split']!r} split (have {', '.join(fold)})"
        )
    dataset = WindowDataset(labeled, fold[opts["split"]]["ranges"], config["window"])
    output = predict(model, dataset, opts["batch_size"])
    target = dataset.column("target")
    frame = pd.DataFrame(
        {
            "ticker": dataset.column("ticker"),
            "date": dataset.column("date"),
            "target": target,
            "fwd_return": dataset.column("fwd_return"),
            "next_return": dataset.column("next_return"),
            "position": positions(output, dataset.classification, opts["min_signal"]),
        }
    )
    if dataset.classification:
        frame["prediction"] = output.argmax(axis=1)
        metrics, confusion = classification_metrics(
            target, frame["prediction"].to_numpy(), config["classes"]
        )
        confusion.to_parquet(ctx.staging / "confusion.parquet", index=False)
    else:
        frame["prediction"] = output
        metrics = regression_metrics(target, output)
    days = backtest.daily(frame, opts["cost_bps"])
    for name in ("strategy", "buy_hold"):
        metrics |= {f"{name}_{k}": v for k, v in backtest.summary(days[name].to_numpy()).items()}
    metrics["strategy_turnover"] = float(days["turnover"].mean()) if len(days) else 0.0
    row = {"split": opts["split"], "fold": fold_index, "samples": len(frame), **metrics}
    pd.DataFrame([row]).to_parquet(ctx.staging / "metrics.parquet", index=False)
    frame.to_parquet(ctx.staging / "predictions.parquet", index=False)
    days.to_parquet(ctx.staging / "equity.parquet", index=False)
    summary = {"kind": KIND, **row, "model": config["kind"], "task": config["task"], "args": opts}
    (ctx.staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ctx.log(summary_text(row))
    return 0


def summary_text(row: dict[str, Any]) -> str:
    """A few lines for humans."""
    head = (
        f"accuracy {row['accuracy']:.3f}  macro F1 {row['f1_macro']:.3f}"
        if "accuracy" in row
        else f"MSE {row['mse']:.6f}  IC {row['ic']:.3f}"
    )
    return (
        f"evaluate: {row['split']} ({row['samples']} samples): {head}\n"
        f"  long/short: return {row['strategy_cum_return']:+.1%}  Sharpe {row['strategy_sharpe']:.2f}"
        f"  max drawdown {row['strategy_max_drawdown']:.1%}  turnover {row['strategy_turnover']:.2f}/day\n"
        f"  buy & hold: return {row['buy_hold_cum_return']:+.1%}  Sharpe {row['buy_hold_sharpe']:.2f}"
        f"  max drawdown {row['buy_hold_max_drawdown']:.1%}"
    )
