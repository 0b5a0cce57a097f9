"""``python -m blut.payload <stage> [args...]``: run one stage program inside its unit."""

from __future__ import annotations

import argparse
import sys

from blut.payload.context import StageContext
from blut.payload.errors import PayloadError
from blut.payload.stages import STAGES, summary
from blut.status.private import go_private


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<12}{summary(fn)}" for name, fn in sorted(STAGES.items()))
    parser = argparse.ArgumentParser(
        prog="python -m blut.payload",
        description="Run one blut stage program (normally started by the job driver).",
        epilog=f"stages:\n{listing}\n\n`<stage> --help` shows a stage's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", help="the stage to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the stage's own arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the named stage; 2 for an unknown stage or a user mistake, else its code."""
    go_private()  # outputs, checkpoints and metrics are private, whatever the umask
    ns = _parser().parse_args(argv)
    stage = STAGES.get(ns.stage)
    if stage is None:
        known = ", ".join(sorted(STAGES))
        print(f"blut.payload: unknown stage {ns.stage!r} (known: {known})", file=sys.stderr)
        return 2
    with StageContext.from_env(ns.stage) as ctx:  # a crash reaches the sinks on the way out
        try:
            code = stage(ctx, ns.args)
        except PayloadError as exc:
            ctx.log(str(exc), level="error")  # the one report: an event and a line in the log
            ctx.finish(2, exc)
            return 2
        except Exception as exc:
            ctx.log(f"stage {ns.stage} crashed: {type(exc).__name__}: {exc}", level="error")
            raise
        ctx.finish(code)
        return code


if __name__ == "__main__":
    sys.exit(main())
