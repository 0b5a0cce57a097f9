"""`blut.status.records`: LLM data files read with real line numbers, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blut.status import records
from blut.status.records import RecordError

PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}


def _pairs(path: Path) -> list[dict[str, object]]:
    return [records.pair(str(path), r) for r in records.read(path)]


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_array_is_read_one_line_or_pretty(tmp_path: Path, indent: int | None) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([PAIR, {**PAIR, "chosen": "c"}], indent=indent))
    found = records.read(path)
    assert [r.value for r in found] == [PAIR, {**PAIR, "chosen": "c"}]
    assert [r.where for r in found] == (
        ["line 1", "line 1"] if indent is None else ["line 2", "line 7"]
    )
    assert len(_pairs(path)) == 2


def test_a_bad_array_element_is_named_by_its_file_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([PAIR, {"prompt": "p", "chosen": "a"}], indent=2))
    with pytest.raises(RecordError, match=r"^\S+pairs\.json: line 7: missing 'rejected'$"):
        _pairs(path)
    path.write_text('[\n  {"prompt": "p"},\n  {"prompt": \n]\n')
    with pytest.raises(RecordError, match=r"pairs\.json: line 4: not JSON \("):
        records.read(path)
    path.write_text("[1, 2] 3\n")
    with pytest.raises(RecordError, match=r"line 1: not JSON \(extra data after the array\)"):
        records.read(path)


@pytest.mark.parametrize(("line", "kind"), [('"just text"', "str"), ("[1, 2]", "list")])
def test_a_line_that_is_not_an_object_is_one_line(tmp_path: Path, line: str, kind: str) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"text": "ok"}) + "\n" + line + "\n")
    [first, second] = records.read(path)
    assert records.sft_example(str(path), first, chat=False) == {"text": "ok"}
    with pytest.raises(
        RecordError, match=rf"sft\.jsonl: line 2: expected an object .*JSON {kind}$"
    ):
        records.sft_example(str(path), second, chat=False)
    with pytest.raises(RecordError, match=r"line 2: expected an object"):
        records.sft_example(str(path), second, chat=True)
    with pytest.raises(RecordError, match=r"line 2: expected an object"):
        records.prompt(str(path), second)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(RecordError, match=r"prompts\.jsonl: line 3: not UTF-8 text$"):
        records.read(path)


def test_record_locations_are_file_lines_past_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(f"{json.dumps(PAIR)}\n\n{json.dumps(PAIR)}\n\n{json.dumps({'prompt': 'p'})}\n")
    with pytest.raises(RecordError, match=r"pairs\.jsonl: line 5: missing 'chosen'$"):
        _pairs(path)
    path.write_text(f"{json.dumps(PAIR)}\n\nnot json\n")
    with pytest.raises(RecordError, match=r"line 3: not JSON"):
        records.read(path)


def test_limit_reads_only_the_first_records(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a"}\n' * 3 + "broken\n")
    assert len(records.read(path, limit=3)) == 3
    with pytest.raises(RecordError, match="line 4: not JSON"):
        records.read(path)
    array = tmp_path / "prompts.json"
    array.write_text(json.dumps([{"prompt": "a"}] * 5))
    assert len(records.read(array, limit=2)) == 2


def test_parquet_rows_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "a"}, {"prompt": ""}]), path)
    first, second = records.read(path)
    assert records.prompt(str(path), first) == ("a", None)
    with pytest.raises(RecordError, match=r"prompts\.parquet: row 2: 'prompt' must be"):
        records.prompt(str(path), second)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(RecordError, match=r"empty\.jsonl: no records"):
        records.read(empty)
    (tmp_path / "empty.json").write_text("[ ]\n")
    with pytest.raises(RecordError, match="no records"):
        records.read(tmp_path / "empty.json")
    with pytest.raises(RecordError, match="no such data file"):
        records.read(tmp_path / "missing.jsonl")


def test_chat_template_is_read_from_the_tokenizer_files(tmp_path: Path) -> None:
    assert records.has_chat_template(tmp_path) is None  # cannot tell: no tokenizer config
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "x"}))
    assert records.has_chat_template(tmp_path) is False
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    assert records.has_chat_template(tmp_path)
    other = tmp_path / "jinja"
    other.mkdir()
    (other / "chat_template.jinja").write_text("{{ x }}")
    assert records.has_chat_template(other)
