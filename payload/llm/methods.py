"""Training stages on TRL: ``sft``, ``reward``, ``dpo`` (dpo/ipo/kto), ``grpo``, ``distill``.

Each stage resolves its args from its schema, loads the ``lm`` input and its
data, builds the matching TRL config from `common.train_config` (CPU-safe
precision, explicit save/eval/report settings), resumes from its own
checkpoints when the fingerprint matches, reports through
`common.stage_callback`, and publishes the trained model + tokenizer (with
LoRA: merged, the adapter dir, or both, as ``lora_save`` says) into staging
with a ``train.json`` summary. The ``*_config`` functions build each TRL
config from the stage's resolved args, so every knob the schema declares is
passed on in one visible place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import DataError, InputError
from blut.payload.llm import common
from blut.payload.llm.data import (
    PREFS_FILE,
    TOKENS_FILE,
    check_chat_template,
    prompt_messages,
    read_prefs_manifest,
    read_prompts,
)
from blut.status import records


class Run:
    """What every method stage does around its trainer."""

    def __init__(self, ctx: StageContext, stage: str, argv: list[str]) -> None:
        """Prepare the environment and resolve ``stage``'s args."""
        common.prepare(ctx, stage)
        self.ctx, self.stage = ctx, stage
        self.opts = args.resolve(stage, ctx.args, argv)
        common.check_lora(stage, self.opts)
        common.set_threads(self.opts["threads"])
        self.fingerprint = common.fingerprint(stage, self.opts, common.input_hashes(ctx))
        self.resume_from = common.resume_point(ctx, self.fingerprint, self.opts["resume"])

    def split(self, dataset: Any) -> tuple[Any, Any]:
        """(train, eval or None): a seeded hold-out when ``eval_every`` is on."""
        if not self.opts["eval_every"] or len(dataset) < 4:
            return dataset, None
        parts = dataset.train_test_split(
            test_size=self.opts["eval_fraction"], seed=self.opts["seed"]
        )
        return parts["train"], parts["test"]

    def model(self, model_dir: Path) -> Any:
        """The causal LM to train, with the stage's attention kernel."""
        return common.load_causal_lm(model_dir, self.opts["attn_implementation"])

    def train(self, trainer: Any, tokenizer: Any, **summary: Any) -> int:
        """Fit, then publish the model and a summary into staging."""
        metrics = common.fit(self.ctx, trainer, self.resume_from)
        model = trainer.accelerator.unwrap_model(trainer.model)
        params = list(model.parameters())
        body = {
            "stage": self.stage,
            "fingerprint": self.fingerprint,
            "steps": int(trainer.state.global_step),
            "params": sum(p.numel() for p in params),
            "trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "lora": bool(self.opts.get("lora")),
            "metrics": metrics,
            "args": self.opts,
            **summary,
        }
        common.publish(self.ctx, model, tokenizer, body, self.opts.get("lora_save", "merged"))
        loss = metrics.get("train_loss")
        self.ctx.log(f"{self.stage}: {trainer.state.global_step} steps, mean train_loss {loss}")
        return 0


def _tokens(ctx: StageContext) -> Any:
    path = ctx.input("tokens") / TOKENS_FILE
    if not path.is_file():
        raise InputError(f"{ctx.stage}: the tokens input has no {TOKENS_FILE}")
    return common.to_dataset(common.read_table(path))


def _prefs(ctx: StageContext, tok: Any, unpaired_ok: bool = False) -> tuple[Any, bool]:
    """The preference rows and whether they are unpaired (KTO's prompt/completion/label).

    Chat rows need the tokenizer's chat template, and unpaired rows a stage
    that takes them (one-line DataError each).
    """
    path = ctx.input("preferences") / PREFS_FILE
    if not path.is_file():
        raise InputError(f"{ctx.stage}: the preferences input has no {PREFS_FILE}")
    manifest = read_prefs_manifest(path.parent)
    if manifest.get("chat") and tok.chat_template is None:
        raise DataError(records.no_template(ctx.stage, "chat preference pairs"))
    unpaired = bool(manifest.get("unpaired"))
    if unpaired and not unpaired_ok:
        raise DataError(records.needs_pairs(ctx.stage))
    return common.to_dataset(common.read_table(path)), unpaired


def sft_config(ctx: StageContext, opts: dict[str, Any]) -> Any:
    """The SFTConfig of the sft stage's args (packing: best-fit decreasing, padding-free).

    Padding-free without packing takes examples already cut to ``max_length``
    (see `_truncated`), as TRL asks.
    """
    from trl import SFTConfig  # type: ignore[attr-defined, unused-ignore]

    unpacked_free = opts["padding_free"] and not opts["packing"]
    return SFTConfig(
        **common.train_config(
            ctx,
            opts,
            max_length=None if unpacked_free else opts["max_length"],
            completion_only_loss=True,
            packing=opts["packing"],
            packing_strategy="bfd",
            padding_free=opts["padding_free"],
        )
    )


