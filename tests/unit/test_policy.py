"""`blut policy show|set|reset`: one documented file of rules, validated; and the pure
pieces of learned ceilings (size classes, peak × margin, which ceilings were given)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from blut.jobs.history import learned_ceiling, size_class
from blut.jobs.policy import MIB, Policy, load_policy
from blut.jobs.policyapply import apply_policy, explicit_ceilings
from blut.jobs.recipes import find
from blut.jobs.slots import Slots
from blut.jobs.stagedef import Resources
from blut.jobs.store import JobStore
from tests.conftest import blut


def shown(home: Path) -> dict[str, object]:
    result = blut("policy", "show", "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)["policy"]
    return data


def test_set_show_reset_round_trip_in_a_private_file(blut_home: Path) -> None:
    assert shown(blut_home)["ceiling.source"] == "recipe"
    for key, value in [
        ("ceiling.source", "learned"),
        ("ceiling.margin", "1.25"),
        ("ceiling.floor", "128M"),
        ("limits.stages", "2"),
    ]:
        result = blut("policy", "set", key, value)
        assert result.returncode == 0, result.stderr
    now = shown(blut_home)
    assert now["ceiling.source"] == "learned" and now["ceiling.margin"] == 1.25
    assert now["ceiling.floor"] == 128 * MIB and now["limits.stages"] == 2
    path = blut_home / "policy.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "[ceiling]" in path.read_text() and load_policy(blut_home).limits_stages == 2
    table = blut("policy", "show").stdout
    assert "ceiling.source     learned    set" in table and "slots.cpu" in table
    assert blut("policy", "reset").returncode == 0
    assert not path.exists() and shown(blut_home)["ceiling.source"] == "recipe"


def test_bad_keys_and_values_are_one_line_and_change_nothing(blut_home: Path) -> None:
    assert blut("policy", "set", "slots.cpu", "4").returncode == 0
    before = (blut_home / "policy.toml").read_text()
    for args in [
        ("ceiling.floor", "lots"),
        ("ceiling.margin", "0.9"),
        ("ceiling.sauce", "x"),
        ("ceiling.source", "guess"),
        ("slots.gpu", "0"),
        ("limits.stages", "-1"),
    ]:
        result = blut("policy", "set", *args)
        assert result.returncode == 2, (args, result)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("blut: error: ")
    assert (blut_home / "policy.toml").read_text() == before
    assert "did you mean 'ceiling.source'" in blut("policy", "set", "ceiling.sauce", "x").stderr


def test_a_broken_policy_file_stops_show_and_submit(blut_home: Path) -> None:
    blut_home.mkdir(mode=0o700)
    (blut_home / "policy.toml").write_text('[ceiling]\nmargin = "wide"\n')
    for args in [("policy", "show"), ("recipe", "run", "smoke", "--detach")]:
        result = blut(*args)
        assert result.returncode == 2, result
        assert (
            result.stderr.count("\n") == 1 and "ceiling.margin: expected a number" in result.stderr
        )
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())
    (blut_home / "policy.toml").write_text("ceiling = 3\n")
    assert blut("policy", "show").returncode == 2


def test_size_classes_and_learned_ceilings() -> None:
    assert size_class(None) == "unknown" and size_class(0) == "built-in"
    assert size_class(5_000) == "1k-10k" and size_class(2_500_000) == "1M-10M"
    policy = Policy(ceiling_margin=1.5, ceiling_min_runs=2, ceiling_floor=64 * MIB)
    assert learned_ceiling(policy, [300 * MIB]) is None  # too few runs
    assert learned_ceiling(policy, [100 * MIB, 300 * MIB]) == 450 * MIB
    assert learned_ceiling(policy, [1 * MIB, 2 * MIB]) == 64 * MIB  # never below the floor


def test_only_ceilings_the_args_changed_count_as_given() -> None:
    recipe = find("quant-train")
    defaults = recipe.defaults()
    [args] = recipe.resolve(sets=["train.memory_max=3G", "split.memory_max=512M"])
    assert explicit_ceilings(args, defaults) == {"train"}


def test_slots_gpu_and_the_stage_cap_shape_the_plan_and_slots(blut_home: Path) -> None:
    blut_home.mkdir(mode=0o700)
    (blut_home / "policy.toml").write_text("[slots]\ngpu = 2\ncpu = 3\n[limits]\nstages = 1\n")
    recipe = find("quant-train")
    args = recipe.defaults()
    applied = apply_policy(JobStore(blut_home), recipe.build(args), args, args, Path.cwd())
    assert applied.plan.stages["train"].resources.gpu == 2
    assert applied.plan.stages["encode"].resources.gpu == 0
    assert "2 GPU(s)" in applied.notes["train"] and applied.cpu_slots == 3
    assert applied.max_stages == 1 and applied.input_bytes == 0  # the packaged data

    slots, one = Slots(cpu=4, stages=1), Resources(cpu=1)
    assert slots.fits(one)
    slots.take(one)
    assert not slots.fits(one)  # a CPU slot is free, but the stage cap is reached
    slots.give(one)
    assert slots.fits(one)
