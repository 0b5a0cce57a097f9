"""What every LLM stage shares: offline env, model loading, TRL config, metrics, resume.

Checkpoints are the HF Trainer's own (``stage_dir/checkpoints/checkpoint-N``:
weights, optimizer, scheduler, RNG states, trainer state), written every
``save_every`` steps. A ``fingerprint`` file next to them names the config and
inputs they belong to; a rerun with the same fingerprint resumes from the last
one (bit-identical on CPU), any other starts over. A run ``from_snapshot`` finds
the snapshot's checkpoint restored into that folder (`blut.jobs.snapshots.restore`,
with a ``snapshot`` marker naming it) and resumes from it: bit-identically with
the same config, as a branch with another (the new peak lr, schedule and weight
decay applied to the restored optimizer at the restored step). Step metrics go to the event
stream as they are logged and are flushed as one Parquet part
(``metrics/part-<step>.parquet``) at every eval, save and at the end, so the
parts always line up with checkpoints: a killed run never leaves rows that a
resumed run would write again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blut.payload.context import StageContext
from blut.payload.errors import InputError, PayloadError
from blut.payload.llm import progress
from blut.status.lmdir import ADAPTER_CONFIG, ADAPTER_DIR

EXTRA_MODULES = ("torch", "transformers", "trl", "tokenizers", "datasets")
KILL_ENV = "BLUT_TEST_KILL_AFTER_STEP"
"""Fault injection: after the checkpoint of that step, SIGKILL self (``raise`` in KILL_MODE_ENV)."""
KILL_MODE_ENV = "BLUT_TEST_KILL_MODE"
REF_FILE = "ref.json"
FINGERPRINT_FILE = "fingerprint"
SNAPSHOT_MARKER = "snapshot"
"""A restored snapshot's id, beside its checkpoint (written by `blut.jobs.snapshots.restore`)."""
NOT_CONFIG = ("resume", "keep_checkpoints", "log_every", "threads", "save_every", "from_snapshot")
"""Args that never change the trajectory (left out of the checkpoint fingerprint)."""


class StopForTest(Exception):
    """Raised by the kill-injection hook when ``BLUT_TEST_KILL_MODE=raise`` (in-process tests)."""


