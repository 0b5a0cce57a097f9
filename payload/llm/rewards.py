"""GRPO reward functions: built-ins by name, or any ``module:function`` entry point.

A reward function takes ``completions`` (strings, or lists of messages for
chat prompts) and the dataset's other columns as keyword arguments (``answer``
among them) and returns one float per completion, TRL's convention.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from blut.payload.errors import ArgsError

Reward = Callable[..., list[float]]


def text_of(completion: Any) -> str:
    """The generated text of one completion (the last message's content for chat)."""
    if isinstance(completion, list):
        return str(completion[-1]["content"]) if completion else ""
    return str(completion)


def exact_match(completions: list[Any], answer: list[str] | None = None, **kw: Any) -> list[float]:
    """1.0 when the stripped completion equals the (non-empty) reference answer, else 0.0."""
    answers = answer or [""] * len(completions)
    return [
        float(bool(a.strip()) and text_of(c).strip() == a.strip())
        for c, a in zip(completions, answers, strict=True)
    ]


def contains_answer(
    completions: list[Any], answer: list[str] | None = None, **kw: Any
) -> list[float]:
    """1.0 when the reference answer occurs in the completion, else 0.0."""
    answers = answer or [""] * len(completions)
    return [
        float(bool(a.strip()) and a.strip() in text_of(c))
        for c, a in zip(completions, answers, strict=True)
    ]


def brevity(completions: list[Any], **kw: Any) -> list[float]:
    """1.0 for an empty completion, falling linearly to 0.0 at 64 characters."""
    return [max(0.0, 1.0 - len(text_of(c)) / 64) for c in completions]


def length_reward(target: int) -> Reward:
    """A reward of 1.0 at ``target`` characters, falling with the distance from it."""

    def length(completions: list[Any], **kw: Any) -> list[float]:
        return [-abs(len(text_of(c)) - target) / target for c in completions]

    return length


BUILTIN: dict[str, Reward] = {
    "exact-match": exact_match,
    "contains-answer": contains_answer,
    "brevity": brevity,
}


def load(spec: str, opts: Mapping[str, Any]) -> Reward:
    """The reward function ``spec`` names: a built-in, or ``module:function``."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if spec == "length":
        return length_reward(int(opts.get("target_length", 8)))
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        known = ", ".join([*BUILTIN, "length"])
        raise ArgsError(f"grpo: reward {spec!r} is neither built-in ({known}) nor module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArgsError(f"grpo: reward {spec!r}: cannot import {module_name!r}: {exc}") from exc
    func = getattr(module, name, None)
    if not callable(func):
        raise ArgsError(f"grpo: reward {spec!r}: {module_name} has no function {name!r}")
    reward: Reward = func
    return reward
