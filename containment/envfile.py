"""A unit's environment file: ``NAME="value"`` lines that systemd's ``EnvironmentFile=``
reads and the bare launcher reads back the same way.

Values are double-quoted with ``\\``, ``"``, ``$`` and backquote escaped, so any
value (newlines, tabs, quotes included) arrives exactly as it was. Variables
systemd would refuse are left out: a name that is not ``[A-Za-z_][A-Za-z0-9_]*``
(systemd ignores it) or a value that is not UTF-8 (systemd would refuse to
start the unit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from blut.status.atomic import atomic_write

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPED = re.compile(r'([\\"$`])')
_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\n', re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def exportable(name: str, value: str) -> bool:
    """Whether systemd passes ``name=value`` on from an environment file."""
    if not _NAME.fullmatch(name):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in os.environ come back as surrogates
        return False
    return "\0" not in value


def _quoted(value: str) -> str:
    return '"' + _ESCAPED.sub(r"\\\1", value) + '"'


def format_env(env: Mapping[str, str]) -> str:
    """The file's text: one ``NAME="value"`` assignment per exportable variable."""
    return "".join(
        f"{name}={_quoted(value)}\n" for name, value in env.items() if exportable(name, value)
    )


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write ``env`` to ``path`` atomically, mode 0600."""
    atomic_write(path, format_env(env), mode=0o600)


def parse_env(text: str) -> dict[str, str]:
    """The variables of a file written by :func:`format_env` (`ValueError` on anything else)."""
    env: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        line = _LINE.match(text, pos)
        if line is None:
            raise ValueError(f"not an environment file written by blut (at byte {pos})")
        env[line[1]] = _UNESCAPE.sub(r"\1", line[2])
        pos = line.end()
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of the environment file at ``path``."""
    return parse_env(path.read_text(encoding="utf-8"))
