"""Integration tests run against a real systemd user manager."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _real_manager(manager_env: dict[str, str]) -> dict[str, str]:
    return manager_env