def _truncated(dataset: Any, max_length: int) -> Any:
    """Every example cut to ``max_length`` tokens (input_ids and completion_mask)."""
    return dataset.map(
        lambda row: {k: row[k][:max_length] for k in ("input_ids", "completion_mask")}
    )


def sft(ctx: StageContext, argv: list[str]) -> int:
    """Supervised fine-tuning on pre-tokenized examples (loss where completion_mask is 1)."""
    run = Run(ctx, "sft", argv)
    from trl import SFTTrainer  # type: ignore[attr-defined, unused-ignore]

    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    tokens = _tokens(ctx)
    if run.opts["padding_free"] and not run.opts["packing"]:
        tokens = _truncated(tokens, run.opts["max_length"])
    train, held = run.split(tokens)
    trainer = SFTTrainer(
        model=run.model(model_dir),
        args=sft_config(ctx, run.opts),
        train_dataset=train,
        eval_dataset=held,
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
        peft_config=common.peft_config(run.opts),
    )
    return run.train(trainer, tok)


def _sequence_classifier(model_dir: Path, tok: Any, extra: dict[str, Any]) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, dtype=torch.float32, local_files_only=True, **extra
    )
    model.config.pad_token_id = tok.pad_token_id
    return model


def _sequence_classifier_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    attn = opts["attn_implementation"]
    return {} if attn == "auto" else {"attn_implementation": attn}


def reward(ctx: StageContext, argv: list[str]) -> int:
    """A scalar reward model (sequence classifier) trained on pairs, Bradley-Terry loss."""
    run = Run(ctx, "reward", argv)
    from trl import RewardConfig, RewardTrainer  # type: ignore[attr-defined, unused-ignore]

    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    train, held = run.split(_prefs(ctx, tok)[0])
    config = RewardConfig(**common.train_config(ctx, run.opts, max_length=run.opts["max_length"]))
    trainer = RewardTrainer(
        model=_sequence_classifier(model_dir, tok, _sequence_classifier_kwargs(run.opts)),
        args=config,
        train_dataset=train,
        eval_dataset=held,
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
        peft_config=common.peft_config({**run.opts, "lora_task": "SEQ_CLS"}),
    )
    return run.train(trainer, tok, head="sequence-classification")


def _kto_rows(dataset: Any, unpaired: bool) -> Any:
    """KTO's unpaired form: as given, or every pair as a desirable and an undesirable example."""
    from datasets import Dataset  # type: ignore[import-untyped, unused-ignore]

    if unpaired:
        return dataset

    rows: list[dict[str, Any]] = []
    for row in dataset:
        rows.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        rows.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return Dataset.from_list(rows)


def dpo_config(ctx: StageContext, opts: dict[str, Any]) -> Any:
    """The DPOConfig (or KTOConfig for `records.UNPAIRED_LOSSES`) of the dpo stage's args."""
    loss = opts["loss"]
    shared = common.train_config(ctx, opts, max_length=opts["max_length"], beta=opts["beta"])
    if loss in records.UNPAIRED_LOSSES:
        from trl import KTOConfig  # type: ignore[attr-defined, unused-ignore]

        return KTOConfig(
            **shared,
            loss_type=loss,
            desirable_weight=opts["desirable_weight"],
            undesirable_weight=opts["undesirable_weight"],
        )
    from trl import DPOConfig  # type: ignore[attr-defined, unused-ignore]

    if loss == "exo_pair" and opts["label_smoothing"] <= 0:
        raise InputError("dpo: loss exo_pair needs label_smoothing > 0 (e.g. 0.001)")
    return DPOConfig(
        **shared,
        loss_type=["sigmoid" if loss == "dpo" else loss],
        label_smoothing=opts["label_smoothing"],
    )


def dpo(ctx: StageContext, argv: list[str]) -> int:
    """DPO, IPO, another TRL pairwise loss, or KTO (pairs or unpaired rows) against a frozen lm."""
    run = Run(ctx, "dpo", argv)
    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    loss = run.opts["loss"]
    rows, unpaired = _prefs(ctx, tok, unpaired_ok=loss in records.UNPAIRED_LOSSES)
    train, held = run.split(rows)
    config = dpo_config(ctx, run.opts)
    if loss in records.UNPAIRED_LOSSES:
        from trl import KTOTrainer  # type: ignore[attr-defined, unused-ignore]

        trainer: Any = KTOTrainer(
            model=run.model(model_dir),
            args=config,
            train_dataset=_kto_rows(train, unpaired),
            eval_dataset=_kto_rows(held, unpaired) if held is not None else None,
            processing_class=tok,
            callbacks=[common.stage_callback(ctx)],
            peft_config=common.peft_config(run.opts),
        )
    else:
        from trl import DPOTrainer  # type: ignore[attr-defined, unused-ignore]

        trainer = DPOTrainer(
            model=run.model(model_dir),
            args=config,
            train_dataset=train,
            eval_dataset=held,
            processing_class=tok,
            callbacks=[common.stage_callback(ctx)],
            peft_config=common.peft_config(run.opts),
        )
    return run.train(trainer, tok, loss=loss)


