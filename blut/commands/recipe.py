"""`blut recipe list|show|run`: the catalog, and running a recipe as a job (or a sweep)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from click.exceptions import Exit

from blut.commands.common import (
    Group,
    check_format,
    chosen_cluster,
    cluster_options,
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

    from rich.tree import Tree

    from blut.jobs.environment import EnvPolicy
    from blut.jobs.plan import Plan
    from blut.jobs.recipes import RecipeDef

app = Group("recipe", help="Recipes: list, show and run them.", no_args_is_help=True)
recipe_argument = click.argument("name", help="The recipe.")


@app.command("list")
@click.option("--category", "-c", help="Only this category.")
@format_option
def list_(category: str | None, fmt: str) -> None:
    """The recipe catalog, grouped by category."""
    from rich.table import Table

    from blut.jobs.errors import UsageError, clip
    from blut.jobs.recipes import by_category

    check_format(fmt)
    groups = by_category()
    if category is not None:
        if category not in groups:
            raise UsageError(
                f"no category {clip(category)!r} (categories: {', '.join(sorted(groups))})"
            )
        groups = {category: groups[category]}
    if fmt == "json":
        rows = [_summary(r) for recipes in groups.values() for r in recipes]
        out.print_json(json.dumps(rows))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("CATEGORY", "RECIPE", "BACKEND", "MAKES", "DESCRIPTION"):
        table.add_column(header, no_wrap=header != "DESCRIPTION")
    for name, recipes in groups.items():
        for recipe in recipes:
            table.add_row(name, recipe.name, recipe.backend, str(recipe.output), recipe.summary)
    out.print(table)


def _summary(recipe: RecipeDef) -> dict[str, Any]:
    return {
        "name": recipe.name,
        "category": recipe.category,
        "backend": recipe.backend,
        "inputs": [str(k) for k in recipe.inputs],
        "output": str(recipe.output),
        "summary": recipe.summary,
    }


@app.command()
@recipe_argument
@format_option
def show(name: str, fmt: str) -> None:
    """A recipe: description, stages, and every argument with type, default and doc."""
    from blut.jobs.recipes import find, swap_candidates

    check_format(fmt)
    recipe = find(name)
    plan = recipe.build(recipe.defaults())
    swaps = [r.name for r in swap_candidates(name)]
    if fmt == "json":
        data = {
            **_summary(recipe),
            "description": recipe.description,
            "stages": _plan_json(plan),
            "args_schema": recipe.args_schema,
            "defaults": recipe.defaults(),
            "swap_candidates": swaps,
        }
        out.print_json(json.dumps(data))
        return
    out.print(f"[bold]{recipe.name}[/]  ({recipe.category}, {recipe.backend})")
    out.print(recipe.description.strip(), markup=False)
    out.print()
    out.print(plan_tree(plan))
    out.print()
    out.print("[bold]Arguments[/] (override with --set KEY=VALUE, sweep with --sweep KEY=V1,V2)")
    for key, prop in _flat_schema(recipe.args_schema):
        kind = prop.get("type", "any")
        if isinstance(kind, list):  # e.g. memory_max: ["string", "integer"]
            kind = "|".join(map(str, kind))
        if "enum" in prop:
            kind = "|".join(map(str, prop["enum"]))
        default = json.dumps(prop["default"]) if "default" in prop else "-"
        doc = prop.get("description", "")
        out.print(f"  {key:<28} {kind:<10} {default:<12} {doc}", markup=False)
    if swaps:
        out.print(f"\nDrop-in replacements: {', '.join(swaps)}")


def _flat_schema(schema: Any, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """``(dotted key, property schema)`` for every leaf argument."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for key, prop in (schema.get("properties") or {}).items():
        dotted = f"{prefix}{key}"
        if prop.get("type") == "object" and "properties" in prop:
            rows.extend(_flat_schema(prop, dotted + "."))
        else:
            rows.append((dotted, prop))
    return rows


def _plan_json(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "after": list(plan.deps[name]),
            "inputs": [str(k) for k in plan.stages[name].inputs],
            "output": str(plan.stages[name].output),
            "memory_max": plan.stages[name].memory_max,
            "args": dict(plan.stages[name].args),
        }
        for name in plan.order()
    ]


def plan_tree(plan: Plan) -> Tree:
    """The stages as a rich tree: each stage under the first stage it waits for."""
    from rich.tree import Tree

    from blut.jobs.quantities import format_size

    tree = Tree(f"[bold]{plan.name}[/]")
    nodes: dict[str, Tree] = {}
    for name in plan.order():
        stage = plan.stages[name]
        deps = plan.deps[name]
        parent = nodes[deps[0]] if deps else tree
        extra = f" (also after {', '.join(deps[1:])})" if len(deps) > 1 else ""
        ceiling = f", memory max {format_size(stage.memory_max)}" if stage.memory_max else ""
        nodes[name] = parent.add(f"{name} → {stage.output}{ceiling}{extra}")
    return tree


