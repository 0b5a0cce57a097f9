"""Training stages on TRL: ``sft``, ``reward``, ``dpo`` (dpo/ipo/kto), ``grpo``, ``distill``.

Each stage resolves its args from its schema, loads the ``lm`` input and its
data, builds the matching TRL config from `common.train_config` (CPU-safe
precision, explicit save/eval/report settings), resumes from its own
checkpoints when the fingerprint matches, reports through
`common.stage_callback`, and publishes the trained model + tokenizer (LoRA
merged) into staging with a ``train.json`` summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import DataError, InputError
from blut.payload.llm import common
from blut.payload.llm.data import PREFS_FILE, TOKENS_FILE, read_prompts
from blut.status import records


class Run:
    """What every method stage does around its trainer."""

    def __init__(self, ctx: StageContext, stage: str, argv: list[str]) -> None:
        """Prepare the environment and resolve ``stage``'s args."""
        common.prepare(ctx, stage)
        self.ctx, self.stage = ctx, stage
        self.opts = args.resolve(stage, ctx.args, argv)
        common.set_threads(self.opts["threads"])
        self.fingerprint = common.fingerprint(stage, self.opts, common.input_hashes(ctx))
        self.resume_from = common.resume_point(
            ctx, self.fingerprint, self.opts["resume"], self.opts.get("from_snapshot", "")
        )

    def split(self, dataset: Any) -> tuple[Any, Any]:
        """(train, eval or None): a seeded hold-out when ``eval_every`` is on."""
        if not self.opts["eval_every"] or len(dataset) < 4:
            return dataset, None
        parts = dataset.train_test_split(
            test_size=self.opts["eval_fraction"], seed=self.opts["seed"]
        )
        return parts["train"], parts["test"]

    def config(self, **extra: Any) -> dict[str, Any]:
        """The shared TRL config kwargs plus ``extra``."""
        return common.train_config(self.ctx, self.opts, **extra)

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
        common.publish(self.ctx, model, tokenizer, body)
        loss = metrics.get("train_loss")
        self.ctx.log(f"{self.stage}: {trainer.state.global_step} steps, mean train_loss {loss}")
        return 0


def _tokens(ctx: StageContext) -> Any:
    path = ctx.input("tokens") / TOKENS_FILE
    if not path.is_file():
        raise InputError(f"{ctx.stage}: the tokens input has no {TOKENS_FILE}")
    return common.to_dataset(common.read_table(path))


def _prefs(ctx: StageContext, tok: Any) -> Any:
    """The preference pairs; chat pairs need the tokenizer's chat template (one-line DataError)."""
    path = ctx.input("preferences") / PREFS_FILE
    if not path.is_file():
        raise InputError(f"{ctx.stage}: the preferences input has no {PREFS_FILE}")
    manifest = path.parent / "prefs.json"
    chat = manifest.is_file() and bool(json.loads(manifest.read_text()).get("chat"))
    if chat and tok.chat_template is None:
        raise DataError(records.no_template(ctx.stage, "chat preference pairs"))
    return common.to_dataset(common.read_table(path))


def sft(ctx: StageContext, argv: list[str]) -> int:
    """Supervised fine-tuning on pre-tokenized examples (loss where completion_mask is 1)."""
    run = Run(ctx, "sft", argv)
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined, unused-ignore]

    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    train, held = run.split(_tokens(ctx))
    config = SFTConfig(
        **run.config(max_length=run.opts["max_length"], completion_only_loss=True, packing=False)
    )
    trainer = SFTTrainer(
        model=common.load_causal_lm(model_dir),
        args=config,
        train_dataset=train,
        eval_dataset=held,
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
        peft_config=common.peft_config(run.opts),
    )
    return run.train(trainer, tok)


def _sequence_classifier(model_dir: Path, tok: Any) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, dtype=torch.float32, local_files_only=True
    )
    model.config.pad_token_id = tok.pad_token_id
    return model


