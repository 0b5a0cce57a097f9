"""`TrainSpec`: one typed description of a training run, mapped onto an ``llm-<method>`` recipe.

``blut train --method sft --model PATH --dataset PATH`` builds a `TrainSpec`;
`TrainSpec.overrides` turns it into the recipe's ``--set`` overrides
(``model.path=...``, ``tokenize.source=...`` / ``prefs.source=...`` /
``prompts.source=...`` by method, ``<stage>.lr=...``), and `TrainSpec.resolve`
validates them exactly like ``blut recipe run`` does (config layers, schema).
Only what the spec gives is set: everything else keeps the recipe's defaults
and the user's config files. Bad input is a one-line `UsageError`.

No ML imports here: the spec is checked and mapped without torch.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from blut.jobs.errors import UsageError, clip
from blut.jobs.recipes import RecipeDef, find

DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Method:
    """How a training method maps onto its recipe."""

    name: str
    recipe: str
    stage: str
    """The trainer stage whose args the spec's training options set."""
    data: str
    """The data stage whose ``source`` the spec's dataset sets."""
    data_form: str
    """What a dataset row holds (for messages)."""
    lora: bool = True
    eval: bool = True


METHODS: Mapping[str, Method] = {
    m.name: m
    for m in (
        Method("sft", "llm-sft", "sft", "tokenize", "messages, prompt+completion or text"),
        Method("reward", "llm-reward", "reward", "prefs", "prompt, chosen, rejected"),
        Method("dpo", "llm-dpo", "dpo", "prefs", "prompt, chosen, rejected"),
        Method("ipo", "llm-ipo", "dpo", "prefs", "prompt, chosen, rejected"),
        Method("kto", "llm-kto", "dpo", "prefs", "prompt, chosen, rejected"),
        Method("grpo", "llm-grpo", "grpo", "prompts", "prompt (+ answer)", eval=False),
        Method("distill", "llm-distill", "distill", "tokenize", "messages or text", lora=False),
    )
}

_STAGE_KEYS = (
    "optimizer",
    "lr",
    "schedule",
    "warmup_steps",
    "lora",
    "lora_r",
    "lora_alpha",
    "precision",
    "max_steps",
    "epochs",
    "seed",
    "eval_every",
)
"""Spec fields that are the trainer stage's args of the same name."""


def method(name: str) -> Method:
    """The method called ``name``; an unknown one is a `UsageError` with a suggestion."""
    if name in METHODS:
        return METHODS[name]
    close = difflib.get_close_matches(name, list(METHODS), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"methods: {', '.join(METHODS)}"
    raise UsageError(f"unknown method {clip(name)!r} ({hint})")


def quote(value: str) -> str:
    """``value`` as a quoted override value (any path survives the override grammar).

    Inside quotes the grammar only escapes quotes and the backslashes right
    before a quote or the closing quote; every other backslash is literal.
    """

    def escape(match: re.Match[str]) -> str:
        return match.group(1) * 2 + ("\\'" if match.group(2) else "")

    return "'" + re.sub(r"(\\*)('|$)", escape, value) + "'"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote(str(value))


def _absolute(path: Path) -> Path:
    return path.expanduser().resolve()


@dataclass(frozen=True)
class TrainSpec:
    """A training run: method, model, data and the usual knobs; None keeps the recipe default."""

    method: str
    model: Path | None = None
    """A local HF model dir (config.json + weights); None trains the tiny built-in model."""
    tokenizer: Path | None = None
    """A local tokenizer dir to use with ``model`` (None: the model dir's own)."""
    dataset: Path | None = None
    """A JSONL/Parquet file for the method's data stage; None uses the toy tasks."""
    optimizer: str | None = None
    lr: float | None = None
    schedule: str | None = None
    warmup_steps: int | None = None
    lora: bool | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    precision: str | None = None
    max_steps: int | None = None
    epochs: float | None = None
    seed: int | None = None
    eval_every: int | None = None
    sets: tuple[str, ...] = ()
    """Further ``--set KEY=VALUE`` overrides, applied after the spec's own."""

    def check(self) -> Method:
        """The spec's method after checking paths and options; a `UsageError` otherwise."""
        m = method(self.method)
        if self.model is not None:
            path = _absolute(self.model)
            if not path.is_dir():
                raise UsageError(f"model {self.model}: no such directory")
            if not (path / "config.json").is_file():
                raise UsageError(f"model {self.model}: not a model dir (no config.json)")
        if self.tokenizer is not None:
            if self.model is None:
                raise UsageError("tokenizer needs model (the tiny model trains its own tokenizer)")
            path = _absolute(self.tokenizer)
            if not path.is_dir():
                raise UsageError(f"tokenizer {self.tokenizer}: no such directory")
            if not any((path / f).is_file() for f in TOKENIZER_FILES):
                raise UsageError(f"tokenizer {self.tokenizer}: no tokenizer.json there")
        if self.dataset is not None:
            path = _absolute(self.dataset)
            if path.is_dir():
                raise UsageError(
                    f"dataset {self.dataset}: is a folder; give a .jsonl or .parquet file"
                )
            if not path.is_file():
                raise UsageError(f"dataset {self.dataset}: no such file")
            if path.suffix not in DATA_SUFFIXES:
                raise UsageError(
                    f"dataset {self.dataset}: expected {', '.join(DATA_SUFFIXES)} "
                    f"({m.name} rows: {m.data_form})"
                )
        if not m.lora and any(v is not None for v in (self.lora, self.lora_r, self.lora_alpha)):
            raise UsageError(f"method {m.name} has no LoRA option (it trains every weight)")
        if not m.eval and self.eval_every is not None:
            raise UsageError(f"method {m.name} has no eval_every option (it does not evaluate)")
        if not self.lora and (self.lora_r is not None or self.lora_alpha is not None):
            raise UsageError("lora_r and lora_alpha need lora on")
        if self.max_steps is not None and self.epochs is not None:
            raise UsageError("give max_steps or epochs, not both (epochs replaces max_steps)")
        return m

    def overrides(self) -> list[str]:
        """The recipe's ``--set`` overrides for this spec (checked first)."""
        m = self.check()
        out: list[str] = []
        if self.model is not None:
            out.append(f"model.path={quote(str(_absolute(self.model)))}")
        if self.tokenizer is not None:
            out.append(f"model.tokenizer={quote(str(_absolute(self.tokenizer)))}")
        if self.dataset is not None:
            out.append(f"{m.data}.source={quote(str(_absolute(self.dataset)))}")
        for key in _STAGE_KEYS:
            value = getattr(self, key)
            if value is not None:
                out.append(f"{m.stage}.{key}={_value(value)}")
        out.extend(self.sets)
        return out

    def recipe(self) -> RecipeDef:
        """The recipe that runs this spec."""
        return find(method(self.method).recipe)

    def resolve(
        self,
        *,
        config_file: Path | None = None,
        cwd: Path | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> dict[str, Any]:
        """The recipe's validated args (config layers < the spec < its ``sets``)."""
        (args,) = self.recipe().resolve(
            sets=self.overrides(), config_file=config_file, cwd=cwd, environ=environ
        )
        return args

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as JSON-ready values."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            out[f.name] = str(value) if isinstance(value, Path) else value
        if "sets" in out:
            out["sets"] = list(out["sets"])
        return out
