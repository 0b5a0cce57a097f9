"""Data stages: ``tokenize`` (→ ``tokens``), ``prefs`` (→ ``preferences``), ``prompts`` (→ ``prompts``).

Sources are ``toy`` (the seeded generators of `toy`) or a local ``.jsonl`` /
``.parquet`` file. Every record is checked and the first bad one is named by
its line (1-based, as an editor shows a JSONL file) in a one-line error.
Outputs are one Parquet file plus a small JSON manifest each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import DataError
from blut.payload.llm import common, toy

TOKENS_FILE = "tokens.parquet"
PREFS_FILE = "prefs.parquet"
PROMPTS_FILE = "prompts.parquet"
ROLES = ("system", "user", "assistant")


def _rows(source: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = common.read_rows(Path(source).expanduser())
    if not rows:
        raise DataError(f"{source}: no records")
    return rows


def _bad(source: str, line: int, problem: str) -> DataError:
    return DataError(f"{source}: record {line}: {problem}")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- tokenize ---------------------------------------------------------------------------


def _check_messages(source: str, line: int, messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _bad(source, line, "'messages' must be a non-empty list")
    for i, msg in enumerate(messages):
        if (
            not isinstance(msg, dict)
            or msg.get("role") not in ROLES
            or not _text(msg.get("content"))
        ):
            raise _bad(
                source, line, f"message {i} needs a role in {ROLES} and non-empty text content"
            )
    if messages[-1]["role"] != "assistant":
        raise _bad(source, line, "the last message must be the assistant's (the training target)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _conversation(source: str, line: int, row: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in row:
        return _check_messages(source, line, row["messages"])
    if _text(row.get("prompt")) and _text(row.get("completion")):
        return [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
    raise _bad(source, line, "expected 'messages', or 'prompt' and 'completion' text")


def _plain(source: str, line: int, row: dict[str, Any]) -> str:
    if _text(row.get("text")):
        return str(row["text"])
    if _text(row.get("prompt")) and _text(row.get("completion")):
        return f"{row['prompt']}{row['completion']}"
    raise _bad(source, line, "expected non-empty 'text' (or 'prompt' and 'completion')")


def encode_chat(
    tok: Any, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a mask of the last (assistant) message's tokens."""
    prompt = tok.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
    full = tok.apply_chat_template(messages, tokenize=True)
    prompt, full = _ids(prompt), _ids(full)
    if full[: len(prompt)] != prompt:
        raise DataError("tokenize: the chat template does not render the prompt as a prefix")
    mask = [0] * len(prompt) + [1] * (len(full) - len(prompt))
    return full[:max_length], mask[:max_length]


def _ids(value: Any) -> list[int]:
    if isinstance(value, dict) or hasattr(value, "keys"):
        value = value["input_ids"]
    return [int(i) for i in value]


