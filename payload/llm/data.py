"""Data stages: ``tokenize`` (→ ``tokens``), ``prefs`` (→ ``preferences``), ``prompts`` (→ ``prompts``).

Sources are ``toy`` (the seeded generators of `toy`) or a local JSONL, JSON
array or Parquet file, read and checked by `blut.status.records` (the same
code ``blut recipe run`` checks them with before it submits): the first bad
record is named by its file line (or Parquet row) in a one-line error.
Outputs are one Parquet file plus a small JSON manifest each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import DataError
from blut.payload.llm import common, toy
from blut.status import records

TOKENS_FILE = "tokens.parquet"
PREFS_FILE = "prefs.parquet"
PROMPTS_FILE = "prompts.parquet"


@contextmanager
def _checked() -> Iterator[None]:
    """`records.RecordError` (the shared reader's one-line error) as this room's DataError."""
    try:
        yield
    except records.RecordError as exc:
        raise DataError(str(exc)) from None


def _records(source: str, rows: list[Any] | None = None) -> list[records.Record]:
    """Every record of ``source`` (a file), or ``rows`` (toy data) numbered as records."""
    if rows is not None:
        return [records.Record(f"record {n}", row) for n, row in enumerate(rows, 1)]
    with _checked():
        return records.read(Path(source).expanduser())


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
    toy_rows = None
    if source == "toy":
        make = toy.sft if chat else toy.text
        toy_rows = make(opts["examples"], opts["seed"])
    if chat and tok.chat_template is None:
        raise DataError(records.no_template("tokenize", "format 'chat'"))
    ids: list[list[int]] = []
    masks: list[list[int]] = []
    for record in _records(source, toy_rows):
        with _checked():
            if chat:
                pair = encode_chat(tok, records.conversation(source, record), opts["max_length"])
            else:
                pair = encode_text(tok, records.plain(source, record), opts["max_length"])
            if not any(pair[1]):
                raise records.bad(
                    source, record, f"no target tokens left within max_length {opts['max_length']}"
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
    toy_rows = toy.prefs(opts["examples"], opts["seed"]) if source == "toy" else None
    with _checked():
        pairs = [records.pair(source, r) for r in _records(source, toy_rows)]
    chat = any(records.is_chat_pair(p) for p in pairs)
    if chat:
        pairs = records.chat_pairs(pairs)
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
    toy_rows = toy.prompts(opts["examples"], opts["seed"]) if source == "toy" else None
    out = []
    for index, record in enumerate(_records(source, toy_rows)):
        with _checked():
            text, answer = records.prompt(source, record)
        out.append({"index": index, "prompt": text, "answer": answer})
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