def grpo_config(ctx: StageContext, opts: dict[str, Any]) -> Any:
    """The GRPOConfig of the grpo stage's args (rewards get the dataset's columns)."""
    from trl import GRPOConfig  # type: ignore[attr-defined, unused-ignore]

    weights = opts["reward_weights"] or None
    if weights is not None and len(weights) != len(opts["rewards"]):
        raise InputError(
            f"grpo: {len(weights)} reward_weights for {len(opts['rewards'])} rewards; "
            "give one per reward"
        )
    return GRPOConfig(
        **common.train_config(
            ctx,
            opts,
            num_generations=opts["num_generations"],
            max_completion_length=opts["max_completion_length"],
            temperature=opts["temperature"],
            top_p=opts["top_p"],
            top_k=opts["top_k"],
            beta=opts["beta"],
            loss_type=opts["loss_type"],
            epsilon=opts["epsilon"],
            num_iterations=opts["num_iterations"],
            scale_rewards=opts["scale_rewards"],
            reward_weights=weights,
            remove_unused_columns=False,  # TRL's default: rewards get the dataset's columns
            eval_strategy="no",
            eval_steps=None,
        )
    )


def grpo(ctx: StageContext, argv: list[str]) -> int:
    """GRPO on prompts: sample groups, score them with the reward functions, update."""
    run = Run(ctx, "grpo", argv)
    from trl import GRPOTrainer  # type: ignore[attr-defined, unused-ignore]

    from blut.payload.llm import rewards

    opts = run.opts
    config = grpo_config(ctx, opts)
    funcs: list[Any] = [rewards.load(spec, opts) for spec in opts["rewards"]]
    group = opts["batch_size"] * opts["grad_accum"]
    if group % opts["num_generations"]:
        raise InputError(
            f"grpo: batch_size x grad_accum ({group}) must be a multiple of "
            f"num_generations ({opts['num_generations']})"
        )
    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    tok.padding_side = "left"
    rows, chat = read_prompts(ctx.input("prompts"))
    check_chat_template("grpo", tok, rows, chat)
    dataset = common.to_dataset_rows(
        [
            {
                "prompt": prompt_messages(r, chat) or r["prompt"],
                "answer": r["answer"] or "",
            }
            for r in rows
        ]
    )
    trainer = GRPOTrainer(
        model=run.model(model_dir),
        reward_funcs=funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
        peft_config=common.peft_config(opts),
    )
    tok_out = common.load_tokenizer(model_dir)
    return run.train(trainer, tok_out, rewards=list(opts["rewards"]))


def _labelled(dataset: Any) -> Any:
    """input_ids + labels (-100 outside the completion mask)."""
    return dataset.map(
        lambda row: {
            "labels": [
                t if m else -100
                for t, m in zip(row["input_ids"], row["completion_mask"], strict=True)
            ]
        },
        remove_columns=["completion_mask"],
    )


def distill(ctx: StageContext, argv: list[str]) -> int:
    """Train the student lm to match the teacher's next-token distributions (KL)."""
    run = Run(ctx, "distill", argv)
    from transformers import DataCollatorForSeq2Seq, TrainingArguments

    from blut.payload.llm.distill import KLTrainer

    opts = run.opts
    if opts["lora"]:
        raise InputError("distill: LoRA is not supported here; train the student's full weights")
    teacher_dir = common.input_lm(ctx, opts["teacher"])
    students = [
        i for i in ctx.inputs if i.get("kind") == "lm" and i.get("stage") != opts["teacher"]
    ]
    if len(students) != 1:
        raise InputError(
            f"distill: expected one student lm besides teacher {opts['teacher']!r}, "
            f"got {len(students)}"
        )
    student_dir = common.lm_path(Path(students[0]["path"]))
    tok = common.load_tokenizer(student_dir)
    teacher_tok = common.load_tokenizer(teacher_dir)
    if teacher_tok.get_vocab() != tok.get_vocab():
        raise InputError(
            "distill: teacher and student must share one tokenizer (vocabularies differ)"
        )
    train, held = run.split(_tokens(ctx))
    config = TrainingArguments(**common.train_config(ctx, opts, remove_unused_columns=False))
    trainer = KLTrainer(
        teacher=run.model(teacher_dir),
        temperature=opts["temperature"],
        alpha=opts["alpha"],
        model=run.model(student_dir),
        args=config,
        train_dataset=_labelled(train),
        eval_dataset=_labelled(held) if held is not None else None,
        data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
    )
    summary = {"teacher": json.loads(json.dumps(opts["teacher"]))}
    return run.train(trainer, tok, **summary)
