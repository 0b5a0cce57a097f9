"""`blut auto DATA`: propose the recipe and args that fit a data file or folder, and run it."""

from __future__ import annotations

import shlex

import click

from blut.commands.common import detach_option, note, out, store, telemetry_option


@click.command()
@click.argument("data", metavar="DATA", help="A data file or folder.")
@click.option("--dry-run", is_flag=True, help="Print the command; submit nothing.")
@click.option(
    "--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override an argument too."
)
@detach_option
@telemetry_option
def auto(
    data: str, dry_run: bool, sets: tuple[str, ...], detach: bool, telemetry: str | None
) -> None:
    """Look at DATA, print the `blut recipe run …` that fits it (ceilings from the policy)
    and submit it: OHLCV → quant-train, chat or prompt-completion JSONL → llm-sft,
    chosen/rejected → llm-dpo, prompts only → llm-generate."""
    from pathlib import Path

    from blut.commands.recipe import run_points
    from blut.jobs.autodetect import propose
    from blut.jobs.policyapply import ceiling_sets
    from blut.jobs.recipes import find

    proposal = propose(Path(data))
    recipe = find(proposal.recipe)
    chosen = [*proposal.sets, *sets]
    chosen += ceiling_sets(store(), recipe, chosen, Path.cwd())
    command = ["blut", "recipe", "run", recipe.name]
    for each in chosen:
        command += ["--set", each]
    note(f"{data}: {proposal.why} → {recipe.name}")
    out.print(shlex.join(command), markup=False)
    if dry_run:
        return
    run_points(recipe, recipe.resolve(sets=chosen), detach=detach, telemetry=telemetry)
