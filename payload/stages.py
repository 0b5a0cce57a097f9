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


def encode(ctx: StageContext, argv: list[str]) -> int:
    """OHLCV → per-ticker features without look-ahead (Parquet shards + manifest)."""
    from blut.payload.encode import run

    return run(ctx, argv)


def label(ctx: StageContext, argv: list[str]) -> int:
    """Features → forward-return targets (3-class or regression) as Arrow shards."""
    from blut.payload.label import run

    return run(ctx, argv)


def split(ctx: StageContext, argv: list[str]) -> int:
    """Chronological train/val/test or walk-forward folds with an embargo (manifests)."""
    from blut.payload.split import run

    return run(ctx, argv)


def train(ctx: StageContext, argv: list[str]) -> int:
    """Train a windowed model (MLP/CNN/GRU/linear) with checkpoints and exact resume."""
    from blut.payload.train import run

    return run(ctx, argv)


def evaluate(ctx: StageContext, argv: list[str]) -> int:
    """Test-split metrics, confusion matrix and a long/short backtest vs buy-and-hold."""
    from blut.payload.evaluate import run

    return run(ctx, argv)


def smoke_make(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: write seeded random integers."""
    from blut.payload.smoke import make

    return make(ctx, argv)


def smoke_power(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: raise the upstream numbers to a power."""
    from blut.payload.smoke import power

    return power(ctx, argv)


def smoke_total(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: sum the upstream branches into a report."""
    from blut.payload.smoke import total

    return total(ctx, argv)


def tiny_model(ctx: StageContext, argv: list[str]) -> int:
    """LLM: build a tiny random-init Llama-style LM + a locally trained BPE tokenizer."""
    from blut.payload.llm.model import run

    return run(ctx, argv)


def tokenize(ctx: StageContext, argv: list[str]) -> int:
    """LLM: chat or plain-text examples → Parquet of token ids + completion mask."""
    from blut.payload.llm.data import tokenize as run

    return run(ctx, argv)


def prefs(ctx: StageContext, argv: list[str]) -> int:
    """LLM: validated preference pairs (prompt, chosen, rejected) → Parquet."""
    from blut.payload.llm.data import prefs as run

    return run(ctx, argv)


def prompts(ctx: StageContext, argv: list[str]) -> int:
    """LLM: validated prompts (+ reference answers) → Parquet."""
    from blut.payload.llm.data import prompts as run

    return run(ctx, argv)


def sft(ctx: StageContext, argv: list[str]) -> int:
    """LLM: supervised fine-tuning (TRL SFTTrainer) with resumable checkpoints."""
    from blut.payload.llm.methods import sft as run

    return run(ctx, argv)


def reward(ctx: StageContext, argv: list[str]) -> int:
    """LLM: Bradley-Terry reward model on preference pairs (TRL RewardTrainer)."""
    from blut.payload.llm.methods import reward as run

    return run(ctx, argv)


def dpo(ctx: StageContext, argv: list[str]) -> int:
    """LLM: preference optimisation, DPO / IPO / KTO (TRL)."""
    from blut.payload.llm.methods import dpo as run

    return run(ctx, argv)


def grpo(ctx: StageContext, argv: list[str]) -> int:
    """LLM: GRPO (TRL) with built-in or module:function reward functions."""
    from blut.payload.llm.methods import grpo as run

    return run(ctx, argv)


def distill(ctx: StageContext, argv: list[str]) -> int:
    """LLM: distil a teacher lm into a student (KL on next-token distributions)."""
    from blut.payload.llm.methods import distill as run

    return run(ctx, argv)


def generate(ctx: StageContext, argv: list[str]) -> int:
    """LLM: resumable batch generation (vLLM on a GPU, transformers on the CPU)."""
    from blut.payload.llm.generate import run

    return run(ctx, argv)


STAGES: dict[str, Stage] = {
    "demo": demo,
    "encode": encode,
    "label": label,
    "split": split,
    "train": train,
    "evaluate": evaluate,
    "smoke-make": smoke_make,
    "smoke-power": smoke_power,
    "smoke-total": smoke_total,
    "tiny-model": tiny_model,
    "tokenize": tokenize,
    "prefs": prefs,
    "prompts": prompts,
    "sft": sft,
    "reward": reward,
    "dpo": dpo,
    "grpo": grpo,
    "distill": distill,
    "generate": generate,
}


def summary(stage: Stage) -> str:
    """The first line of a stage's docstring."""
    return (stage.__doc__ or "").strip().partition("\n")[0]
