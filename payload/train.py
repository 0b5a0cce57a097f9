"""Stage ``train``: a windowed model on a fold of the splits (kind ``model``).

A plain torch loop through accelerate (device placement; DDP when launched
with several processes): AdamW, warm-up then cosine/linear/constant decay,
gradient clipping, early stopping on the val loss. Seeds and deterministic
flags are set, shuffling depends on (seed, epoch) only, and every epoch ends
with a checkpoint in ``stage_dir/checkpoints`` (outside staging, so a rerun
finds it) holding everything the loop needs, RNG states included: a run
killed after epoch k and resumed gives bit-identical weights and metrics.
Per-epoch metric rows go to Parquet parts, ``train_loss`` every few steps to
the event stream (and through it to the job's telemetry sinks). Staging receives ``model.pt`` (the best epoch's state dict)
and ``model.json`` (how to rebuild it).

Multi-process (DDP). Run as ``python -m torch.distributed.run --standalone
--nproc_per_node=N -m blut.payload train`` (the engine does this for a stage
with ``processes`` > 1, or with several GPUs allocated), every rank builds the
same model from the same seed and draws the same (seed, epoch) permutation;
`SeededSampler` cuts it into the same global batches of ``batch_size`` that
one process would use and each rank takes its share of every batch. A rank's
loss is its share's summed loss × N / (global batch size), so DDP's gradient
average is exactly the gradient of the global batch's mean loss: the batch
size, steps per epoch and learning-rate schedule do not depend on N, and N
changes the result only by rounding (which is why the process count is not
part of the cache key). Validation is sharded the same way and its sums (loss,
correct, count) are all-reduced, so every rank sees the same val loss and
takes the same early-stopping decision. Only rank 0 emits events (see
`StageContext`), writes metric parts, checkpoints and staging; checkpoints
carry every rank's RNG state (dropout differs per rank), so a resume with the
same N is bit-identical on the CPU, and a resume with another N continues
(with a warning) but is equal only up to rounding. On the CPU the backend is
gloo (``Accelerator(cpu=True)``), on GPUs nccl, one process per GPU. At the
end the ranks meet at a barrier and leave with ``os._exit`` (see
`Trainer.leave`): torch's gloo teardown can deadlock at exit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import shutil
import signal
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from blut.payload import args, checkpoints, models
from blut.payload.context import StageContext
from blut.payload.errors import InputError
from blut.payload.load import SeededSampler, WindowDataset, loader
from blut.payload.shards import read_manifest
from blut.status.events import Checkpoint
from blut.status.metrics import MetricsWriter
from blut.status.private import private_dir

KIND = "model"
KILL_ENV = "BLUT_TEST_KILL_AFTER_EPOCH"  # fault injection: SIGKILL self after that epoch
_NOT_CONFIG = ("workers", "resume", "metric_every", "keep_checkpoints", "from_snapshot")
SNAPSHOT_MARKER = "snapshot"  # a restored snapshot's id, beside its checkpoint (jobs/snapshots.py)


def fingerprint(opts: dict[str, Any], input_hashes: list[str]) -> str:
    """sha256 of the args that shape the trajectory and of the inputs."""
    config = {k: v for k, v in opts.items() if k not in _NOT_CONFIG}
    text = json.dumps({"args": config, "inputs": input_hashes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seed_everything(seed: int, threads: int) -> None:
    """Seed python/numpy/torch and ask torch for deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def schedule(
    optimizer: torch.optim.Optimizer, kind: str, total: int, warmup: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then ``kind`` decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def datasets(
    ctx: StageContext, opts: dict[str, Any]
) -> tuple[WindowDataset, WindowDataset, list[str]]:
    """Train and val windows of the chosen fold, and the input hashes."""
    labeled, splits_dir = ctx.input("labeled"), ctx.input("splits")
    splits = read_manifest(splits_dir, "splits")
    manifest = read_manifest(labeled, "labeled")
    if splits["labeled_hash"] != manifest["content_hash"]:
        raise InputError("train: the splits were made from other labeled data")
    if opts["fold"] >= len(splits["folds"]):
        have = len(splits["folds"])
        raise InputError(f"train: fold {opts['fold']} asked, the splits have {have}")
    fold = splits["folds"][opts["fold"]]["splits"]
    train = WindowDataset(labeled, fold["train"]["ranges"], opts["window"])
    val = WindowDataset(labeled, fold["val"]["ranges"], opts["window"])
    splits_hash = hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()
    return train, val, [manifest["content_hash"], splits_hash]


def model_config(opts: dict[str, Any], train: WindowDataset) -> dict[str, Any]:
    """What `models.build` needs, plus what evaluate needs to read the outputs."""
    manifest = train.manifest
    classes = manifest.get("classes") or []
    return {
        "kind": opts["model"],
        "features": len(manifest["features"]),
        "window": opts["window"],
        "outputs": len(classes) if train.classification else 1,
        "hidden": opts["hidden"],
        "dropout": opts["dropout"],
        "task": manifest["task"],
        "classes": classes,
        "feature_names": manifest["features"],
        "horizon": manifest["horizon"],
    }


def loss_fn(task: str, reduction: str = "mean") -> nn.Module:
    """Cross-entropy for classes, MSE for regression."""
    if task == "classification":
        return nn.CrossEntropyLoss(reduction=reduction)
    return nn.MSELoss(reduction=reduction)


def forward(model: nn.Module, x: torch.Tensor, task: str) -> torch.Tensor:
    """Logits [batch, classes] or predictions [batch]."""
    out: torch.Tensor = model(x)
    return out if task == "classification" else out.squeeze(-1)


@torch.no_grad()
def validation_sums(model: nn.Module, batches: Any, task: str, device: torch.device) -> list[float]:
    """[summed val loss, correct predictions, samples] over ``batches``."""
    model.eval()
    criterion = loss_fn(task)
    total = correct = 0
    loss_sum = 0.0
    for x, y in batches:
        if not len(y):  # an empty DDP share of the last batch
            continue
        x, y = x.to(device), y.to(device)
        out = forward(model, x, task)
        loss_sum += float(criterion(out, y)) * len(y)
        total += len(y)
        if task == "classification":
            correct += int((out.argmax(dim=1) == y).sum())
    return [loss_sum, correct, total]


def validation_metrics(sums: list[float], task: str) -> dict[str, float]:
    """Mean val loss and accuracy (classes) or MSE (regression) from `validation_sums`."""
    loss_sum, correct, total = sums
    loss = loss_sum / max(total, 1)
    if task == "classification":
        return {"val_loss": loss, "val_accuracy": correct / max(total, 1)}
    return {"val_loss": loss, "val_mse": loss}


def validate(model: nn.Module, batches: Any, task: str, device: torch.device) -> dict[str, float]:
    """Mean val loss and accuracy (classes) or MSE (regression), in this process."""
    return validation_metrics(validation_sums(model, batches, task, device), task)


def _accelerator() -> Any:
    """accelerate's `Accelerator`; gloo on the CPU when torchrun started several processes."""
    from accelerate import Accelerator  # type: ignore[import-untyped, unused-ignore]

    several = int(os.environ.get("WORLD_SIZE") or 1) > 1
    return Accelerator(cpu=True) if several and not torch.cuda.is_available() else Accelerator()


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of ``rank`` > 0 after the model is built (its own dropout stream)."""
    digest = hashlib.sha256(f"{seed}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def peak_rss() -> int:
    """This process's peak resident memory in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Trainer:
    """One training run: model, optimizer, schedule, loaders and the loop's state."""

    def __init__(self, ctx: StageContext, opts: dict[str, Any]) -> None:
        """Build everything from the args and inputs (seeded first)."""
        self.ctx, self.opts = ctx, opts
        seed_everything(opts["seed"], opts["threads"])
        train_ds, val_ds, hashes = datasets(ctx, opts)
        self.config = model_config(opts, train_ds)
        self.task = self.config["task"]
        self.fingerprint = fingerprint(opts, hashes)
        self.accelerator = _accelerator()
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        model = models.build(self.config)
        mean, std = train_ds.feature_stats()
        model.get_buffer("mean").copy_(torch.from_numpy(mean))
        model.get_buffer("std").copy_(torch.from_numpy(std))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"]
        )
        acc = self.accelerator
        self.sampler = SeededSampler(
            len(train_ds), opts["batch_size"], opts["seed"], True, acc.process_index,
            acc.num_processes,
        )  # fmt: skip
        self.train_batches = loader(train_ds, self.sampler, opts["workers"])
        val_order = SeededSampler(
            len(val_ds), opts["batch_size"] * 4, shuffle=False, rank=acc.process_index,
            world=acc.num_processes,
        )  # fmt: skip
        self.val_batches = loader(val_ds, val_order)
        self.total_steps = len(self.train_batches) * opts["epochs"]
        warmup = int(self.total_steps * opts["warmup_fraction"])
        self.scheduler = schedule(optimizer, opts["schedule"], self.total_steps, warmup)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        if self.rank > 0:  # same init everywhere, but each rank its own dropout
            torch.manual_seed(rank_seed(opts["seed"], self.rank))
        self.criterion = loss_fn(self.task)
        self.criterion_sum = loss_fn(self.task, "sum")
        self.ckpt_dir = ctx.checkpoints_dir
        self.state: dict[str, Any] = {
            "epoch": 0, "step": 0, "best_val_loss": None, "best_epoch": None,
            "bad_epochs": 0, "stopped": False,
        }  # fmt: skip
        ctx.log(
            f"train: {self.config['kind']} on {len(train_ds)} train / {len(val_ds)} val windows "
            f"of {opts['window']}×{self.config['features']}, {len(self.train_batches)} "
            f"steps/epoch, device {acc.device}"
            + (f" × {self.world} processes ({acc.state.backend})" if self.world > 1 else "")
        )

    @property
    def net(self) -> nn.Module:
        """The bare model (unwrapped from DDP)."""
        net: nn.Module = self.accelerator.unwrap_model(self.model)
        return net

    def restore(self) -> None:
        """Continue from the last checkpoint of this fingerprint; drop stale ones."""
        snapshot = self.opts["from_snapshot"]
        if snapshot and self._restored_snapshot() != snapshot:
            raise InputError(
                f"train: snapshot {snapshot[:12]} was not restored into this stage "
                "(start from it with `blut recipe run RECIPE --from-snapshot ID`)"
            )
        wanted = self.opts["resume"] or bool(snapshot)
        found = checkpoints.latest(self.ckpt_dir) if wanted else None
        branch = found is not None and found[0]["fingerprint"] != self.fingerprint
        if branch and not snapshot:  # a snapshot's checkpoint of another config: a branch
            self.ctx.log("train: checkpoints of another config or input; starting over", "warning")
            found = None
        if found is None:
            self.accelerator.wait_for_everyone()  # no rank still reads what rank 0 removes
            if self.ctx.primary:
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
            return
        meta, tensors = found
        try:
            self.net.load_state_dict(tensors["model"])
            self.optimizer.load_state_dict(tensors["optimizer"])
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputError(f"train: the checkpoint does not fit this model ({first})") from exc
        self.scheduler.load_state_dict(tensors["scheduler"])
        ranks = meta.get("rng_ranks") or [meta["rng"]]
        if len(ranks) == self.world:
            checkpoints.set_rng_states(ranks[self.rank])
        else:
            checkpoints.set_rng_states(meta["rng"])
            if self.rank > 0:
                torch.manual_seed(rank_seed(self.opts["seed"] + meta["epoch"], self.rank))
            self.ctx.log(
                f"train: checkpoint written by {len(ranks)} process(es), resuming with "
                f"{self.world}: equal to an uninterrupted run only up to rounding",
                "warning",
            )
        self.state = meta["loop"]
        if branch:
            self._branch()
            self.ctx.log(
                f"train: branched from snapshot {snapshot[:12]} after epoch {meta['epoch']}"
            )
            return
        self.ctx.log(f"train: resumed after epoch {self.state['epoch']} (step {meta['step']})")

    def _restored_snapshot(self) -> str:
        try:
            return (self.ckpt_dir / SNAPSHOT_MARKER).read_text().strip()
        except OSError:
            return ""

    def _branch(self) -> None:
        """Continue a restored snapshot's state with this run's hyperparameters: the peak
        lr, weight decay and schedule length of these args, early stopping re-armed."""
        lr, scheduler = self.opts["lr"], self.scheduler
        scheduler.base_lrs = [lr for _ in self.optimizer.param_groups]
        factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group.update(initial_lr=lr, lr=lr * factor, weight_decay=self.opts["weight_decay"])
        scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.state["stopped"] = False

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the train windows; the epoch's metric row (without val)."""
        self.sampler.set_epoch(epoch)
        self.model.train()
        device, every = self.accelerator.device, self.opts["metric_every"]
        started = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for batch, (x, y) in enumerate(self.train_batches):
            x, y = x.to(device), y.to(device)
            out = forward(self.model, x, self.task)
            if self.world == 1:
                loss = self.criterion(out, y)
            else:  # DDP averages gradients over ranks: scale so they average the global batch
                share = self.criterion_sum(out, y)
                loss = share * (self.world / self.sampler.global_size(batch))
            self.accelerator.backward(loss)
            if self.opts["grad_clip"]:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.opts["grad_clip"])
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state["step"] += 1
            if self.world == 1:
                value = loss.detach().item()
                loss_sum += value * len(y)
            else:
                loss_sum += share.detach().item()
            seen += len(y)
            if self.state["step"] % every == 0:
                if self.world > 1:  # every rank reaches this step: a collective is safe
                    (summed,) = self.reduce([share.detach().item()])
                    value = summed / self.sampler.global_size(batch)
                self.ctx.metric({"train_loss": value}, step=self.state["step"], epoch=epoch)
                self.ctx.progress(self.state["step"], self.total_steps, "step")
        seconds = time.perf_counter() - started
        total_loss, total_seen = self.reduce([loss_sum, seen])
        return {
            "epoch": epoch,
            "step": self.state["step"],
            "train_loss": total_loss / max(total_seen, 1),
            "lr": self.scheduler.get_last_lr()[0],
            "samples_per_s": total_seen / seconds if seconds > 0 else None,
            "seconds": seconds,
        }

    def end_epoch(self, row: dict[str, Any]) -> None:
        """Early-stopping bookkeeping, then the epoch's checkpoint."""
        state, epoch = self.state, row["epoch"]
        state["epoch"] = epoch
        if state["best_val_loss"] is None or row["val_loss"] < state["best_val_loss"]:
            state.update(best_val_loss=row["val_loss"], best_epoch=epoch, bad_epochs=0)
            if self.ctx.primary:
                private_dir(self.ckpt_dir)
                torch.save(self.net.state_dict(), self.ckpt_dir / "best.pt")
        else:
            state["bad_epochs"] += 1
        patience = self.opts["patience"]
        state["stopped"] = bool(patience) and state["bad_epochs"] >= patience
        tensors = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        rng = checkpoints.rng_states()
        meta = {
            "step": state["step"],
            "fingerprint": self.fingerprint,
            "loop": state,
            "rng": rng,
            "metrics": row,
        }
        if self.world > 1:
            import torch.distributed as dist

            ranks: list[Any] = [None] * self.world
            dist.all_gather_object(ranks, rng)
            meta.update(rng_ranks=ranks, processes=self.world)
        if not self.ctx.primary:
            return
        path = checkpoints.save(self.ckpt_dir, epoch, tensors, meta, self.opts["keep_checkpoints"])
        self.ctx.emit(Checkpoint, path=str(path), step=state["step"])

    def fit(self) -> None:
        """Epochs until the last one or early stopping; metrics and checkpoints each epoch."""
        metrics = MetricsWriter(self.ctx.metrics_dir) if self.ctx.primary else None
        while self.state["epoch"] < self.opts["epochs"] and not self.state["stopped"]:
            epoch = self.state["epoch"] + 1
            row = self.train_epoch(epoch)
            sums = validation_sums(self.net, self.val_batches, self.task, self.accelerator.device)
            val = validation_metrics(self.reduce(sums), self.task)
            row = {**row, **val, "peak_rss": int(self.reduce([peak_rss()], "max")[0])}
            if metrics is not None:
                metrics.write_epoch(epoch, [row])
            values = {k: v for k, v in row.items() if k not in ("epoch", "step") and v is not None}
            self.ctx.metric(values, row["step"], epoch)
            self.end_epoch(row)
            self.ctx.log(
                f"train: epoch {epoch}/{self.opts['epochs']} train_loss {row['train_loss']:.4f} "
                f"val_loss {row['val_loss']:.4f}"
                + (" (early stop)" if self.state["stopped"] else "")
            )
            if os.environ.get(KILL_ENV) == str(epoch):
                os.kill(os.getpid(), signal.SIGKILL)

    def reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """``values`` summed (or maxed) over all ranks; unchanged in one process.

        A collective: every rank must call it at the same point.
        """
        if self.world == 1:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        result: list[float] = tensor.tolist()
        return result

    def leave(self) -> None:
        """End this rank once every rank is done, skipping torch's gloo teardown.

        Freeing the DDP reducer while a gloo worker thread still releases a
        finished collective deadlocks (the worker waits for the GIL the freeing
        thread holds while it joins the worker; pytorch#75097), and exiting
        with the workers alive can abort. Every output is on disk once all
        ranks pass the barrier, so each rank closes its event writer, flushes
        and leaves with ``os._exit(0)``. One process returns normally.
        """
        if self.world == 1:
            return
        self.accelerator.wait_for_everyone()
        self.ctx.finish(0)
        self.ctx.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def publish(self) -> None:
        """The best epoch's weights and model.json into staging (rank 0)."""
        if not self.ctx.primary:
            return
        staging, state = self.ctx.staging, self.state
        shutil.copyfile(self.ckpt_dir / "best.pt", staging / "model.pt")
        summary = {
            **self.config,
            "fingerprint": self.fingerprint,
            "epochs_run": state["epoch"],
            "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_val_loss"],
            "processes": self.world,
            "args": self.opts,
        }
        (staging / "model.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.ctx.log(
            f"train: best epoch {state['best_epoch']} (val_loss {state['best_val_loss']:.4f})"
        )


def run(ctx: StageContext, argv: list[str]) -> int:
    """Train on the ``labeled`` + ``splits`` inputs; the model goes to ``ctx.staging``."""
    trainer = Trainer(ctx, args.resolve("train", ctx.args, argv))
    trainer.restore()
    trainer.fit()
    trainer.publish()
    trainer.leave()
    return 0
