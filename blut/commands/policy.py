"""`blut policy show|set|reset|suggest`: the rules applied at submit (`blut.jobs.policy`)."""

from __future__ import annotations

import json

import click

from blut.commands.common import Group, check_format, format_option, note, out, store

app = Group(
    "policy",
    help="The scheduling policy ($BLUT_HOME/policy.toml): ceilings, slots, limits.",
    no_args_is_help=True,
)


@app.command()
@format_option
def show(fmt: str) -> None:
    """Every policy key: its value, where it comes from, what it means."""
    from blut.jobs.policy import KEYS, load_policy, policy_path, shown, stored

    check_format(fmt)
    home = store().home
    policy, given = load_policy(home), stored(home)
    if fmt == "json":
        data = {k: getattr(policy, key.field) for k, key in KEYS.items()}
        out.print_json(json.dumps({"file": str(policy_path(home)), "policy": data}))
        return
    out.print(f"[bold]policy[/] {policy_path(home)}")
    for name, key in KEYS.items():
        source = "set" if name in given else "default"
        out.print(f"  {name:<18} {shown(policy, name):<10} {source:<8} {key.doc}", markup=False)


@app.command("set")
@click.argument("key", help="A policy key (see `blut policy show`).")
@click.argument("value", help="Its new value.")
def set_(key: str, value: str) -> None:
    """Set one key in the policy file: `blut policy set ceiling.source learned`."""
    from blut.jobs.policy import set_key

    set_key(store().home, key, value)
    note(f"policy: {key} = {value}")


@app.command()
def reset() -> None:
    """Remove the policy file: every key back to its default."""
    from blut.jobs.policy import reset as reset_policy

    removed = reset_policy(store().home)
    note("policy reset to the defaults" if removed else "policy: already the defaults")


@app.command()
@click.argument("recipe_name", metavar="RECIPE", help="The recipe.")
@click.option(
    "--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override an argument."
)
@format_option
def suggest(recipe_name: str, sets: tuple[str, ...], fmt: str) -> None:
    """The ceiling the policy would learn for each stage of RECIPE, and why."""
    from pathlib import Path

    from blut.jobs.cache import objects_dir
    from blut.jobs.external import resolve_inputs
    from blut.jobs.history import input_bytes, samples, size_class
    from blut.jobs.history import suggest as suggest_ceilings
    from blut.jobs.policy import load_policy
    from blut.jobs.quantities import format_size
    from blut.jobs.recipes import find

    check_format(fmt)
    jobs = store()
    policy = load_policy(jobs.home)
    recipe = find(recipe_name)
    [args] = recipe.resolve(sets=sets)
    cwd = Path.cwd()
    plan = recipe.build(resolve_inputs(recipe.args_schema, args, cwd, jobs.home))
    objects = objects_dir(jobs.home)
    found = suggest_ceilings(
        policy, plan, size_class(input_bytes(plan, cwd, objects)), samples(jobs)
    )
    if fmt == "json":
        rows = [
            {
                "stage": s.stage,
                "program": s.program,
                "size_class": s.size_class,
                "runs": s.runs,
                "max_peak": s.max_peak,
                "suggested": s.ceiling,
                "current": s.current,
            }
            for s in found
        ]
        out.print_json(json.dumps({"recipe": recipe.name, "stages": rows}))
        return
    if policy.ceiling_source != "learned":
        note("ceiling.source is 'recipe': submits keep the recipe's ceilings (see below)")
    for s in found:
        now = format_size(s.current) if s.current else "none"
        then = format_size(s.ceiling) if s.ceiling else now
        out.print(f"{s.stage:<12} {now:>10} → {then:<10} {s.why(policy)}", markup=False)
