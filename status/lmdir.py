"""Names inside an ``lm`` artifact (a model dir) that the payload writes and `blut export` reads.

An ``lm`` trained with LoRA is saved as its ``lora_save`` arg says: ``merged``
(a plain HF model dir), ``adapter`` (a peft adapter dir at the top:
`ADAPTER_CONFIG` naming the base model dir, ``adapter_model.safetensors`` and
the tokenizer) or ``both`` (the merged model dir with the adapter dir in
`ADAPTER_DIR`).
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_DIR = "adapter"
"""The adapter dir inside a model dir saved with ``lora_save=both``."""
ADAPTER_CONFIG = "adapter_config.json"
"""What marks a peft adapter dir."""


def adapter_dir(model_dir: Path) -> Path | None:
    """The peft adapter dir of an ``lm`` artifact (itself or its `ADAPTER_DIR`), or None."""
    for where in (model_dir, model_dir / ADAPTER_DIR):
        if (where / ADAPTER_CONFIG).is_file():
            return where
    return None