def encode_text(tok: Any, text: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of plain text followed by eos; every token is a target."""
    ids = [*tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id][:max_length]
    return ids, [1] * len(ids)


def tokenize(ctx: StageContext, argv: list[str]) -> int:
    """Examples → ``tokens.parquet`` (input_ids, completion_mask) with the lm's tokenizer."""
    common.prepare(ctx, "tokenize")
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("tokenize", ctx.args, argv)
    tok = common.load_tokenizer(common.input_lm(ctx))
    source, chat = opts["source"], opts["format"] == "chat"
    if source == "toy":
        rows = (
            toy.sft(opts["examples"], opts["seed"])
            if chat
            else toy.text(opts["examples"], opts["seed"])
        )
    else:
        rows = _rows(source)
    if chat and tok.chat_template is None:
        raise DataError("tokenize: format 'chat' but the tokenizer has no chat template")
    ids: list[list[int]] = []
    masks: list[list[int]] = []
    for line, row in enumerate(rows, 1):
        if chat:
            pair = encode_chat(tok, _conversation(source, line, row), opts["max_length"])
        else:
            pair = encode_text(tok, _plain(source, line, row), opts["max_length"])
        if not any(pair[1]):
            raise _bad(
                source, line, f"no target tokens left within max_length {opts['max_length']}"
            )
        ids.append(pair[0])
        masks.append(pair[1])
    table = pa.table(
        {
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "completion_mask": pa.array(masks, pa.list_(pa.int8())),
        }
    )
    pq.write_table(table, ctx.staging / TOKENS_FILE)
    lengths = [len(i) for i in ids]
    manifest = {
        "rows": len(ids),
        "format": opts["format"],
        "tokens": sum(lengths),
        "max_tokens": max(lengths),
        "args": opts,
    }
    (ctx.staging / "tokens.json").write_text(json.dumps(manifest, indent=2) + "\n")
    ctx.log(f"tokenize: {len(ids)} examples, {sum(lengths)} tokens (longest {max(lengths)})")
    return 0


# --- prefs -----------------------------------------------------------------------------


def _messages(source: str, line: int, key: str, value: Any) -> list[dict[str, str]]:
    """A checked message list (the chat form of a prompt, chosen or rejected)."""
    if not value:
        raise _bad(source, line, f"{key!r} must be non-empty text or a non-empty message list")
    for i, msg in enumerate(value):
        if (
            not isinstance(msg, dict)
            or msg.get("role") not in ROLES
            or not _text(msg.get("content"))
        ):
            raise _bad(
                source,
                line,
                f"{key!r} message {i} needs a role in {ROLES} and non-empty text content",
            )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def check_pair(source: str, line: int, row: Any) -> dict[str, Any]:
    """One validated preference pair, or a DataError naming the record.

    Each of prompt, chosen and rejected is text or (chat form) a list of
    ``{role, content}`` messages; chosen and rejected must then end with the
    assistant's message. Mixed records are made conversational: a text prompt
    becomes one user message, a text answer one assistant message.
    """
    if not isinstance(row, dict):
        raise _bad(source, line, "expected an object with prompt, chosen and rejected")
    pair: dict[str, Any] = {}
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise _bad(source, line, f"missing {key!r}")
        value = row[key]
        if isinstance(value, list):
            pair[key] = _messages(source, line, key, value)
        elif _text(value):
            pair[key] = value
        else:
            raise _bad(
                source,
                line,
                f"{key!r} must be non-empty text or a message list, got {json.dumps(value)[:60]}",
            )
    if any(isinstance(v, list) for v in pair.values()):
        pair = {k: _as_messages(k, v) for k, v in pair.items()}
        for key in ("chosen", "rejected"):
            if pair[key][-1]["role"] != "assistant":
                raise _bad(source, line, f"{key!r} must end with the assistant's message")
    if pair["chosen"] == pair["rejected"]:
        raise _bad(source, line, "'chosen' and 'rejected' are identical")
    return pair


def _as_messages(key: str, value: Any) -> list[dict[str, str]]:
    if isinstance(value, list):
        return value
    return [{"role": "user" if key == "prompt" else "assistant", "content": value}]


def is_chat_pair(pair: dict[str, Any]) -> bool:
    """Whether a checked pair is in chat form (message lists)."""
    return isinstance(pair["chosen"], list)


def prefs(ctx: StageContext, argv: list[str]) -> int:
    """Preference pairs → ``prefs.parquet`` (prompt, chosen, rejected), validated.

    Text pairs and chat pairs (message lists, which TRL renders with the
    model's chat template) are both accepted; when a source mixes them, every
    pair is stored in chat form so the Parquet columns have one type.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("prefs", ctx.args, argv)
    source = opts["source"]
    rows = toy.prefs(opts["examples"], opts["seed"]) if source == "toy" else _rows(source)
    pairs = [check_pair(source, line, row) for line, row in enumerate(rows, 1)]
    chat = any(is_chat_pair(p) for p in pairs)
    if chat:
        pairs = [{k: _as_messages(k, v) for k, v in p.items()} for p in pairs]
    pq.write_table(pa.Table.from_pylist(pairs), ctx.staging / PREFS_FILE)
    manifest = {"rows": len(pairs), "chat": chat, "args": opts}
    (ctx.staging / "prefs.json").write_text(json.dumps(manifest, indent=2) + "\n")
    ctx.log(f"prefs: {len(pairs)} valid pairs" + (" (chat form)" if chat else ""))
    return 0


# --- prompts ---------------------------------------------------------------------------


def prompts(ctx: StageContext, argv: list[str]) -> int:
    """Prompts (+ answers) → ``prompts.parquet`` (id, prompt, answer, chat)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("prompts", ctx.args, argv)
    source = opts["source"]
    rows = toy.prompts(opts["examples"], opts["seed"]) if source == "toy" else _rows(source)
    out = []
    for line, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not _text(row.get("prompt")):
            raise _bad(source, line, "'prompt' must be non-empty text")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            answer = json.dumps(answer)
        out.append({"index": line - 1, "prompt": row["prompt"], "answer": answer})
    table = pa.Table.from_pylist(
        out,
        schema=pa.schema([("index", pa.int64()), ("prompt", pa.string()), ("answer", pa.string())]),
    )
    pq.write_table(table, ctx.staging / PROMPTS_FILE)
    manifest = {"rows": len(out), "chat": opts["chat"], "args": opts}
    (ctx.staging / "prompts.json").write_text(json.dumps(manifest, indent=2) + "\n")
    ctx.log(f"prompts: {len(out)} prompts")
    return 0


def read_prompts(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows of a ``prompts`` artifact and whether they are chat prompts."""
    import pyarrow.parquet as pq

    manifest = json.loads((path / "prompts.json").read_text())
    rows: list[dict[str, Any]] = pq.read_table(path / PROMPTS_FILE).to_pylist()
    return rows, bool(manifest["chat"])