@app.command(context_settings={"allow_interspersed_args": True})
@recipe_argument
@set_option("Override an argument (repeat).")
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="KEY=V1,V2",
    help="One job per value; axes multiply (repeat).",
)
@path_option("--config", help="A TOML or JSON file of arguments.")
@env_options
@detach_option
@click.option("--dry-run", is_flag=True, help="Resolve and print the plan(s); run nothing.")
@click.option("--uncontained", is_flag=True, help="Run stages as plain subprocesses.")
@cluster_options
@click.option(
    "--from-snapshot",
    "snapshot_ref",
    metavar="ID",
    help="Start from a snapshot: its args, --set on top (a change branches from it).",
)
@telemetry_option
def run(
    name: str,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
    config: Path | None,
    env_clear: bool,
    envs: tuple[str, ...],
    detach: bool,
    dry_run: bool,
    uncontained: bool,
    snapshot_ref: str | None,
    telemetry: str | None,
) -> None:
    """Run a recipe as a job: `blut recipe run smoke --set make.count=100`."""
    from blut.jobs.environment import env_policy
    from blut.jobs.recipes import find

    recipe = find(name)
    env = env_policy(clear=env_clear, passed=envs)
    if snapshot_ref is not None:
        if config is not None or dry_run:
            from blut.jobs.errors import UsageError

            raise UsageError("--from-snapshot takes --set and --sweep (no --config, --dry-run)")
        run_from_snapshot(
            recipe,
            snapshot_ref,
            sets,
            sweeps,
            detach=detach,
            uncontained=uncontained,
            env=env,
            telemetry=telemetry,
        )
        return
    points = recipe.resolve(sets=sets, sweeps=sweeps, config_file=config)
    run_points(
        recipe,
        points,
        detach=detach,
        dry_run=dry_run,
        uncontained=uncontained,
        env=env,
        telemetry=telemetry,
    )


def run_from_snapshot(
    recipe: RecipeDef,
    ref: str,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
    *,
    detach: bool,
    uncontained: bool,
    env: EnvPolicy,
    telemetry: str | None = None,
) -> None:
    """Submit jobs of ``recipe`` starting from snapshot ``ref``: its args with ``sets`` on
    top, one job per ``sweeps`` point (each a branch where it changes the config)."""
    from blut.containment.select import containment_requested
    from blut.jobs import snapshots
    from blut.jobs.api import submit_points
    from blut.jobs.config import Layer
    from blut.jobs.store import blut_home

    snap = snapshots.SnapshotStore(blut_home()).get(ref)
    base, dropped = snapshots.base_args(snap, recipe.args_schema)
    if dropped:
        note(f"snapshot {snap.id[:12]}: {', '.join(dropped)} no longer a setting; left out")
    layer = Layer(f"snapshot {snap.id[:12]}", base)
    points = recipe.resolve(sets=sets, sweeps=sweeps, base=layer)
    starts = [snapshots.start(snap, recipe.name, p, recipe.args_schema) for p in points]
    submitted = submit_points(
        store(),
        recipe,
        [snapshots.with_snapshot(p, b) for p, b in zip(points, starts, strict=True)],
        contained=containment_requested() and not uncontained,
        env=env,
        starts=starts,
        telemetry=telemetry,
        cluster=chosen_cluster(),
    )
    if submitted.warning:
        note(f"warning: {submitted.warning}", "bold yellow")
    for job, begin in zip(submitted.jobs, starts, strict=True):
        note(f"job {job.id} ({recipe.name}) {begin.describe()}")
    if detach or submitted.sweep is not None:
        for job in submitted.jobs:
            out.print(job.id)
        return
    [job] = submitted.jobs
    raise Exit(follow_job(job))


def run_points(
    recipe: RecipeDef,
    points: list[dict[str, Any]],
    *,
    detach: bool = False,
    dry_run: bool = False,
    uncontained: bool = False,
    env: EnvPolicy | None = None,
    telemetry: str | None = None,
) -> None:
    """Print (``dry_run``) or submit one job per resolved args; follow a single job.

    Shared by `blut recipe run`, `blut train` and `blut auto`. ``telemetry``: the
    ``--telemetry`` sink names (None: the config files'). Ends with click's `Exit` of
    the followed job's code when it follows one.
    """
    from blut.containment.select import containment_requested
    from blut.jobs.api import checked_points, submit_points

    if dry_run:
        from pathlib import Path

        from blut.jobs.telemetry import telemetry_config

        telemetry_config(Path.cwd(), telemetry)  # a missing sink fails a dry run too
        for resolved in checked_points(store(), recipe, points, Path.cwd()):  # malformed data too
            out.print(plan_tree(recipe.build(resolved)))
            out.print_json(json.dumps(resolved))
        return
    submitted = submit_points(
        store(),
        recipe,
        points,
        contained=containment_requested() and not uncontained,
        env=env,
        telemetry=telemetry,
        cluster=chosen_cluster(),
    )
    if submitted.warning:
        note(f"warning: {submitted.warning}", "bold yellow")
    jobs, sweep = submitted.jobs, submitted.sweep
    if sweep is not None:
        note(f"sweep {sweep}: {len(jobs)} jobs submitted; watch with `blut jobs` or `blut`")
    if detach or sweep is not None:
        for job in jobs:
            out.print(job.id)
        return
    [job] = jobs
    note(f"job {job.id} ({recipe.name}) submitted")
    raise Exit(follow_job(job))
