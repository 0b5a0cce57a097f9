"""`blut stage list|run`: the stages of the recipes, and running one of them by hand."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from click.exceptions import Exit

from blut.commands.common import (
    Group,
    check_format,
    detach_option,
    env_options,
    format_option,
    note,
    out,
    path_option,
    set_option,
    store,
    telemetry_option,
)
from blut.commands.following import follow_job

if TYPE_CHECKING:
    from pathlib import Path

    from blut.containment.ptyforward import PtyForward
    from blut.jobs.recipes import RecipeDef
    from blut.jobs.stagedef import StageDef
    from blut.jobs.store import Job
    from blut.status.events import Event

app = Group("stage", help="Stages: list them, run one by hand.", no_args_is_help=True)


@app.command("list")
@click.argument("name", required=False, help="Only this recipe's stages (default: every recipe).")
@format_option
def list_(name: str | None, fmt: str) -> None:
    """Each stage of a recipe (its default arguments): program, kinds in and out, argument
    schema and version, default memory ceiling."""
    from rich.table import Table

    from blut.jobs.quantities import format_size
    from blut.jobs.recipes import all_recipes, find

    check_format(fmt)
    recipes = [find(name)] if name is not None else all_recipes()
    rows = [(recipe, stage, deps) for recipe in recipes for stage, deps in _stages(recipe)]
    if fmt == "json":
        out.print_json(json.dumps([_stage_json(r, s, d) for r, s, d in rows]))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("RECIPE", "STAGE", "PROGRAM", "IN", "OUT", "CEILING"):
        table.add_column(header, no_wrap=True)
    table.add_column("SCHEMA", min_width=16)
    for recipe, stage, _ in rows:
        args = ", ".join(stage.args_schema.get("properties") or {}) or "-"
        table.add_row(
            recipe.name,
            stage.name,
            program_name(stage),
            ", ".join(str(k) for k in stage.inputs) or "-",
            str(stage.output),
            format_size(stage.memory_max) if stage.memory_max else "-",
            f"v{stage.schema_version}: {args}",
        )
    out.print(table)


def _stages(recipe: RecipeDef) -> list[tuple[StageDef, tuple[str, ...]]]:
    """The stages of ``recipe``'s plan for its default arguments, in order, with their upstream."""
    plan = recipe.build(recipe.defaults())
    return [(plan.stages[n], tuple(plan.deps[n])) for n in plan.order()]


def program_name(stage: StageDef) -> str:
    """What a stage runs: blut's own stage program by name, else its argv without the
    interpreter."""
    return " ".join(stage.argv[3:] if stage.is_payload else stage.program)


def _stage_json(recipe: RecipeDef, stage: StageDef, after: tuple[str, ...]) -> dict[str, Any]:
    return {
        "recipe": recipe.name,
        "stage": stage.name,
        "program": program_name(stage),
        "after": list(after),
        "inputs": [str(k) for k in stage.inputs],
        "output": str(stage.output),
        "schema_version": stage.schema_version,
        "args_schema": dict(stage.args_schema),
        "args": dict(stage.args),
        "memory_max": stage.memory_max,
        "description": stage.description,
    }


@app.command(context_settings={"allow_interspersed_args": True})
@click.argument("name", help="The recipe.")
@click.argument("stage", help="The stage to run (what it depends on runs first unless cached).")
@set_option("Override an argument of the recipe (repeat).")
@path_option("--config", help="A TOML or JSON file of arguments.")
@env_options
@detach_option
@click.option(
    "--foreground",
    is_flag=True,
    help="Give the stage this terminal (for pdb/ipdb); it runs even when its output is cached.",
)
@click.option("--uncontained", is_flag=True, help="Run stages as plain subprocesses.")
@telemetry_option
def run(
    name: str,
    stage: str,
    sets: tuple[str, ...],
    config: Path | None,
    env_clear: bool,
    envs: tuple[str, ...],
    detach: bool,
    foreground: bool,
    uncontained: bool,
    telemetry: str | None,
) -> None:
    """Run one stage of a recipe as a job, its inputs from the cache (upstream stages not
    cached run first): `blut stage run smoke cube --set make.count=100`."""
    from blut.containment.select import containment_requested
    from blut.jobs.api import check_stage, submit_recipe
    from blut.jobs.environment import env_policy
    from blut.jobs.errors import UsageError
    from blut.jobs.recipes import find
    from blut.jobs.telemetry import telemetry_config

    recipe = find(name)
    [args] = recipe.resolve(sets=sets, config_file=config)
    sinks = telemetry_config(None, telemetry)
    check_stage(recipe, recipe.build(args), stage)
    if foreground and detach:
        raise UsageError("--foreground and --detach exclude each other")
    if foreground and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("--foreground needs a terminal (stdin and stdout)")
    env = env_policy(clear=env_clear, passed=envs)
    contained = containment_requested() and not uncontained
    terminal = _terminal() if foreground else None
    try:
        job, warning = submit_recipe(
            store(),
            recipe,
            args,
            stage=stage,
            tty=str(terminal.path) if terminal is not None else None,
            contained=contained,
            env=env,
            telemetry=sinks,
        )
        if warning:
            note(f"warning: {warning}", "bold yellow")
        if detach:
            out.print(job.id)
            return
        note(f"job {job.id} ({job.spec.name}) submitted")
        if terminal is None:
            raise Exit(follow_job(job))
        raise Exit(_follow_foreground(job, stage, terminal))
    finally:
        if terminal is not None:
            terminal.close()


def _terminal() -> PtyForward:
    from blut.containment.ptyforward import PtyForward

    return PtyForward(sys.stdin.fileno(), sys.stdout.fileno())


def _follow_foreground(job: Job, stage: str, terminal: PtyForward) -> int:
    """Follow ``job``, handing the terminal to ``stage`` while it runs. Ctrl-C before it
    starts cancels the job: the stage would have no terminal to run on."""
    from blut.status.events import StageDone, StageFailed, StageStarted

    def hand_over(event: Event) -> None:
        if isinstance(event, StageStarted) and event.stage == stage:
            terminal.attach()
        elif isinstance(event, StageDone | StageFailed) and event.stage == stage:
            terminal.detach()

    code = follow_job(job, on_event=hand_over)
    if code == 130:
        from blut.jobs.api import Launchers, cancel

        with Launchers() as launchers:
            cancel(job, launchers.for_job(job))
        note(f"job {job.id} cancelled: stage {stage} runs only on this terminal")
    return code
