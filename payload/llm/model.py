"""Stage ``tiny-model``: a tiny random-init Llama-style causal LM + a locally trained tokenizer.

The tokenizer is a byte-level BPE trained with `tokenizers` on packaged text
(the standard library's ``pydoc_data.topics`` plus the toy tasks), with
``<|pad|>``, ``<|bos|>``, ``<|eos|>`` and role tokens, and a chat template
that renders ``<|role|>content<|eos|>`` per message (the generation prompt is
``<|assistant|>``, so a prompt's tokens are always a prefix of the whole
conversation's). Both are saved with ``save_pretrained`` into staging: the
artifact is a model dir every other LLM stage loads from its path. With
``path`` set the stage builds nothing and writes ``ref.json`` naming that local
model dir instead (its config.json, or a LoRA adapter's adapter_config.json,
and tokenizer are checked). ``chat_template`` picks the template every later
stage renders chats with: the tokenizer's own (``model``), `CHATML`, or a
Jinja file's text; the tiny model's tokenizer is saved with it, a reference
records it in ref.json (`common.lm_path` applies it when the tokenizer loads).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import InputError
from blut.payload.llm import common, toy
from blut.status.lmdir import ADAPTER_CONFIG

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|eos|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE trained on `toy.corpus`, wrapped as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = toy.corpus()
    tk.train_from_iterator((text[i : i + 4096] for i in range(0, len(text), 4096)), trainer)
    tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call, unused-ignore]
        tokenizer_object=tk, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(tok: Any, opts: dict[str, Any]) -> Any:
    """A random-init LlamaForCausalLM sized by ``opts`` (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden = opts["hidden"]
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=opts["intermediate"] or 2 * hidden,
        num_hidden_layers=opts["layers"],
        num_attention_heads=opts["heads"],
        num_key_value_heads=opts["kv_heads"],
        max_position_embeddings=opts["max_positions"],
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(opts["seed"])
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model


CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML (``chat_template=chatml``); its markers are plain text to a tokenizer without them."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def chat_template(choice: str) -> str | None:
    """The template text ``choice`` names (None: keep the tokenizer's own)."""
    if choice == "model":
        return None
    if choice == "chatml":
        return CHATML
    path = Path(choice).expanduser()
    if not path.is_file():
        raise InputError(f"tiny-model: chat_template {choice!r}: no such template file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"tiny-model: chat_template {choice!r}: not UTF-8 text") from None
    if "messages" not in text:
        raise InputError(f"tiny-model: chat_template {choice!r}: no Jinja chat template")
    return text


def _reference(
    ctx: StageContext, raw: str, raw_tokenizer: str = "", template: str | None = None
) -> None:
    path = Path(raw).expanduser().resolve()
    marker = next((f for f in ("config.json", ADAPTER_CONFIG) if (path / f).is_file()), None)
    if marker is None:
        raise InputError(f"tiny-model: path {raw!r} is not a local model dir (no config.json)")
    tok_path = Path(raw_tokenizer).expanduser().resolve() if raw_tokenizer else path
    if not any((tok_path / f).is_file() for f in TOKENIZER_FILES):
        which = "tokenizer" if raw_tokenizer else "path"
        raise InputError(f"tiny-model: {which} {raw_tokenizer or raw!r} has no tokenizer files")
    config = (path / marker).read_bytes()
    ref: dict[str, Any] = {"path": str(path), "config_sha256": hashlib.sha256(config).hexdigest()}
    if raw_tokenizer:
        ref["tokenizer"] = str(tok_path)
    if template is not None:
        ref["chat_template"] = template
    (ctx.staging / common.REF_FILE).write_text(json.dumps(ref, indent=2) + "\n")
    ctx.log(f"tiny-model: using the local model at {path}")


def run(ctx: StageContext, argv: list[str]) -> int:
    """Build (or reference) the model dir into ``ctx.staging``."""
    common.prepare(ctx, "tiny-model")
    opts = args.resolve("tiny-model", ctx.args, argv)
    template = chat_template(opts["chat_template"])
    if opts["path"]:
        _reference(ctx, opts["path"], opts["tokenizer"], template)
        return 0
    if opts["tokenizer"]:
        raise InputError("tiny-model: tokenizer needs path (the tiny model trains its own)")
    if opts["hidden"] % opts["heads"] or opts["heads"] % opts["kv_heads"]:
        raise InputError("tiny-model: hidden must divide by heads, and heads by kv_heads")
    common.set_threads(opts["threads"])
    tok = build_tokenizer(opts["vocab_size"])
    if template is not None:
        tok.chat_template = template
    model = build_model(tok, opts)
    model.save_pretrained(str(ctx.staging), safe_serialization=True)
    tok.save_pretrained(str(ctx.staging))
    params = sum(p.numel() for p in model.parameters())
    summary = {"params": params, "vocab": len(tok), "args": opts}
    (ctx.staging / "tiny-model.json").write_text(json.dumps(summary, indent=2) + "\n")
    ctx.log(f"tiny-model: {params / 1e6:.2f}M parameters, vocab {len(tok)}")
    ctx.metric({"params": float(params)})
    return 0
