"""`blut auto DATA --dry-run` on real small files of each kind: the recipe and the exact
command it would submit; data no recipe fits is one line, exit 2, nothing submitted."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blut.jobs.autodetect import override_value
from blut.jobs.recipes import find
from blut.payload.data import packaged
from tests.conftest import blut

CHAT = {"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]}


def jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prices(path: Path, ticker: str = "IBM", rows: int = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged.load_stocks([ticker]).head(rows).drop(columns=["ticker"]).to_csv(path, index=False)
    return path


def dry_run(data: Path) -> tuple[str, str]:
    result = blut("auto", str(data), "--dry-run")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


def test_each_kind_of_data_gets_its_recipe_and_exact_command(
    tmp_path: Path, blut_home: Path
) -> None:
    cases = {
        prices(tmp_path / "prices.csv"): ("quant-train", "encode.dataset"),
        jsonl(tmp_path / "chat.jsonl", CHAT, CHAT): ("llm-sft", "tokenize.source"),
        jsonl(tmp_path / "pc.jsonl", {"prompt": "2+2", "completion": "4"}): (
            "llm-sft",
            "tokenize.source",
        ),
        jsonl(tmp_path / "pairs.jsonl", {"prompt": "p", "chosen": "a", "rejected": "b"}): (
            "llm-dpo",
            "prefs.source",
        ),
        jsonl(tmp_path / "implicit.jsonl", {"chosen": "Q? a", "rejected": "Q? b"}): (
            "llm-dpo",
            "prefs.source",
        ),
        jsonl(tmp_path / "kto.jsonl", {"prompt": "p", "completion": "c", "label": True}): (
            "llm-kto",
            "prefs.source",
        ),
        jsonl(tmp_path / "prompts.jsonl", {"prompt": "2+2"}, {"prompt": "3", "answer": "3"}): (
            "llm-generate",
            "prompts.source",
        ),
    }
    for path, (recipe, key) in cases.items():
        command, said = dry_run(path)
        assert command == f"blut recipe run {recipe} --set {key}={path}", command
        assert f"→ {recipe}" in said
        # the printed command is what `recipe run` takes: it resolves to this very path
        argv = shlex.split(command)
        [args] = find(argv[3]).resolve(sets=argv[5::2])
        section, name = key.split(".")
        assert args[section][name] == str(path)
    text = jsonl(tmp_path / "text.jsonl", {"text": "hello"})
    command, _ = dry_run(text)
    assert command.endswith(f"tokenize.source={text} --set tokenize.format=text")
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())


def test_a_folder_of_ohlcv_and_parquet_files(tmp_path: Path, blut_home: Path) -> None:
    folder = tmp_path / "market"
    prices(folder / "IBM.csv")
    prices(folder / "AAPL.csv", "AAPL")
    command, said = dry_run(folder)
    assert command == f"blut recipe run quant-train --set encode.dataset={folder}"
    assert "OHLCV in 2 file(s)" in said
    table = pa.table({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["z", "w"]})
    pq.write_table(table, tmp_path / "pairs.parquet")
    command, _ = dry_run(tmp_path / "pairs.parquet")
    assert command.startswith("blut recipe run llm-dpo --set prefs.source=")


def test_odd_paths_are_quoted_for_both_the_shell_and_the_override(tmp_path: Path) -> None:
    for name in ("a b,c.jsonl", "it's.jsonl", "back\\slash.jsonl"):
        path = jsonl(tmp_path / name, CHAT)
        [args] = find("llm-sft").resolve(sets=[f"tokenize.source={override_value(path)}"])
        assert args["tokenize"]["source"] == str(path)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("odd.jsonl", '{"question": "p"}\n', "no recipe fits records with keys question"),
        ("broken.jsonl", "{not json\n", "line 1 is not JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1 is not a JSON object"),
        ("empty.jsonl", "\n", "no records"),
        ("notes.csv", "when,what\n1,2\n", "not OHLCV: missing column(s) date, open"),
        ("model.bin", "xx", "not a data file blut knows"),
    ],
)
def test_data_no_recipe_fits_is_one_line(
    tmp_path: Path, blut_home: Path, name: str, content: str, says: str
) -> None:
    (tmp_path / name).write_text(content)
    result = blut("auto", str(tmp_path / name))  # without --dry-run: nothing is submitted either
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())


def test_missing_and_empty_folders(tmp_path: Path, blut_home: Path) -> None:
    for target, says in [(tmp_path / "nope", "no such file or folder"), (tmp_path, "has none")]:
        result = blut("auto", str(target), "--dry-run")
        assert result.returncode == 2 and says in result.stderr, result
