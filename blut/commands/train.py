"""`blut train`: a shortcut for the matching ``llm-<method>`` recipe.

``blut train --method sft --model PATH --dataset PATH --lora`` builds a
`blut.jobs.trainspec.TrainSpec`, maps it onto the recipe's ``--set``
overrides and runs it exactly like ``blut recipe run`` (same config layers,
validation, submission and following).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blut.commands.common import note


def train(
    method: Annotated[
        str,
        typer.Option(
            "--method", help="sft, reward, dpo, ipo, kto, grpo or distill.", show_default=False
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A local HF model dir (default: the tiny built-in model)."),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="A local tokenizer dir to use with --model."),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", help="A .jsonl or .parquet file (default: the toy tasks)."),
    ] = None,
    lora: Annotated[
        bool | None,
        typer.Option("--lora/--no-lora", help="Train LoRA adapters."),
    ] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option("--lora-alpha", help="LoRA alpha.")] = None,
    optimizer: Annotated[
        str | None,
        typer.Option("--optimizer", help="adamw, sgd or adafactor."),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="constant, linear or cosine."),
    ] = None,
    warmup_steps: Annotated[
        int | None,
        typer.Option("--warmup-steps", help="Linear warm-up steps."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="fp32, bf16 or fp16."),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Optimizer steps."),
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option("--epochs", help="Passes over the data (replaces --max-steps)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed.")] = None,
    eval_every: Annotated[
        int | None,
        typer.Option("--eval-every", help="Steps between evaluations."),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", metavar="KEY=VALUE", help="Override any recipe argument (repeat)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML or JSON file of recipe arguments.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Do not follow.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Resolve and print the plan; run nothing.")
    ] = False,
    uncontained: Annotated[
        bool, typer.Option("--uncontained", help="Run stages as plain subprocesses.")
    ] = False,
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
        sets=tuple(sets or ()),
    )
    recipe = spec.recipe()
    args = spec.resolve(config_file=config)
    if dry_run:
        overrides = " ".join(f"--set {o}" for o in spec.overrides())
        note(f"train {spec.method}: blut recipe run {recipe.name} {overrides}".rstrip())
    run_points(recipe, [args], detach=detach, dry_run=dry_run, uncontained=uncontained)
