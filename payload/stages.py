"""The registry of stage programs: name → ``stage(ctx, argv) -> exit code``.

Each entry imports its module only when called, so listing the stages (or
``--help``) imports no numpy or torch.
"""

from __future__ import annotations

from collections.abc import Callable

from blut.payload.context import StageContext

Stage = Callable[[StageContext, list[str]], int]


def demo(ctx: StageContext, argv: list[str]) -> int:
    """A small numpy logistic-regression training run (the `make demo` job)."""
    from blut.payload.demo import run

    return run(ctx, argv)


STAGES: dict[str, Stage] = {"demo": demo}


def summary(stage: Stage) -> str:
    """The first line of a stage's docstring."""
    return (stage.__doc__ or "").strip().partition("\n")[0]
