"""Cockpit test helpers: fake job folders and a way to wait for the app."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.recipes import RecipeFormScreen
from tests.cockpit.fakejobs import T0, oom_job, running_job, succeeded_job

RUNNING = "20250615-100000-aaaa"
DONE = "20250615-090000-bbbb"
OOM = "20250615-080000-cccc"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked anyio) run on asyncio, which Textual needs."""
    return "asyncio"


@pytest.fixture
def three_jobs(blut_home: Path) -> Path:
    """A running, a succeeded and an OOM-killed job (no drivers: display only)."""
    running_job(blut_home, RUNNING)
    succeeded_job(blut_home, DONE)
    oom_job(blut_home, OOM)
    return blut_home


def make_app(home: Path, **kwargs: object) -> CockpitApp:
    """An app with a pinned clock, no reconcile and no system sampling."""
    options: dict[str, object] = {"reconcile": False, "clock": lambda: T0 + 60, "system": False}
    options.update(kwargs)
    return CockpitApp(home, **options)  # type: ignore[arg-type]


async def wait_for(pilot: Pilot[Any], cond: Callable[[], object], timeout: float = 10) -> None:
    """Pause until ``cond()`` is true (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        await pilot.pause(0.05)
    await pilot.pause()


def static_text(widget: Static, width: int = 120) -> str:
    """The plain text a Static shows (rich renderables rendered at ``width``)."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user or project config layer leaks into recipe forms; cwd is a fresh folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def form_widget(screen: RecipeFormScreen, key: str) -> object:
    """The input widget of the form field ``key`` (``make.count``)."""
    index = next(i for i, f in enumerate(screen.fields) if f.key == key)
    return screen.query_one(f"#f{index}")


def form_input(screen: RecipeFormScreen, key: str) -> Input:
    """The text input of the form field ``key``."""
    widget = form_widget(screen, key)
    assert isinstance(widget, Input)
    return widget


def action_names(app: CockpitApp) -> set[str]:
    """The actions bound on the active screen (hidden ones, refused by check_action, left out)."""
    return {b.binding.action for b in app.screen.active_bindings.values()}


def palette_titles(app: CockpitApp) -> list[str]:
    """The command palette's entries for the active screen."""
    return [str(c.title) for c in app.get_system_commands(app.screen)]
