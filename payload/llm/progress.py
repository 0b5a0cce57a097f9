"""Progress as events, not bars: what an LLM stage shows while it trains.

`quiet` turns off every progress bar a stage process would draw into its log
(tqdm's own, ``datasets``' map bars, transformers' weight loading and shard
writing, the hub's downloads) and makes each distinct Python warning one line
in the stage's log, once. `ProgressEvents` is the TrainerCallback that reports
instead: a ``progress`` event (step of max_steps) at most once a second and at
the last step, and with each logged step a ``metric`` event of its speed —
``steps_per_s``, ``tokens_per_s`` (when the trainer counts ``num_tokens``) and
``eta_s``, the seconds left at this run's pace — as the quant train stage
reports ``samples_per_s``. The speed is this process's: a resumed run measures
from where it resumed. It goes to the event stream only, not to the metric
Parquet parts, which hold what the training did rather than how fast.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

from blut.payload.context import StageContext

EVERY_S = 1.0
"""The least time between two progress events (the last step is always reported)."""

_BAR_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet() -> None:
    """No progress bars in this process; each distinct warning printed once, as one line."""
    os.environ.update(_BAR_ENV)
    try:
        import datasets  # type: ignore[import-untyped, unused-ignore]

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]
    except ImportError:
        pass
    seen: set[tuple[str, str]] = set()

    def once(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        key = (category.__name__, str(message))
        if key in seen:
            return
        seen.add(key)
        where = "/".join(Path(filename).parts[-2:])
        text = " ".join(str(message).split())
        print(f"warning: {category.__name__}: {text} ({where}:{lineno})", file=sys.stderr)

    warnings.showwarning = once


def progress_callback(ctx: StageContext) -> Any:
    """A `ProgressEvents` TrainerCallback for ``ctx`` (transformers imported only here)."""
    from transformers import TrainerCallback

    class ProgressEvents(TrainerCallback):  # type: ignore[misc, unused-ignore]
        """Progress and speed events of a Trainer run (see the module)."""

        def __init__(self) -> None:
            self.started = 0.0
            self.first_step = 0
            self.last_event = 0.0
            self.first_tokens = 0.0
            """``num_tokens`` when this run began (the checkpoint's, when it resumed)."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.monotonic()
            self.first_step = int(state.global_step)
            counted = [e["num_tokens"] for e in state.log_history if "num_tokens" in e]
            self.first_tokens = float(counted[-1]) if counted else 0.0

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now, step = time.monotonic(), int(state.global_step)
            if now - self.last_event >= EVERY_S or step >= state.max_steps:
                self.last_event = now
                ctx.progress(step, state.max_steps, "step")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = dict(logs or {})
            if "train_runtime" in logs:  # the end-of-run summary
                return
            now, step = time.monotonic(), int(state.global_step)
            done = step - self.first_step
            elapsed = now - self.started
            if done <= 0 or elapsed <= 0:
                return
            rate = done / elapsed
            values = {"steps_per_s": rate, "eta_s": max(0, state.max_steps - step) / rate}
            count = logs.get("num_tokens")
            if isinstance(count, int | float) and not isinstance(count, bool):
                values["tokens_per_s"] = (count - self.first_tokens) / elapsed
            ctx.metric(values, step=step)

    return ProgressEvents()
