"""One real Ray cluster (head + a second node) for every Ray test of the run (tests/raycluster.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from tests.raycluster import RayCluster, start


@pytest.fixture(scope="session")
def ray_cluster(manager_env: dict[str, str]) -> Iterator[RayCluster]:
    """The cluster, started once (its nodes reach the session's user manager), torn down last."""
    if importlib.util.find_spec("ray") is None:  # not imported: Ray reads its auth mode then
        pytest.skip("the Ray tests need blut[ray] (make setup installs it)")
    cluster = start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _real_manager(manager_env: dict[str, str]) -> dict[str, str]:
    return manager_env
