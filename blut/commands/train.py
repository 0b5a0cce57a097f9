"""`blut train`: a shortcut for the matching ``llm-<method>`` recipe.

``blut train --method sft --model PATH --dataset PATH --lora`` builds a
`blut.jobs.trainspec.TrainSpec`, maps it onto the recipe's ``--set``
overrides and runs it exactly like ``blut recipe run`` (same config layers,
validation, submission and following).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blut.commands.common import (
    cluster_options,
    detach_option,
    note,
    path_option,
    set_option,
    telemetry_option,
)

if TYPE_CHECKING:
    from pathlib import Path


@click.command("train")
@click.option("--method", required=True, help="sft, reward, dpo, ipo, kto, grpo or distill.")
@path_option("--model", help="A local HF model dir (default: the tiny built-in model).")
@path_option("--tokenizer", help="A local tokenizer dir to use with --model.")
@path_option("--dataset", help="A .jsonl or .parquet file (default: the toy tasks).")
@click.option("--lora/--no-lora", default=None, help="Train LoRA adapters.")
@click.option("--lora-r", type=int, help="LoRA rank.")
@click.option("--lora-alpha", type=int, help="LoRA alpha.")
@click.option("--optimizer", help="adamw, sgd or adafactor.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--schedule", help="constant, linear or cosine.")
@click.option("--warmup-steps", type=int, help="Linear warm-up steps.")
@click.option("--precision", help="fp32, bf16 or fp16.")
@click.option("--max-steps", type=int, help="Optimizer steps.")
@click.option("--epochs", type=float, help="Passes over the data (replaces --max-steps).")
@click.option("--seed", type=int, help="Training seed.")
@click.option("--eval-every", type=int, help="Steps between evaluations.")
@set_option("Override any recipe argument (repeat).")
@path_option("--config", help="A TOML or JSON file of recipe arguments.")
@detach_option
@click.option("--dry-run", is_flag=True, help="Resolve and print the plan; run nothing.")
@click.option("--uncontained", is_flag=True, help="Run stages as plain subprocesses.")
@telemetry_option
@cluster_options
def train(
    method: str,
    model: Path | None,
    tokenizer: Path | None,
    dataset: Path | None,
    lora: bool | None,
    lora_r: int | None,
    lora_alpha: int | None,
    optimizer: str | None,
    lr: float | None,
    schedule: str | None,
    warmup_steps: int | None,
    precision: str | None,
    max_steps: int | None,
    epochs: float | None,
    seed: int | None,
    eval_every: int | None,
    sets: tuple[str, ...],
    config: Path | None,
    detach: bool,
    dry_run: bool,
    uncontained: bool,
    telemetry: str | None,
) -> None:
    """Train with one method: `blut train --method sft --model DIR --dataset FILE --lora`.

    A shortcut for `blut recipe run llm-<method>`: the options become the
    recipe's --set overrides (see `blut recipe show llm-<method>`); --set
    values win over them.
    """
    from blut.commands.recipe import run_points
    from blut.jobs.trainspec import TrainSpec

    spec = TrainSpec(
        method=method,
        model=model,
        tokenizer=tokenizer,
        dataset=dataset,
        optimizer=optimizer,
        lr=lr,
        schedule=schedule,
        warmup_steps=warmup_steps,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        precision=precision,
        max_steps=max_steps,
        epochs=epochs,
        seed=seed,
        eval_every=eval_every,
        sets=sets,
    )
    recipe = spec.recipe()
    args = spec.resolve(config_file=config)
    if dry_run:
        overrides = " ".join(f"--set {o}" for o in spec.overrides())
        note(f"train {spec.method}: blut recipe run {recipe.name} {overrides}".rstrip())
    run_points(
        recipe,
        [args],
        detach=detach,
        dry_run=dry_run,
        uncontained=uncontained,
        telemetry=telemetry,
    )
