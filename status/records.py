"""LLM data files: read and check their records (one home for the CLI preflight and the stages).

A data file is JSON Lines (``.jsonl``/``.ndjson``/``.json``, one record a
line, blank lines skipped), a JSON array (``.json``/``.jsonl`` whose first
character is ``[``, one-line or pretty-printed, as `datasets` reads it), or
Parquet. Every record carries its real location: the file line where it
starts, or the Parquet row. A problem is one `RecordError` line naming file,
location and field. ``blut recipe run`` checks the first `PREFLIGHT` records
before it submits; the stage checks every record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blut.status.errors import StatusError

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PREFLIGHT = 1000
"""How many records the CLI checks before it submits a job."""
ROLES = ("system", "user", "assistant")
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
CHAT_PROMPTS = "chat prompts (prompts.chat=true or message lists)"
"""What needs a chat template in a prompts file (the `no_template` error names it)."""


class RecordError(StatusError):
    """A data file or one of its records is malformed (one line: file, location, field)."""


@dataclass(frozen=True)
class Record:
    """One record and where it is: ``line N`` of a JSON file or ``row N`` of a Parquet file."""

    where: str
    value: Any


def read(path: Path, limit: int | None = None) -> list[Record]:
    """The records of a data file (the first ``limit`` when given); none → `RecordError`."""
    if not path.is_file():
        raise RecordError(f"no such data file: {path}")
    if path.suffix == ".parquet":
        records = list(_parquet(path, limit))
    elif path.suffix in JSON_SUFFIXES:
        records = list(_json(path, limit))
    else:
        raise RecordError(f"{path}: expected a .jsonl, .json or .parquet file")
    if not records:
        raise RecordError(f"{path}: no records")
    return records


def _text_of(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RecordError(f"{path}: line {line}: not UTF-8 text") from None


def _json(path: Path, limit: int | None) -> Iterator[Record]:
    text = _text_of(path)
    if text.lstrip().startswith("["):
        yield from _array(path, text, limit)
        return
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        if limit is not None and count >= limit:
            return
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        count += 1
        yield Record(f"line {number}", value)


def _array(path: Path, text: str, limit: int | None) -> Iterator[Record]:
    """The elements of a JSON array, each at the line where it starts."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def bad(i: int, msg: str) -> RecordError:
        return RecordError(f"{path}: line {text.count(chr(10), 0, i) + 1}: not JSON ({msg})")

    i, count = skip(skip(0) + 1), 0
    if i < len(text) and text[i] == "]":
        i = skip(i + 1)
        if i < len(text):
            raise bad(i, "extra data after the array")
        return
    while True:
        if limit is not None and count >= limit:
            return
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise bad(exc.pos, exc.msg) from None
        count += 1
        yield Record(f"line {text.count(chr(10), 0, i) + 1}", value)
        i = skip(end)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
            continue
        if i < len(text) and text[i] == "]":
            if skip(i + 1) < len(text):
                raise bad(skip(i + 1), "extra data after the array")
            return
        raise bad(i, "expected ',' or ']'")


def _parquet(path: Path, limit: int | None) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise RecordError(f"{path}: not a Parquet file ({exc})") from None
    rows = table.slice(0, limit).to_pylist() if limit is not None else table.to_pylist()
    for number, row in enumerate(rows, 1):
        yield Record(f"row {number}", row)


# --- checks ----------------------------------------------------------------------------


def bad(source: str, record: Record, problem: str) -> RecordError:
    """A `RecordError` naming the record's file and location."""
    return RecordError(f"{source}: {record.where}: {problem}")


def is_text(value: Any) -> bool:
    """Non-empty text (not only whitespace)."""
    return isinstance(value, str) and bool(value.strip())


def _object(source: str, record: Record, expected: str) -> dict[str, Any]:
    if not isinstance(record.value, dict):
        kind = type(record.value).__name__ if record.value is not None else "null"
        raise bad(source, record, f"expected an object with {expected}, got a JSON {kind}")
    value: dict[str, Any] = record.value
    return value


def messages(source: str, record: Record, key: str, value: Any) -> list[dict[str, str]]:
    """A checked, non-empty ``{role, content}`` message list (the chat form of a field)."""
    if not isinstance(value, list) or not value:
        raise bad(source, record, f"{key!r} must be a non-empty message list")
    for i, msg in enumerate(value):
        if (
            not isinstance(msg, dict)
            or msg.get("role") not in ROLES
            or not is_text(msg.get("content"))
        ):
            raise bad(
                source,
                record,
                f"{key!r} message {i} needs a role in {ROLES} and non-empty text content",
            )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _value(source: str, record: Record, row: dict[str, Any], key: str) -> Any:
    """``row[key]`` checked as non-empty text or a message list (missing → error)."""
    if key not in row:
        raise bad(source, record, f"missing {key!r}")
    value = row[key]
    if isinstance(value, list):
        return messages(source, record, key, value)
    if is_text(value):
        return value
    shown = json.dumps(value)[:60]
    raise bad(source, record, f"{key!r} must be non-empty text or a message list, got {shown}")


