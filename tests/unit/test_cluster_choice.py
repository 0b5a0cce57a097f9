"""Where a job's stages run: `--launcher`/`--ray-address`/`--ray-resource` over `[cluster]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.jobs.cluster import Cluster, check_stages, choose_cluster, configured_address
from blut.jobs.errors import UsageError


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_local_is_the_default(tmp_path: Path) -> None:
    assert choose_cluster(cwd=tmp_path) is None
    assert configured_address(cwd=tmp_path) is None


def test_options_choose_ray_with_pins(tmp_path: Path) -> None:
    found = choose_cluster(
        "ray", "head:8265", ["train=gpu_node", "train=big:2", "eval=x:0.5"], cwd=tmp_path
    )
    assert found == Cluster(
        "http://head:8265", {"train": {"gpu_node": 1.0, "big": 2.0}, "eval": {"x": 0.5}}
    )
    assert found.record() == {
        "ray_address": "http://head:8265",
        "ray_resources": {"train": {"gpu_node": 1.0, "big": 2.0}, "eval": {"x": 0.5}},
    }
    assert choose_cluster(None, "http://h:1", cwd=tmp_path) == Cluster(
        "http://h:1"
    )  # an address means ray


def test_the_project_config_chooses_and_options_win(tmp_path: Path) -> None:
    (tmp_path / "blut.toml").write_text(
        '[cluster]\nlauncher = "ray"\nray_address = "http://conf:8265"\n'
        "[cluster.resources]\ntrain = { gpu_node = 1 }\n"
    )
    assert choose_cluster(cwd=tmp_path) == Cluster("http://conf:8265", {"train": {"gpu_node": 1.0}})
    assert configured_address(cwd=tmp_path) == "http://conf:8265"
    mine = choose_cluster(None, "http://mine:1", ["train=other"], cwd=tmp_path)
    assert mine == Cluster("http://mine:1", {"train": {"gpu_node": 1.0, "other": 1.0}})
    assert choose_cluster("local", cwd=tmp_path) is None


@pytest.mark.parametrize(
    ("launcher", "address", "resources", "says"),
    [
        ("ray", None, [], "needs the cluster's address"),
        ("local", "http://h:1", [], "need --launcher ray"),
        ("local", None, ["a=b"], "need --launcher ray"),
        ("ray", "h:1", ["train"], "expected STAGE=RESOURCE"),
        ("ray", "h:1", ["train=gpu:0"], "must be a number > 0"),
        ("ray", "h:1", ["train=gpu:nan"], "must be a number > 0"),
        ("slurm", None, [], "expected one of local, ray"),
    ],
)
def test_bad_choices_are_one_clear_usage_error(
    tmp_path: Path, launcher: str, address: str | None, resources: list[str], says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        choose_cluster(launcher, address, resources, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[cluster]\nport = 1\n", "has no key 'port'"),
        ("[cluster]\nray_address = 1\n", "ray_address must be a string"),
        ("[cluster.resources]\ntrain = 1\n", "maps a stage to"),
        ("[cluster.resources]\ntrain = { x = -1 }\n", "must be a number > 0"),
    ],
)
def test_a_bad_config_table_is_a_usage_error(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "blut.toml").write_text(text)
    with pytest.raises(UsageError, match=says):
        choose_cluster("ray", "h:1", cwd=tmp_path)


def test_pins_must_name_stages_of_the_plan() -> None:
    check_stages(None, ["a"])
    check_stages(Cluster("http://h:1", {"a": {"x": 1}}), ["a", "b"])
    with pytest.raises(UsageError, match="the plan has no such stage"):
        check_stages(Cluster("http://h:1", {"c": {"x": 1}}), ["a", "b"])
