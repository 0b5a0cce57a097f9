"""The policy applied to a recipe job at submit: ceilings, GPU slots and what the job's
executor may run at once (see `blut.jobs.policy` for the rules)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut.jobs.cache import objects_dir
from blut.jobs.history import Sample, input_bytes, samples, size_class, suggest
from blut.jobs.plan import Plan
from blut.jobs.policy import MIB, Policy, load_policy
from blut.jobs.quantities import format_size
from blut.jobs.recipes.payloadplan import MEMORY_KEY
from blut.jobs.stagedef import StageDef
from blut.jobs.store import JobStore

if TYPE_CHECKING:
    from blut.jobs.recipes import RecipeDef


@dataclass(frozen=True)
class Applied:
    """A plan as the policy leaves it, and what the job's spec records of it."""

    plan: Plan
    policy: Policy
    input_bytes: int
    notes: dict[str, str]
    """Stage → what the policy decided for it."""

    @property
    def cpu_slots(self) -> int | None:
        """The job's CPU slots (None: one per core)."""
        return self.policy.slots_cpu or None

    @property
    def retries(self) -> int | None:
        """Times a failed stage runs again (None: never)."""
        return self.policy.limits_retries or None

    @property
    def max_stages(self) -> int | None:
        """Stages of the job running at once (None: no cap)."""
        return self.policy.limits_stages or None


def explicit_ceilings(args: Mapping[str, Any], defaults: Mapping[str, Any]) -> set[str]:
    """Stages whose ``memory_max`` the args set to something else than the recipe default."""
    out = set()
    for stage, section in args.items():
        if not isinstance(section, Mapping) or MEMORY_KEY not in section:
            continue
        default = defaults.get(stage, {})
        if isinstance(default, Mapping) and section[MEMORY_KEY] != default.get(MEMORY_KEY):
            out.add(stage)
    return out


def apply_policy(
    store: JobStore,
    plan: Plan,
    args: Mapping[str, Any],
    defaults: Mapping[str, Any],
    cwd: Path,
    history: Callable[[], list[Sample]] | None = None,
) -> Applied:
    """``plan`` with the policy of ``store``'s home applied; ``args`` as resolved and the
    recipe's ``defaults`` tell which ceilings were given on purpose (those stay).
    ``history``: the successful runs (default: read from the job index when needed)."""
    policy = load_policy(store.home)
    size = input_bytes(plan, cwd, objects_dir(store.home))
    stages: dict[str, StageDef] = dict(plan.stages)
    notes: dict[str, list[str]] = {}
    if policy.ceiling_source == "learned":
        given = explicit_ceilings(args, defaults)
        runs = history() if history is not None else samples(store)
        for found in suggest(policy, plan, size_class(size), runs):
            said = notes.setdefault(found.stage, [])
            if found.stage in given:
                said.append("ceiling from the args (kept over the learned one)")
            elif found.ceiling is not None:
                stages[found.stage] = replace(stages[found.stage], memory_max=found.ceiling)
                said.append(f"ceiling {format_size(found.ceiling)} learned: {found.why(policy)}")
            else:
                said.append(found.why(policy))
    for name, stage in plan.stages.items():
        if stage.resources.gpu and stage.resources.gpu != policy.slots_gpu:
            stages[name] = replace(
                stages[name], resources=replace(stage.resources, gpu=policy.slots_gpu)
            )
            notes.setdefault(name, []).append(f"{policy.slots_gpu} GPU(s) (policy slots.gpu)")
    shaped = Plan(plan.name, stages, plan.deps) if stages != dict(plan.stages) else plan
    return Applied(shaped, policy, size, {k: "; ".join(v) for k, v in notes.items() if v})


def ceiling_sets(store: JobStore, recipe: RecipeDef, sets: Sequence[str], cwd: Path) -> list[str]:
    """``STAGE.memory_max=…`` overrides for the ceilings the policy would learn for
    ``recipe`` run with ``sets`` (none unless ``ceiling.source`` is ``learned``), so a
    printed command says the ceilings it runs with."""
    from blut.jobs.external import resolve_inputs

    policy = load_policy(store.home)
    if policy.ceiling_source != "learned":
        return []
    [args] = recipe.resolve(sets=sets, cwd=cwd)
    plan = recipe.build(resolve_inputs(recipe.args_schema, args, cwd, store.home))
    group = size_class(input_bytes(plan, cwd, objects_dir(store.home)))
    given = explicit_ceilings(args, recipe.defaults())
    return [
        f"{s.stage}.{MEMORY_KEY}={s.ceiling // MIB}M"
        for s in suggest(policy, plan, group, samples(store))
        if s.ceiling is not None and MEMORY_KEY in args.get(s.stage, {}) and s.stage not in given
    ]