def _as_messages(key: str, value: Any) -> Any:
    """A text value as one message (prompt → user, answers → assistant); lists and labels as is."""
    if isinstance(value, list) or key == "label":
        return value
    return [{"role": "user" if key == "prompt" else "assistant", "content": value}]


def _conversational(found: dict[str, Any]) -> dict[str, Any]:
    """Every value in chat form when any of them is a message list (TRL takes one form per row)."""
    if any(isinstance(v, list) for v in found.values()):
        return {k: _as_messages(k, v) for k, v in found.items()}
    return found


def _ends_with_assistant(source: str, record: Record, found: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if isinstance(found[key], list) and found[key][-1]["role"] != "assistant":
            raise bad(source, record, f"{key!r} must end with the assistant's message")


def _stored_prompt(row: dict[str, Any]) -> list[dict[str, str]] | None:
    """The message-list prompt a row of blut's own ``prompts`` or ``completions`` table
    stores in ``messages`` (its ``prompt`` is that list's JSON text), else None."""
    listed = row.get("messages")
    if isinstance(listed, list) and row.get("prompt") == json.dumps(listed, ensure_ascii=False):
        return listed
    return None


def sft_example(source: str, record: Record, chat: bool) -> dict[str, Any]:
    """One SFT example in TRL's shape: ``{messages}``, ``{prompt, completion}`` or ``{text}``.

    ``chat`` (format 'chat'): ``messages`` ending with the assistant's (every
    assistant turn is a target), or ``prompt`` + ``completion`` as text or
    message lists (the completion is the target; text is wrapped as a user /
    an assistant message). Text format: ``text`` (every token a target) or
    ``prompt`` + ``completion`` text (the completion is the target). A row of a
    generate job's completions whose prompt was a message list is that list +
    its completion.
    """
    if isinstance(record.value, dict) and (listed := _stored_prompt(record.value)) is not None:
        record = Record(
            record.where, {"prompt": listed, "completion": record.value.get("completion")}
        )
    if not chat:
        row = _object(source, record, "'text' (or 'prompt' and 'completion')")
        if is_text(row.get("text")):
            return {"text": row["text"]}
        if is_text(row.get("prompt")) and is_text(row.get("completion")):
            return {"prompt": row["prompt"], "completion": row["completion"]}
        if any(isinstance(row.get(k), list) for k in ("messages", "prompt", "completion")):
            raise bad(source, record, "message lists need format 'chat' (this is format 'text')")
        raise bad(source, record, "expected non-empty 'text' (or 'prompt' and 'completion')")
    row = _object(source, record, "'messages', or 'prompt' and 'completion'")
    if row.get("messages") is not None:  # null: a completions row whose prompt was text
        found = messages(source, record, "messages", row["messages"])
        if found[-1]["role"] != "assistant":
            raise bad(
                source, record, "the last message must be the assistant's (the training target)"
            )
        return {"messages": found}
    if "prompt" not in row or "completion" not in row:
        raise bad(source, record, "expected 'messages', or 'prompt' and 'completion'")
    example = {
        key: _as_messages(key, _value(source, record, row, key)) for key in ("prompt", "completion")
    }
    if example["completion"][0]["role"] != "assistant":
        raise bad(source, record, "'completion' must start with the assistant's message")
    return example


def _shared_prompt(source: str, record: Record, chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """TRL's ``extract_prompt``: the common start of chosen and rejected is the prompt."""
    if chosen == rejected:
        raise bad(source, record, "'chosen' and 'rejected' are identical")
    size = min(len(chosen), len(rejected))
    cut = next((i for i in range(size) if chosen[i] != rejected[i]), size)
    if cut == size:  # one is a prefix of the other: the shorter keeps its last element
        cut -= 1
    elif isinstance(chosen, str) and cut and chosen[cut - 1] == " ":
        cut -= 1  # the space before the answers stays with them
    prompt = chosen[:cut]
    if not prompt or (isinstance(prompt, str) and not prompt.strip()):
        raise bad(
            source,
            record,
            "no 'prompt', and 'chosen' and 'rejected' have no common start to take one from",
        )
    return prompt, chosen[cut:], rejected[cut:]


def _implicit(found: dict[str, Any]) -> bool:
    """Whether a row's prompt is inside chosen/rejected (TRL's ``maybe_extract_prompt``).

    So when there is no prompt, or a text prompt next to conversations that
    carry it (they open with a non-assistant message).
    """
    if "prompt" not in found:
        return True
    chosen, rejected = found["chosen"], found["rejected"]
    return (
        isinstance(found["prompt"], str)
        and isinstance(chosen, list)
        and isinstance(rejected, list)
        and chosen[0]["role"] != "assistant"
    )


def pair(source: str, record: Record) -> dict[str, Any]:
    """One preference pair: prompt, chosen, rejected as text or (chat form) message lists.

    Without ``prompt`` (or with a text prompt next to conversations that hold
    it) the prompt is implicit: the common start of chosen and rejected, as
    TRL's ``extract_prompt`` takes it. chosen and rejected in chat form must
    end with the assistant's message. A record mixing text and lists is made
    conversational: a text prompt becomes one user message, a text answer one
    assistant message.
    """
    row = _object(source, record, "prompt, chosen and rejected")
    keys = ("prompt", "chosen", "rejected") if "prompt" in row else ("chosen", "rejected")
    found = {key: _value(source, record, row, key) for key in keys}
    if _implicit(found):
        if isinstance(found["chosen"], list) != isinstance(found["rejected"], list):
            raise bad(source, record, "'chosen' and 'rejected' must be both text or both lists")
        prompt, chosen, rejected = _shared_prompt(
            source, record, found["chosen"], found["rejected"]
        )
        found = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    found = _conversational(found)
    _ends_with_assistant(source, record, found, "chosen", "rejected")
    if found["chosen"] == found["rejected"]:
        raise bad(source, record, "'chosen' and 'rejected' are identical")
    return found


def unpaired(source: str, record: Record) -> dict[str, Any]:
    """One unpaired example (TRL's KTO format): prompt, completion (text or messages), label."""
    row = _object(source, record, "prompt, completion and label")
    found = {key: _value(source, record, row, key) for key in ("prompt", "completion")}
    if "label" not in row:
        raise bad(source, record, "missing 'label'")
    if not isinstance(row["label"], bool):
        shown = json.dumps(row["label"])[:60]
        raise bad(source, record, f"'label' must be true or false, got {shown}")
    found = _conversational(found)
    _ends_with_assistant(source, record, found, "completion")
    return {**found, "label": row["label"]}


def is_unpaired(value: Any) -> bool:
    """Whether a raw record is an unpaired (prompt/completion/label) row rather than a pair."""
    return (
        isinstance(value, dict)
        and "chosen" not in value
        and ("label" in value or "completion" in value)
    )


@dataclass(frozen=True)
class Preferences:
    """The checked rows of a preference file: pairs, or unpaired rows (TRL's KTO format)."""

    rows: list[dict[str, Any]]
    unpaired: bool
    chat: bool


def preferences(source: str, found: list[Record]) -> Preferences:
    """Check every record; the first decides pairs or unpaired rows, and the file keeps to it.

    When any row is in chat form, every row is (a Parquet column has one type).
    """
    form = is_unpaired(found[0].value)
    rows: list[dict[str, Any]] = []
    for record in found:
        if isinstance(record.value, dict) and is_unpaired(record.value) != form:
            expected = (
                "an unpaired row (prompt, completion, label)"
                if form
                else "a pair (chosen, rejected)"
            )
            raise bad(source, record, f"expected {expected} like {found[0].where}")
        rows.append(unpaired(source, record) if form else pair(source, record))
    chat = any(isinstance(v, list) for row in rows for v in row.values())
    if chat:
        rows = [{k: _as_messages(k, v) for k, v in row.items()} for row in rows]
    return Preferences(rows, form, chat)


def prompt(source: str, record: Record, chat: bool = True) -> tuple[Any, str | None]:
    """A prompt (text, or a message list when ``chat``) and its answer (None if absent).

    A message list is a conversation to continue (a system prompt, earlier
    turns), rendered with the chat template's generation prompt. A non-text
    answer is kept as its JSON text. A row of blut's own prompts or completions
    table (``prompts.source=job:…``) keeps its message list (`_stored_prompt`).
    """
    row = _object(source, record, "'prompt' (and optionally 'answer')")
    value = _stored_prompt(row) or row.get("prompt")
    if isinstance(value, list):
        if not chat:
            raise bad(source, record, "'prompt' is a message list but prompts.chat is false")
        value = messages(source, record, "prompt", value)
    elif not is_text(value):
        raise bad(source, record, "'prompt' must be non-empty text or a message list")
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        answer = json.dumps(answer)
    return value, answer


def no_template(stage: str, what: str) -> str:
    """The one-line error for chat data on a model whose tokenizer has no chat template."""
    return (
        f"{stage}: {what} but the model's tokenizer has no chat template "
        "(use text data, or a model dir with a chat template)"
    )


UNPAIRED_LOSSES = ("kto", "apo_zero_unpaired")
"""The ``dpo.loss`` values that train on unpaired rows (TRL's KTOTrainer); the others need pairs."""


def needs_pairs(stage: str) -> str:
    """The one-line error for unpaired rows given to a stage that trains on pairs."""
    return (
        f"{stage}: unpaired rows (prompt, completion, label) train only with loss 'kto' "
        "or 'apo_zero_unpaired' (llm-kto); this stage needs pairs (chosen, rejected)"
    )


def has_chat_template(tokenizer_dir: Path) -> bool | None:
    """Whether a saved HF tokenizer dir carries a chat template (None: no tokenizer_config.json)."""
    if any((tokenizer_dir / name).is_file() for name in TEMPLATE_FILES):
        return True
    try:
        data = json.loads((tokenizer_dir / "tokenizer_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return isinstance(data, dict) and bool(data.get("chat_template"))