def prepare(ctx: StageContext, stage: str) -> None:
    """Offline hub, a stage-local HF cache, quiet tokenizers; refuse without the extra."""
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise PayloadError(
            f"{stage}: needs the llm extra (missing {', '.join(missing)}): pip install 'blut[llm]'"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    os.environ.setdefault("HF_HOME", str(ctx.stage_dir / "hf-home"))
    os.environ.setdefault("WANDB_DISABLED", "true")
    progress.quiet()


ALL_LINEAR = "all-linear"
"""peft's shorthand for every linear layer but the output head (``lora_target_modules``)."""

OPTIMIZERS = {"adamw": "adamw_torch", "sgd": "sgd", "adafactor": "adafactor"}
"""The schemas' ``optimizer`` values → the HF Trainer's ``optim`` names."""

_TOKENIZERS: dict[Path, Path] = {}
"""Model dir → the separate tokenizer dir its ref.json names (filled by `lm_path`)."""
_TEMPLATES: dict[Path, str] = {}
"""Model dir → the chat template its ref.json names (``model.chat_template``; `lm_path`)."""


def lm_path(artifact: Path) -> Path:
    """The model directory of an ``lm`` artifact: itself, or the local path its ref.json names.

    When the ref names a separate tokenizer dir or a chat template, `load_tokenizer`
    of the returned model dir loads that tokenizer, with that template.
    """
    ref = artifact / REF_FILE
    if ref.is_file():
        data = json.loads(ref.read_text())
        path = Path(data["path"])
        if data.get("tokenizer"):
            _TOKENIZERS[path] = Path(data["tokenizer"])
        if data.get("chat_template"):
            _TEMPLATES[path] = str(data["chat_template"])
        return path
    return artifact


def input_lm(ctx: StageContext, stage: str | None = None) -> Path:
    """The model dir of the one ``lm`` input, or of the one from upstream ``stage``."""
    if stage is None:
        return lm_path(ctx.input("lm"))
    for item in ctx.inputs:
        if item.get("kind") == "lm" and item.get("stage") == stage:
            return lm_path(Path(item["path"]))
    have = ", ".join(str(i.get("stage")) for i in ctx.inputs if i.get("kind") == "lm")
    raise InputError(f"{ctx.stage}: no lm input from stage {stage!r} (lm inputs: {have or 'none'})")


def input_hashes(ctx: StageContext) -> list[str]:
    """The upstream artifact hashes, sorted (part of checkpoint fingerprints)."""
    return sorted(str(i.get("hash")) for i in ctx.inputs)


def fingerprint(stage: str, opts: Mapping[str, Any], hashes: Iterable[str]) -> str:
    """sha256 of what shapes a run's trajectory: program, args (less NOT_CONFIG), inputs."""
    config = {k: v for k, v in opts.items() if k not in NOT_CONFIG}
    text = json.dumps({"stage": stage, "args": config, "inputs": list(hashes)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def has_gpu() -> bool:
    """True when torch sees a CUDA device (CUDA_VISIBLE_DEVICES is the engine's allocation)."""
    import torch

    return bool(torch.cuda.is_available())


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads (0: leave torch's default)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def load_tokenizer(path: Path) -> Any:
    """The tokenizer saved with a model dir (pad token set to eos when it has none).

    With the chat template its ref.json names, when it names one.
    """
    from transformers import AutoTokenizer

    template = _TEMPLATES.get(path)
    path = _TOKENIZERS.get(path, path)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if template is not None:
        tok.chat_template = template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: Path, attn: str = "auto") -> Any:
    """A causal LM from a local dir, in fp32, with attention kernel ``attn`` (auto: the default).

    A peft adapter dir (an ``lm`` saved with ``lora_save=adapter``) is loaded
    on top of the base model its ``adapter_config.json`` names and merged.
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, "local_files_only": True}
    if attn != "auto":
        if attn.startswith("flash_attention") and not has_gpu():
            raise InputError(f"attn_implementation {attn} needs a GPU; use sdpa or eager")
        kwargs["attn_implementation"] = attn
    adapter = path / ADAPTER_CONFIG
    if adapter.is_file() and not (path / "config.json").is_file():
        from peft import PeftModel

        base_dir = Path(json.loads(adapter.read_text())["base_model_name_or_path"])
        if not (base_dir / "config.json").is_file():
            raise InputError(f"{path}: the adapter's base model {base_dir} is gone")
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), **kwargs)
        return PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def checkpoint_dir(ctx: StageContext) -> Path:
    """Where the Trainer keeps resumable checkpoints (outside staging, so a rerun finds them)."""
    return ctx.checkpoints_dir


def resume_point(ctx: StageContext, fp: str, resume: bool, snapshot: str = "") -> str | None:
    """The checkpoint to resume from, or None after clearing checkpoints of another config;
    with ``snapshot``, the newest checkpoint of (or after) that restored snapshot."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = checkpoint_dir(ctx)
    mark = ckpt / FINGERPRINT_FILE
    if snapshot:
        return _snapshot_point(ctx, fp, snapshot)
    if resume and mark.is_file() and mark.read_text().strip() == fp:
        last = get_last_checkpoint(str(ckpt))  # type: ignore[no-untyped-call, unused-ignore]
        if last is not None:
            ctx.log(f"{ctx.stage}: resuming from {Path(last).name}")
            return str(last)
        return None
    if ckpt.exists():
        if mark.is_file():
            ctx.log(
                f"{ctx.stage}: checkpoints of another config or input; starting over", "warning"
            )
        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True)
    mark.write_text(fp + "\n")
    return None


def _snapshot_point(ctx: StageContext, fp: str, snapshot: str) -> str:
    """The checkpoint a run ``from_snapshot`` resumes from (refused when the snapshot was not
    restored); a config other than the snapshot's makes the run a branch of it."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = checkpoint_dir(ctx)
    try:
        restored = (ckpt / SNAPSHOT_MARKER).read_text().strip()
    except OSError:
        restored = ""
    last = get_last_checkpoint(str(ckpt)) if restored == snapshot else None  # type: ignore[no-untyped-call, unused-ignore]
    if last is None:
        raise InputError(
            f"{ctx.stage}: snapshot {snapshot[:12]} was not restored into this stage "
            "(start from it with `blut recipe run RECIPE --from-snapshot ID`)"
        )
    mark = ckpt / FINGERPRINT_FILE
    was = mark.read_text().strip() if mark.is_file() else ""
    if was != fp:
        mark.write_text(fp + "\n")  # its checkpoints from here on belong to this config
        ctx.log(f"{ctx.stage}: branched from snapshot {snapshot[:12]} at {Path(last).name}")
    else:
        ctx.log(f"{ctx.stage}: continuing snapshot {snapshot[:12]} from {Path(last).name}")
    return str(last)


def train_config(ctx: StageContext, opts: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Keyword args shared by every TRL config: CPU-safe precision, explicit save/eval/report."""
    gpu = has_gpu()
    precision = opts.get("precision", "fp32")
    if precision != "fp32" and not gpu:
        ctx.log(f"{ctx.stage}: precision {precision} needs a GPU; using fp32 on the CPU", "warning")
        precision = "fp32"
    eval_every = int(opts.get("eval_every", 0))
    epochs = float(opts.get("epochs", 0))
    config: dict[str, Any] = {
        "output_dir": str(checkpoint_dir(ctx)),
        "max_steps": -1 if epochs > 0 else int(opts["max_steps"]),
        "num_train_epochs": epochs if epochs > 0 else 1.0,
        "optim": OPTIMIZERS[opts.get("optimizer", "adamw")],
        "per_device_train_batch_size": int(opts["batch_size"]),
        "per_device_eval_batch_size": int(opts["batch_size"]),
        "gradient_accumulation_steps": int(opts.get("grad_accum", 1)),
        "learning_rate": float(opts["lr"]),
        "lr_scheduler_type": opts.get("schedule", "constant"),
        "warmup_steps": int(opts.get("warmup_steps", 0)),
        "weight_decay": float(opts.get("weight_decay", 0.0)),
        "max_grad_norm": float(opts.get("max_grad_norm", 1.0)),
        "logging_steps": int(opts.get("log_every", 1)),
        "save_strategy": "steps",
        "save_steps": int(opts.get("save_every", 10)),
        "save_total_limit": int(opts.get("keep_checkpoints", 2)),
        "eval_strategy": "steps" if eval_every else "no",
        "eval_steps": eval_every or None,
        "report_to": "none",
        "use_cpu": not gpu,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "dataloader_num_workers": 0,
        "seed": int(opts["seed"]),
        "data_seed": int(opts["seed"]),
        "disable_tqdm": True,
        "remove_unused_columns": True,
        **checkpointing(bool(opts.get("gradient_checkpointing", False))),
    }
    config.update(extra)
    return config


def checkpointing(on: bool) -> dict[str, Any]:
    """The TrainingArguments fields that turn activation checkpointing ``on`` or off.

    transformers 5.24 renamed ``gradient_checkpointing`` to ``activation_checkpointing``
    and warns (FutureWarning) whenever the old name is set, which TRL's configs do by
    default (True): set the new name, and the old one to None, where it exists.
    """
    from dataclasses import fields

    from transformers import TrainingArguments

    if any(field.name == "activation_checkpointing" for field in fields(TrainingArguments)):
        return {"activation_checkpointing": on, "gradient_checkpointing": None}
    return {"gradient_checkpointing": on}


def peft_config(opts: Mapping[str, Any]) -> Any:
    """A LoRA config when ``lora`` is on, else None (peft imported only then)."""
    if not opts.get("lora"):
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise PayloadError("lora: needs peft: pip install 'blut[llm]'") from exc
    targets = list(opts.get("lora_target_modules", [ALL_LINEAR]))
    return LoraConfig(
        r=int(opts.get("lora_r", 8)),
        lora_alpha=int(opts.get("lora_alpha", 16)),
        lora_dropout=float(opts.get("lora_dropout", 0.0)),
        target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets,
        task_type=opts.get("lora_task", "CAUSAL_LM"),
    )


def check_lora(stage: str, opts: Mapping[str, Any]) -> None:
    """Refuse LoRA settings that need ``lora`` on (one line, before any model loads)."""
    if not opts.get("lora") and opts.get("lora_save", "merged") != "merged":
        raise InputError(f"{stage}: lora_save={opts['lora_save']} needs lora=true")
    targets = list(opts.get("lora_target_modules", [ALL_LINEAR]))
    if ALL_LINEAR in targets and len(targets) > 1:
        raise InputError(f"{stage}: lora_target_modules: {ALL_LINEAR} stands alone")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def stage_callback(ctx: StageContext) -> Any:
    """A TrainerCallback that reports logs as metric events and flushes Parquet parts."""
    from transformers import TrainerCallback

    from blut.status.events import Checkpoint
    from blut.status.metrics import MetricsWriter

    class StageCallback(TrainerCallback):  # type: ignore[misc, unused-ignore]
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self.writer = MetricsWriter(ctx.metrics_dir)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = dict(logs or {})
            if "train_runtime" in logs:  # the end-of-run summary, not a step
                return
            values = {k: v for k, v in ((k, _number(v)) for k, v in logs.items()) if v is not None}
            values.pop("epoch", None)
            values.pop("step", None)
            if not values:
                return
            step = int(state.global_step)
            ctx.metric(values, step=step)
            self.rows.append({"step": step, "epoch": float(state.epoch or 0.0), **values})

        def flush(self, state: Any) -> None:
            if self.rows:
                self.writer.write_epoch(int(state.global_step), self.rows)
                self.rows = []

        def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.flush(state)

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.flush(state)
            path = checkpoint_dir(ctx) / f"checkpoint-{state.global_step}"
            ctx.emit(Checkpoint, path=str(path), step=int(state.global_step))
            if os.environ.get(KILL_ENV) == str(state.global_step):
                if os.environ.get(KILL_MODE_ENV) == "raise":
                    raise StopForTest(f"stopped after step {state.global_step}")
                os.kill(os.getpid(), signal.SIGKILL)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.flush(state)

    return StageCallback()


def losses(ctx: StageContext, key: str = "loss") -> list[float]:
    """The logged ``key`` values of this stage's metric parts, in step order."""
    from blut.status.metrics import read_metrics

    table = read_metrics(ctx.metrics_dir)
    if key not in table.column_names:
        return []
    return [float(v) for v in table.column(key).to_pylist() if v is not None]


def rebase_callback(trainer: Any) -> Any:
    """A TrainerCallback that, when the restored optimizer's peak lr or weight decay differ
    from this run's args (a branch of a snapshot), applies this run's at the restored step
    (the schedule's shape is already this run's); a plain resume is left untouched."""
    from transformers import TrainerCallback

    class Rebase(TrainerCallback):  # type: ignore[misc, unused-ignore]
        def on_train_begin(
            self, args: Any, state: Any, control: Any, optimizer: Any = None,
            lr_scheduler: Any = None, model: Any = None, **kw: Any,
        ) -> None:  # fmt: skip
            if optimizer is None or lr_scheduler is None or model is None:
                return
            peak, decay = float(args.learning_rate), float(args.weight_decay)
            names = {id(p): n for n, p in model.named_parameters()}
            decayed = set(trainer.get_decay_parameter_names(model))
            groups = optimizer.param_groups
            wants = [
                decay if any(names.get(id(p)) in decayed for p in g["params"]) else 0.0
                for g in groups
            ]
            bases = list(getattr(lr_scheduler, "base_lrs", []))
            if (
                bases == [peak] * len(groups)
                and [g.get("weight_decay", 0.0) for g in groups] == wants
            ):
                return
            lambdas = getattr(lr_scheduler, "lr_lambdas", None)
            for i, (group, wd) in enumerate(zip(groups, wants, strict=True)):
                scale = lambdas[i](lr_scheduler.last_epoch) if lambdas else 1.0
                group["lr"], group["initial_lr"], group["weight_decay"] = peak * scale, peak, wd
            lr_scheduler.base_lrs = [peak] * len(groups)
            lr_scheduler._last_lr = [g["lr"] for g in groups]

    return Rebase()


def fit(ctx: StageContext, trainer: Any, resume_from: str | None) -> dict[str, Any]:
    """Run ``trainer`` (from ``resume_from`` when set); refuse a non-finite final loss.

    Progress goes out as events (`progress.progress_callback`), not printed dicts.
    A resumed run carries on what the checkpoint's trainer state logged: the
    trainer's token count (``num_tokens`` goes on from there, not from 0) and the
    losses before it, so ``train_loss`` is the mean over every step, not only the
    resumed ones (``resumed_from_step`` says where it resumed).
    """
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(progress.progress_callback(ctx))
    before = _logged(Path(resume_from)) if resume_from else Logged()
    if before.tokens is not None and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = before.tokens
    if resume_from is not None:
        trainer.add_callback(rebase_callback(trainer))
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(result.metrics)
    loss = _number(metrics.get("train_loss"))
    if loss is not None and resume_from:
        ran = int(trainer.state.global_step) - before.step
        metrics["train_loss"] = loss = (before.loss_sum + loss * ran) / max(
            before.loss_steps + ran, 1
        )
        metrics["resumed_from_step"] = before.step
    if loss is not None and not math.isfinite(loss):
        raise PayloadError(f"{ctx.stage}: training diverged (train_loss {loss})")
    return metrics


@dataclass
class Logged:
    """What a checkpoint's trainer state logged before it: its step, the sum of the
    per-step training losses over the steps they cover, and the last ``num_tokens``."""

    step: int = 0
    loss_sum: float = 0.0
    loss_steps: int = 0
    tokens: int | None = None


def _logged(checkpoint: Path) -> Logged:
    """`Logged` of the HF checkpoint dir ``checkpoint`` (its ``trainer_state.json``)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    out = Logged(step=int(state.get("global_step", 0)))
    last = 0
    for entry in state.get("log_history", []):
        step = int(entry.get("step", 0))
        if "train_runtime" in entry or step > out.step:
            continue
        loss = _number(entry.get("loss"))
        if loss is not None and step > last:
            out.loss_sum += loss * (step - last)
            out.loss_steps += step - last
            last = step
        tokens = _number(entry.get("num_tokens"))
        if tokens is not None:
            out.tokens = int(tokens)
    return out


def publish(
    ctx: StageContext,
    model: Any,
    tokenizer: Any,
    summary: Mapping[str, Any],
    save: str = "merged",
) -> None:
    """Save the trained model and tokenizer into staging, plus train.json.

    A LoRA model is saved as ``save`` says: ``merged`` (a plain model dir),
    ``adapter`` (peft's adapter dir: adapter_config.json naming the input model
    dir, adapter_model.safetensors) or ``both`` (merged, the adapter dir in
    ``adapter/``). Every dir written holds the tokenizer.
    """
    if hasattr(model, "merge_and_unload"):
        if save != "merged":
            where = ctx.staging if save == "adapter" else ctx.staging / ADAPTER_DIR
            model.save_pretrained(str(where), safe_serialization=True)
            tokenizer.save_pretrained(str(where))
        model = None if save == "adapter" else model.merge_and_unload()
    if model is not None:
        model.save_pretrained(str(ctx.staging), safe_serialization=True)
        tokenizer.save_pretrained(str(ctx.staging))
    (ctx.staging / "train.json").write_text(json.dumps(dict(summary), indent=2, default=str) + "\n")


def read_table(path: Path) -> Any:
    """A pyarrow table from a Parquet file or a JSONL file."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"no such data file: {path}")
    if path.suffix in JSONL_SUFFIXES:
        return pj.read_json(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    raise InputError(f"{path}: expected a .jsonl or .parquet file")


JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def to_dataset(table: Any) -> Any:
    """An in-memory `datasets.Dataset` over a pyarrow table (no cache files)."""
    from datasets import Dataset  # type: ignore[import-untyped, unused-ignore]

    return Dataset.from_dict(table.to_pydict())


def to_dataset_rows(rows: list[dict[str, Any]]) -> Any:
    """An in-memory `datasets.Dataset` from a list of rows."""
    from datasets import Dataset  # type: ignore[import-untyped, unused-ignore]

    return Dataset.from_list(rows)
