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


def conversation(source: str, record: Record) -> list[dict[str, str]]:
    """A chat example: ``messages`` ending with the assistant's, or ``prompt`` + ``completion``."""
    row = _object(source, record, "'messages', or 'prompt' and 'completion'")
    if "messages" in row:
        found = messages(source, record, "messages", row["messages"])
        if found[-1]["role"] != "assistant":
            raise bad(
                source, record, "the last message must be the assistant's (the training target)"
            )
        return found
    if is_text(row.get("prompt")) and is_text(row.get("completion")):
        return [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
    raise bad(source, record, "expected 'messages', or 'prompt' and 'completion' text")


def plain(source: str, record: Record) -> str:
    """A text example: ``text``, or ``prompt`` + ``completion`` joined."""
    row = _object(source, record, "'text' (or 'prompt' and 'completion')")
    if is_text(row.get("text")):
        return str(row["text"])
    if is_text(row.get("prompt")) and is_text(row.get("completion")):
        return f"{row['prompt']}{row['completion']}"
    raise bad(source, record, "expected non-empty 'text' (or 'prompt' and 'completion')")


def _as_messages(key: str, value: Any) -> list[dict[str, str]]:
    if isinstance(value, list):
        return value
    return [{"role": "user" if key == "prompt" else "assistant", "content": value}]


def pair(source: str, record: Record) -> dict[str, Any]:
    """One preference pair: prompt, chosen, rejected as text or (chat form) message lists.

    chosen and rejected in chat form must end with the assistant's message. A
    record mixing text and lists is made conversational: a text prompt becomes
    one user message, a text answer one assistant message.
    """
    row = _object(source, record, "prompt, chosen and rejected")
    found: dict[str, Any] = {}
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise bad(source, record, f"missing {key!r}")
        value = row[key]
        if isinstance(value, list):
            found[key] = messages(source, record, key, value)
        elif is_text(value):
            found[key] = value
        else:
            shown = json.dumps(value)[:60]
            raise bad(
                source, record, f"{key!r} must be non-empty text or a message list, got {shown}"
            )
    if any(isinstance(v, list) for v in found.values()):
        found = {k: _as_messages(k, v) for k, v in found.items()}
        for key in ("chosen", "rejected"):
            if found[key][-1]["role"] != "assistant":
                raise bad(source, record, f"{key!r} must end with the assistant's message")
    if found["chosen"] == found["rejected"]:
        raise bad(source, record, "'chosen' and 'rejected' are identical")
    return found


def is_chat_pair(checked: dict[str, Any]) -> bool:
    """Whether a checked pair is in chat form (message lists)."""
    return isinstance(checked["chosen"], list)


def chat_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair in chat form (so a Parquet column has one type when a source mixes forms)."""
    return [{k: _as_messages(k, v) for k, v in p.items()} for p in pairs]


def prompt(source: str, record: Record) -> tuple[str, str | None]:
    """A prompt and its reference answer (text; other JSON values as JSON text; None if absent)."""
    row = _object(source, record, "'prompt' (and optionally 'answer')")
    if not is_text(row.get("prompt")):
        raise bad(source, record, "'prompt' must be non-empty text")
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        answer = json.dumps(answer)
    return str(row["prompt"]), answer


def no_template(stage: str, what: str) -> str:
    """The one-line error for chat data on a model whose tokenizer has no chat template."""
    return (
        f"{stage}: {what} but the model's tokenizer has no chat template "
        "(use text data, or a model dir with a chat template)"
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
