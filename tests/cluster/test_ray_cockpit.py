"""The cockpit's System screen lists the Ray cluster's nodes (the session's real cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from blut.cockpit.screens.system import SystemScreen
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.raycluster import PIN, RayCluster

pytestmark = [pytest.mark.anyio, pytest.mark.ray]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_system_lists_the_configured_clusters_nodes(
    blut_home: Path, ray_cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blut.toml").write_text(
        f'[cluster]\nlauncher = "ray"\nray_address = "{ray_cluster.address}"\n'
    )
    app = make_app(blut_home, system=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, SystemScreen)
        await wait_for(pilot, lambda: any(s.cluster for s in app.system_history), timeout=30)
        screen.update_state()
        text = static_text(screen.query_one("#numbers", Static))
        assert f"{ray_cluster.address}: 2 of 2 nodes alive" in text, text
        assert "(head): 2 CPUs, 0 GPUs" in text
        assert "1 CPUs, 0 GPUs" in text and f"alive, {PIN}=1" in text
