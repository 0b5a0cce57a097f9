"""What a stage's ``checkpoints/`` folder holds, and trimming it to the newest checkpoints.

Two layouts share the folder (`StagePaths.checkpoints`):

- blut's own (``payload/checkpoints.py``): per epoch ``epoch-NNNN.pt`` (tensors)
  and ``epoch-NNNN.meta.json`` (the rest), complete once both exist; beside
  them ``best.pt``, the best epoch's weights, which a run resumed after its
  last epoch publishes;
- the HF Trainer's (``payload/llm``): ``checkpoint-<step>/`` folders, beside a
  ``fingerprint`` file naming the config they belong to.

A checkpoint is one epoch's or one step's files. Whatever else the folder holds
(``best.pt``, ``fingerprint``) is what a resume from the newest checkpoint also
needs, so trimming to the last N keeps it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from blut.status.usage import tree_size

_EPOCH = re.compile(r"epoch-(\d+)\.(pt|meta\.json)")
_STEP = re.compile(r"checkpoint-(\d+)")


def epoch_files(directory: Path, epoch: int) -> tuple[Path, Path]:
    """The ``.pt`` and ``.meta.json`` of epoch ``epoch``'s checkpoint in ``directory``."""
    stem = directory / f"epoch-{epoch:04d}"
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".meta.json")


@dataclass
class Checkpoint:
    """One epoch's (or step's) files, and whether all of them are there."""

    number: int
    paths: list[Path] = field(default_factory=list)
    complete: bool = False

    @property
    def name(self) -> str:
        """``epoch-0005`` or ``checkpoint-120``."""
        return self.paths[0].name.split(".")[0]


def checkpoints(directory: Path) -> list[Checkpoint]:
    """The checkpoints in ``directory``, oldest first (complete or not)."""
    found: dict[int, Checkpoint] = {}
    try:
        names = sorted(p.name for p in directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        if m := _EPOCH.fullmatch(name):
            point = found.setdefault(int(m.group(1)), Checkpoint(int(m.group(1))))
            point.paths.append(directory / name)
            point.complete = all(p.is_file() for p in epoch_files(directory, point.number))
        elif (m := _STEP.fullmatch(name)) and (directory / name).is_dir():
            point = found.setdefault(int(m.group(1)), Checkpoint(int(m.group(1))))
            point.paths.append(directory / name)
            point.complete = True
    return [found[n] for n in sorted(found)]


@dataclass
class Trimmed:
    """What `trim` removed and kept."""

    removed: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """The names of the checkpoints left, oldest first."""
    freed: int = 0
    protected: list[Path] = field(default_factory=list)
    """Paths left because something outside the stage names them."""


def _touches(path: Path, others: Collection[Path]) -> bool:
    """True when ``path`` is, holds or lies inside one of ``others``."""
    return any(path == o or path in o.parents or o in path.parents for o in others)


def trim(directory: Path, keep: int, protected: Collection[Path] = ()) -> Trimmed:
    """Remove every checkpoint in ``directory`` but the newest ``keep`` complete ones.

    ``keep`` 0 empties the folder (``best.pt`` and ``fingerprint`` too) and removes
    it. A path that is, holds or lies inside one of ``protected`` stays.
    """
    done = Trimmed()
    points = checkpoints(directory)
    kept = [p for p in points if p.complete][-keep:] if keep > 0 else []
    doomed = [path for p in points if p not in kept for path in p.paths]
    if keep <= 0 and directory.is_dir():
        listed = {path for p in points for path in p.paths}
        doomed += sorted(p for p in directory.iterdir() if p not in listed)
    for path in doomed:
        if _touches(path, protected):
            done.protected.append(path)
            continue
        size = tree_size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            done.removed.append(path)
            done.freed += size
    done.kept = [p.name for p in kept]
    if keep <= 0 and not done.protected:
        with contextlib.suppress(OSError):  # gone already, or something appeared meanwhile
            directory.rmdir()
    return done