def reward(ctx: StageContext, argv: list[str]) -> int:
    """A scalar reward model (sequence classifier) trained on pairs, Bradley-Terry loss."""
    run = Run(ctx, "reward", argv)
    from trl import RewardConfig, RewardTrainer  # type: ignore[attr-defined, unused-ignore]

    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    train, held = run.split(_prefs(ctx, tok))
    config = RewardConfig(**run.config(max_length=run.opts["max_length"]))
    trainer = RewardTrainer(
        model=_sequence_classifier(model_dir, tok),
        args=config,
        train_dataset=train,
        eval_dataset=held,
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
        peft_config=common.peft_config({**run.opts, "lora_task": "SEQ_CLS"}),
    )
    return run.train(trainer, tok, head="sequence-classification")


def _unpaired(dataset: Any) -> Any:
    """KTO's unpaired form: every pair becomes a desirable and an undesirable example."""
    from datasets import Dataset  # type: ignore[import-untyped, unused-ignore]

    rows: list[dict[str, Any]] = []
    for row in dataset:
        rows.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        rows.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return Dataset.from_list(rows)


def dpo(ctx: StageContext, argv: list[str]) -> int:
    """DPO (sigmoid), IPO or KTO on preference pairs against a frozen copy of the lm."""
    run = Run(ctx, "dpo", argv)
    model_dir = common.input_lm(ctx)
    tok = common.load_tokenizer(model_dir)
    train, held = run.split(_prefs(ctx, tok))
    loss = run.opts["loss"]
    shared = run.config(max_length=run.opts["max_length"], beta=run.opts["beta"])
    if loss == "kto":
        from trl import KTOConfig, KTOTrainer  # type: ignore[attr-defined, unused-ignore]

        trainer: Any = KTOTrainer(
            model=common.load_causal_lm(model_dir),
            args=KTOConfig(**shared),
            train_dataset=_unpaired(train),
            eval_dataset=_unpaired(held) if held is not None else None,
            processing_class=tok,
            callbacks=[common.stage_callback(ctx)],
            peft_config=common.peft_config(run.opts),
        )
    else:
        from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined, unused-ignore]

        trainer = DPOTrainer(
            model=common.load_causal_lm(model_dir),
            args=DPOConfig(**shared, loss_type=["sigmoid" if loss == "dpo" else "ipo"]),
            train_dataset=train,
            eval_dataset=held,
            processing_class=tok,
            callbacks=[common.stage_callback(ctx)],
            peft_config=common.peft_config(run.opts),
        )
    return run.train(trainer, tok, loss=loss)


def grpo(ctx: StageContext, argv: list[str]) -> int:
    """GRPO on prompts: sample groups, score them with the reward functions, update."""
    run = Run(ctx, "grpo", argv)
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined, unused-ignore]

    from blut.payload.llm import rewards

    opts = run.opts
    funcs: list[Any] = [rewards.load(spec, opts) for spec in opts["rewards"]]
    weights = opts["reward_weights"] or None
    if weights is not None and len(weights) != len(funcs):
        raise InputError(
            f"grpo: {len(weights)} reward_weights for {len(funcs)} rewards; give one per reward"
        )
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
    dataset = common.to_dataset_rows(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}] if chat else r["prompt"],
                "answer": r["answer"] or "",
            }
            for r in rows
        ]
    )
    config = GRPOConfig(
        **run.config(
            num_generations=opts["num_generations"],
            max_completion_length=opts["max_completion_length"],
            temperature=opts["temperature"],
            beta=opts["beta"],
            reward_weights=weights,
            remove_unused_columns=False,  # TRL's default: rewards get the dataset's columns
            eval_strategy="no",
            eval_steps=None,
        )
    )
    trainer = GRPOTrainer(
        model=common.load_causal_lm(model_dir),
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
    config = TrainingArguments(**run.config(remove_unused_columns=False))
    trainer = KLTrainer(
        teacher=common.load_causal_lm(teacher_dir),
        temperature=opts["temperature"],
        alpha=opts["alpha"],
        model=common.load_causal_lm(student_dir),
        args=config,
        train_dataset=_labelled(train),
        eval_dataset=_labelled(held) if held is not None else None,
        data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
        processing_class=tok,
        callbacks=[common.stage_callback(ctx)],
    )
    summary = {"teacher": json.loads(json.dumps(opts["teacher"]))}
    return run.train(trainer, tok, **summary)
