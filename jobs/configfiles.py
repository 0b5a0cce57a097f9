"""blut's config files, read without the heavy config machinery (`blut run` reads them too).

- user config ``$XDG_CONFIG_HOME/blut/config.toml`` (``~/.config/...``)
- project config ``blut.toml`` in the working directory

Each may hold ``[recipes.<name>]`` tables (a recipe's args, see `blut.jobs.config`)
and an ``[env]`` table (the environment jobs get, see `blut.jobs.environment`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from blut.jobs.errors import UsageError


def user_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/blut/config.toml``, defaulting to ``~/.config``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "blut" / "config.toml"


def config_paths(cwd: Path | None = None, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The user config, then the project config (later ones win)."""
    return [user_config_path(environ), (cwd or Path.cwd()) / "blut.toml"]


def read_file(path: Path) -> dict[str, Any]:
    """A TOML (or ``.json``) file as a dict; unreadable or invalid → `UsageError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import tomllib  # ~20 ms: only when there is a file to read

            data = tomllib.loads(text)
    except ValueError as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise UsageError(f"{path}: invalid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a table of args")
    return data


def table(path: Path, *keys: str) -> dict[str, Any]:
    """The table at ``keys`` (e.g. ``"recipes", "smoke"``) of config file ``path``; empty
    when the file or the table is missing, a `UsageError` when it is not a table."""
    if not path.is_file():
        return {}
    found: Any = read_file(path)
    for depth, key in enumerate(keys, 1):
        found = found.get(key, {})
        if not isinstance(found, dict):
            raise UsageError(f"{path}: [{'.'.join(keys[:depth])}] must be a table")
    return dict(found)


def known_table(path: Path, name: str, keys: Sequence[str]) -> dict[str, Any]:
    """The top-level ``[name]`` table of ``path`` (see `table`); a key not in ``keys`` is a
    `UsageError` naming the file and the keys it takes."""
    section = table(path, name)
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise UsageError(f"{path}: [{name}] has no key {unknown[0]!r} (keys: {', '.join(keys)})")
    return section
