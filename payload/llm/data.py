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


class Unmaskable(ValueError):
    """The chat template renders a turn so that its tokens cannot be told apart."""


def _chat_ids(tok: Any, messages: list[dict[str, str]], generation: bool = False) -> list[int]:
    return _ids(tok.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True))


def _ids(value: Any) -> list[int]:
    if isinstance(value, dict) or hasattr(value, "keys"):
        value = value["input_ids"]
    return [int(i) for i in value]


def _text_ids(tok: Any, text: str) -> list[int]:
    return [int(i) for i in tok(text, add_special_tokens=False)["input_ids"]]


def _common_prefix(ids: list[int], other: list[int]) -> int:
    """How many leading tokens two sequences share (TRL's ``common_prefix_length``)."""
    size = min(len(ids), len(other))
    return next((i for i in range(size) if ids[i] != other[i]), size)


def encode_messages(
    tok: Any, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a mask of every assistant turn (TRL's assistant-only loss).

    A turn's tokens run from the end of the conversation before it rendered
    with the generation prompt to the end of the conversation up to it; the
    assistant header is context, the turn's text and end-of-turn token are targets.
    """
    full = _chat_ids(tok, messages)
    mask = [0] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = _common_prefix(_chat_ids(tok, messages[:i], True), full) if i else 0
        upto = _chat_ids(tok, messages[: i + 1])
        if full[: len(upto)] != upto:
            raise Unmaskable(
                f"the chat template renders message {i} differently inside the conversation "
                "than at its end, so its tokens cannot be masked"
            )
        mask[start : len(upto)] = [1] * (len(upto) - start)
    return full[:max_length], mask[:max_length]


def encode_completion(
    tok: Any, prompt: Any, completion: Any, max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of prompt + completion and a mask of the completion (TRL's completion-only loss).

    Message lists go through the chat template (the prompt with the generation
    prompt); text is tokenized as is and eos follows the completion. The
    completion starts where the prompt's tokens and the whole's diverge, as in TRL.
    """
    if isinstance(prompt, list):
        before, full = _chat_ids(tok, prompt, True), _chat_ids(tok, prompt + completion)
    else:
        before = _text_ids(tok, prompt)
        full = [*_text_ids(tok, prompt + completion), tok.eos_token_id]
    start = _common_prefix(before, full)
    mask = [0] * start + [1] * (len(full) - start)
    return full[:max_length], mask[:max_length]


def encode_text(tok: Any, text: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of plain text followed by eos; every token is a target."""
    ids = [*_text_ids(tok, text), tok.eos_token_id][:max_length]
    return ids, [1] * len(ids)


def encode(tok: Any, example: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """An SFT example in TRL's shape (`records.sft_example`) → (input_ids, completion_mask)."""
    if "messages" in example:
        return encode_messages(tok, example["messages"], max_length)
    if "text" in example:
        return encode_text(tok, example["text"], max_length)
    return encode_completion(tok, example["prompt"], example["completion"], max_length)


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
            example = records.sft_example(source, record, chat)
            try:
                pair = encode(tok, example, opts["max_length"])
            except Unmaskable as exc:
                raise records.bad(source, record, str(exc)) from None
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
    """Preference data → ``prefs.parquet``, validated by `records.preferences`.

    Pairs (prompt, chosen, rejected; the prompt may be implicit, the common
    start of chosen and rejected) or unpaired rows (prompt, completion, label:
    TRL's KTO format), as text or chat (message lists, which TRL renders with
    the model's chat template); when a source mixes text and chat, every row is
    stored in chat form so the Parquet columns have one type.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("prefs", ctx.args, argv)
    source = opts["source"]
    toy_rows = toy.prefs(opts["examples"], opts["seed"]) if source == "toy" else None
    with _checked():
        found = records.preferences(source, _records(source, toy_rows))
    pq.write_table(pa.Table.from_pylist(found.rows), ctx.staging / PREFS_FILE)
    manifest = {
        "rows": len(found.rows),
        "chat": found.chat,
        "unpaired": found.unpaired,
        "args": opts,
    }
    (ctx.staging / "prefs.json").write_text(json.dumps(manifest, indent=2) + "\n")
    what = "unpaired examples" if found.unpaired else "valid pairs"
    ctx.log(f"prefs: {len(found.rows)} {what}" + (" (chat form)" if found.chat else ""))
    return 0


def read_prefs_manifest(path: Path) -> dict[str, Any]:
    """The ``prefs.json`` of a ``preferences`` artifact ({} when absent)."""
    manifest = path / "prefs.json"
    return dict(json.loads(manifest.read_text())) if manifest.is_file() else {}


# --- prompts ---------------------------------------------------------------------------


def prompts(ctx: StageContext, argv: list[str]) -> int:
    """Prompts (+ answers) → ``prompts.parquet`` (index, prompt, answer, messages).

    ``messages`` holds a prompt given as a message list (a system prompt,
    earlier turns); its ``prompt`` is then the list's JSON text, which
    generate's sample ids and outputs use.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("prompts", ctx.args, argv)
    source = opts["source"]
    toy_rows = toy.prompts(opts["examples"], opts["seed"]) if source == "toy" else None
    out = []
    for index, record in enumerate(_records(source, toy_rows)):
        with _checked():
            value, answer = records.prompt(source, record, opts["chat"])
        listed = isinstance(value, list)
        out.append(
            {
                "index": index,
                "prompt": json.dumps(value, ensure_ascii=False) if listed else value,
                "answer": answer,
                "messages": value if listed else None,
            }
        )
    schema = pa.schema(
        [
            ("index", pa.int64()),
            ("prompt", pa.string()),
            ("answer", pa.string()),
            ("messages", message_lists()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(out, schema=schema), ctx.staging / PROMPTS_FILE)
    lists = sum(1 for row in out if row["messages"] is not None)
    manifest = {"rows": len(out), "chat": opts["chat"], "message_lists": lists, "args": opts}
    (ctx.staging / "prompts.json").write_text(json.dumps(manifest, indent=2) + "\n")
    ctx.log(f"prompts: {len(out)} prompts" + (f" ({lists} message lists)" if lists else ""))
    return 0


def message_lists() -> Any:
    """The Arrow type of a ``messages`` column (prompts, completions): lists of {role, content}."""
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def prompt_messages(row: dict[str, Any], chat: bool) -> list[dict[str, str]] | None:
    """The messages a prompts row stands for (a text prompt as one user message), or None.

    None: ``chat`` is off and the row is text the model sees as is.
    """
    if row.get("messages"):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return [{"role": "user", "content": row["prompt"]}] if chat else None


def check_chat_template(stage: str, tok: Any, rows: list[dict[str, Any]], chat: bool) -> None:
    """Chat prompts (``chat``, or message lists) on a tokenizer without a chat template → DataError."""
    if tok.chat_template is None and (chat or any(r.get("messages") for r in rows)):
        raise DataError(records.no_template(stage, records.CHAT_PROMPTS))


def read_prompts(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows of a ``prompts`` artifact and whether they are chat prompts."""
    import pyarrow.parquet as pq

    manifest = json.loads((path / "prompts.json").read_text())
    rows: list[dict[str, Any]] = pq.read_table(path / PROMPTS_FILE).to_pylist()
    return rows, bool(manifest["chat"])
