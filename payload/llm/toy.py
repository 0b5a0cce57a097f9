"""Seeded toy data for the LLM stages: small, learnable tasks with one right answer.

Three task families, each a prompt with an exact answer: ``add`` (two small
numbers), ``reverse`` (a short word) and ``upper`` (shout a word). From them:
SFT conversations, preference pairs (the right answer is chosen, a near miss is
rejected) and prompts with their answers (for GRPO's exact-match reward and for
batch generation). The same seed always gives the same examples.
"""

from __future__ import annotations

import random
from typing import Any

WORDS = (
    "cat", "dog", "sun", "tree", "blue", "red", "moon", "star", "fish", "bird",
    "code", "data", "loss", "step", "rain", "wind", "road", "book", "lamp", "door",
)  # fmt: skip
TASKS = ("add", "reverse", "upper")


def _task(rng: random.Random) -> tuple[str, str, str]:
    """(prompt, answer, a wrong answer) of one random task."""
    kind = rng.choice(TASKS)
    if kind == "add":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        wrong = abs(a + b + rng.choice((-2, -1, 1, 2)))
        if wrong == a + b:  # 1 - 2 folds back onto the answer
            wrong = a + b + 2
        return f"What is {a} + {b}?", str(a + b), str(wrong)
    word = rng.choice(WORDS)
    if kind == "reverse":
        return f"Reverse the word {word}.", word[::-1], word
    return f"Shout the word {word}.", word.upper(), word


def sft(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` conversations: ``messages`` = [user prompt, assistant answer]."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, answer, _wrong = _task(rng)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def text(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` plain-text rows ``Q: ...\\nA: ...``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, answer, _wrong = _task(rng)
        rows.append({"text": f"Q: {prompt}\nA: {answer}"})
    return rows


def prefs(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` pairs: ``prompt``, ``chosen`` (right), ``rejected`` (a near miss)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, answer, wrong = _task(rng)
        rows.append({"prompt": prompt, "chosen": answer, "rejected": wrong})
    return rows


def prompts(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` prompts with their exact ``answer``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, answer, _wrong = _task(rng)
        rows.append({"prompt": prompt, "answer": answer})
    return rows


def corpus() -> str:
    """Text to train the tokenizer on: the stdlib's pydoc topics plus toy task text."""
    from pydoc_data.topics import topics

    parts = [topics[k] for k in sorted(topics)]
    parts += [row["text"] for row in text(500, 12345)]
    return "\n\n".join(parts)
