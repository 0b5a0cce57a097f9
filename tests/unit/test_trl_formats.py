"""TRL's dataset formats in `blut.status.records`: one set of rules for preflight and stages.

SFT examples come out in TRL's shape (``messages``, ``prompt`` + ``completion``,
``text``); preference files are pairs (explicit or implicit prompt) or
unpaired KTO rows; prompts may be message lists. Tokenization and masking
are tested in `test_llm_formats.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from blut.status import records
from blut.status.records import Record, RecordError

SYSTEM = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "What is 2 + 3?"}
FIVE = {"role": "assistant", "content": "5"}
SIX = {"role": "assistant", "content": "6"}
PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}


def _one(value: Any) -> Record:
    return Record("line 3", value)


def test_conversational_prompt_completion_is_kept_as_trl_takes_it() -> None:
    row = {"prompt": [SYSTEM, USER], "completion": [FIVE]}
    assert records.sft_example("f.jsonl", _one(row), chat=True) == row
    text = {"prompt": "What is 2 + 3?", "completion": "5"}
    assert records.sft_example("f.jsonl", _one(text), chat=True) == {
        "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
        "completion": [FIVE],
    }
    assert records.sft_example("f.jsonl", _one(text), chat=False) == text
    assert records.sft_example("f.jsonl", _one({"text": "hi"}), chat=False) == {"text": "hi"}
    multi = {"messages": [SYSTEM, USER, FIVE, USER, SIX]}
    assert records.sft_example("f.jsonl", _one(multi), chat=True) == multi


@pytest.mark.parametrize(
    ("row", "chat", "needle"),
    [
        ({"prompt": [USER], "completion": [USER]}, True, "'completion' must start with the assist"),
        ({"prompt": [USER]}, True, "expected 'messages', or 'prompt' and 'completion'"),
        ({"prompt": [USER], "completion": 5}, True, "'completion' must be non-empty text or a mes"),
        ({"prompt": [USER], "completion": [FIVE]}, False, "message lists need format 'chat'"),
        ({"messages": [USER, FIVE, USER]}, True, "the last message must be the assistant's"),
    ],
)
def test_bad_sft_rows_are_one_line(row: dict[str, Any], chat: bool, needle: str) -> None:
    with pytest.raises(RecordError, match=r"^f\.jsonl: line 3: ") as info:
        records.sft_example("f.jsonl", _one(row), chat)
    assert needle in str(info.value)


def test_an_implicit_prompt_is_the_shared_start() -> None:
    text = {"chosen": "The sky is blue.", "rejected": "The sky is green."}
    assert records.pair("f", _one(text)) == {
        "prompt": "The sky is",
        "chosen": " blue.",
        "rejected": " green.",
    }
    chat = {"chosen": [SYSTEM, USER, FIVE], "rejected": [SYSTEM, USER, SIX]}
    assert records.pair("f", _one(chat)) == {
        "prompt": [SYSTEM, USER],
        "chosen": [FIVE],
        "rejected": [SIX],
    }
    # a text prompt next to conversations that carry it is TRL's implicit case too
    assert records.pair("f", _one({"prompt": "What is 2 + 3?", **chat}))["prompt"] == [
        SYSTEM,
        USER,
    ]


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"chosen": "Yes", "rejected": "No"}, "no common start"),
        ({"chosen": [FIVE], "rejected": [SIX]}, "no common start"),
        ({"chosen": [USER, FIVE], "rejected": "6"}, "both text or both lists"),
        ({"chosen": "same", "rejected": "same"}, "are identical"),
        ({"chosen": [USER, FIVE], "rejected": [USER, SIX, USER]}, "'rejected' must end with"),
    ],
)
def test_bad_implicit_pairs_are_one_line(row: dict[str, Any], needle: str) -> None:
    with pytest.raises(RecordError, match=r"^f: line 3: ") as info:
        records.pair("f", _one(row))
    assert needle in str(info.value)


def test_unpaired_kto_rows_and_a_file_keeps_one_form() -> None:
    rows = [
        {"prompt": "2 + 3?", "completion": "5", "label": True},
        {"prompt": [USER], "completion": [SIX], "label": False},
    ]
    found = records.preferences("k.jsonl", [Record(f"line {i}", r) for i, r in enumerate(rows, 1)])
    assert found.unpaired and found.chat
    assert found.rows == [
        {"prompt": [{"role": "user", "content": "2 + 3?"}], "completion": [FIVE], "label": True},
        {"prompt": [USER], "completion": [SIX], "label": False},
    ]
    pairs = [Record("line 1", PAIR)]
    assert not records.preferences("k.jsonl", pairs).unpaired
    with pytest.raises(RecordError, match=r"k\.jsonl: line 2: expected a pair .* like line 1"):
        records.preferences("k.jsonl", [*pairs, Record("line 2", rows[0])])
    with pytest.raises(RecordError, match=r"line 2: expected an unpaired row .* like line 1"):
        records.preferences("k.jsonl", [Record("line 1", rows[0]), Record("line 2", PAIR)])


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"prompt": "p", "completion": "c"}, "missing 'label'"),
        ({"prompt": "p", "completion": "c", "label": 1}, "'label' must be true or false, got 1"),
        ({"completion": "c", "label": True}, "missing 'prompt'"),
        ({"prompt": [USER], "completion": [USER], "label": True}, "'completion' must end with"),
    ],
)
def test_bad_unpaired_rows_are_one_line(row: dict[str, Any], needle: str) -> None:
    with pytest.raises(RecordError, match=r"^k: line 3: ") as info:
        records.preferences("k", [_one(row)])
    assert needle in str(info.value)


def test_prompts_may_be_message_lists_with_a_system_prompt() -> None:
    listed = {"prompt": [SYSTEM, USER], "answer": 5}
    assert records.prompt("p", _one(listed)) == ([SYSTEM, USER], "5")
    assert records.prompt("p", _one({"prompt": "hi"}), chat=False) == ("hi", None)
    with pytest.raises(RecordError, match=r"line 3: 'prompt' is a message list but prompts\.chat"):
        records.prompt("p", _one(listed), chat=False)
    with pytest.raises(RecordError, match=r"line 3: 'prompt' message 0 needs a role"):
        records.prompt("p", _one({"prompt": [{"role": "bot", "content": "x"}]}))


def test_a_prompts_table_row_keeps_its_message_list() -> None:
    """A prompts stage's own table (``prompts.source=job:…``) stores a message list
    in ``messages`` and its JSON text in ``prompt``: the list is the prompt, not
    the text (read as one user message holding JSON, it lost the system prompt)."""
    import json

    stored = {"index": 0, "prompt": json.dumps([SYSTEM, USER]), "answer": "5"}
    assert records.prompt("p", _one({**stored, "messages": [SYSTEM, USER]})) == (
        [SYSTEM, USER],
        "5",
    )
    assert records.prompt("p", _one({**stored, "messages": None})) == (stored["prompt"], "5")
    other = {"prompt": "hi", "messages": [SYSTEM, USER]}  # not a prompts table: prompt wins
    assert records.prompt("p", _one(other)) == ("hi", None)


def test_a_completions_row_with_a_listed_prompt_is_that_conversation() -> None:
    """``tokenize.source=job:GEN``: a completions row stores a message-list prompt in
    ``messages``; it trained as one user message holding the list's JSON text."""
    import json

    row = {"prompt": json.dumps([SYSTEM, USER]), "messages": [SYSTEM, USER], "completion": "5"}
    assert records.sft_example("c", _one(row), chat=True) == {
        "prompt": [SYSTEM, USER],
        "completion": [FIVE],
    }
    with pytest.raises(RecordError, match="message lists need format 'chat'"):
        records.sft_example("c", _one(row), chat=False)
    text = {"prompt": "What is 2 + 3?", "messages": None, "completion": "5"}
    assert records.sft_example("c", _one(text), chat=False) == {
        "prompt": "What is 2 + 3?",
        "completion": "5",
    }
    assert records.sft_example("c", _one(text), chat=True) == {
        "prompt": [USER],
        "completion": [FIVE],
    }
