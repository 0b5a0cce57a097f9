"""Malformed LLM data is refused by `blut recipe run` before submit: one line, exit 2, no job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut.jobs.datacheck import DataProblem, preflight
from blut.jobs.recipes import find
from tests.conftest import blut

PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}
CHAT_PAIR = {
    "prompt": [{"role": "user", "content": "hi"}],
    "chosen": [{"role": "assistant", "content": "hello"}],
    "rejected": [{"role": "assistant", "content": "go away"}],
}


def _refused(home: Path, recipe: str, *sets: str) -> str:
    result = blut("recipe", "run", recipe, *(a for s in sets for a in ("--set", s)))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blut: error: "), lines
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())
    return lines[0]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("one-line.json", json.dumps([PAIR, {"prompt": "p"}]), "line 1: missing 'chosen'"),
        ("pretty.json", json.dumps([PAIR, {"prompt": "p"}], indent=2), "line 7: missing 'chosen'"),
        ("blank.jsonl", f"{json.dumps(PAIR)}\n\n\n\n{json.dumps([1])}\n", "line 5: expected an"),
        ("string.jsonl", json.dumps("text") + "\n", "line 1: expected an object"),
    ],
)
def test_malformed_prefs_are_one_line_before_submit(
    blut_home: Path, tmp_path: Path, name: str, content: str, needle: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    line = _refused(blut_home, "llm-dpo", f"prefs.source={path}")
    assert f"{path}: {needle}" in line


def test_sft_rows_and_encoding_before_submit(blut_home: Path, tmp_path: Path) -> None:
    rows = tmp_path / "sft.jsonl"
    rows.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps(["a", "b"]) + "\n")
    line = _refused(blut_home, "llm-sft", f"tokenize.source={rows}", "tokenize.format=text")
    assert f"{rows}: line 2: expected an object" in line and "JSON list" in line
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    line = _refused(blut_home, "llm-sft", f"tokenize.source={latin}")
    assert line.endswith(f"{latin}: line 2: not UTF-8 text")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "q", "answer": "a"}\n{"question": "q"}\n')
    line = _refused(blut_home, "llm-grpo", f"prompts.source={prompts}")
    assert line.endswith(f"{prompts}: line 2: 'prompt' must be non-empty text or a message list")


def test_chat_pairs_on_a_model_without_a_chat_template(blut_home: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    pairs = tmp_path / "chat.jsonl"
    pairs.write_text(json.dumps(CHAT_PAIR) + "\n")
    line = _refused(blut_home, "llm-dpo", f"prefs.source={pairs}", f"model.path={model}")
    assert "prefs: chat preference pairs but the model's tokenizer has no chat template" in line
    text_pairs = tmp_path / "text.jsonl"
    text_pairs.write_text(json.dumps(PAIR) + "\n")
    recipe = find("llm-dpo")
    args = {"prefs": {"source": str(text_pairs)}, "model": {"path": str(model)}}
    preflight(recipe.build(args))  # text pairs need no template
    (model / "chat_template.jinja").write_text("{{ messages }}")
    preflight(recipe.build({**args, "prefs": {"source": str(pairs)}}))
    (model / "chat_template.jinja").unlink()
    with pytest.raises(DataProblem, match="no chat template"):
        preflight(recipe.build({**args, "prefs": {"source": str(pairs)}}))
    chosen = {**args["model"], "chat_template": "chatml"}  # model.chat_template supplies one
    preflight(recipe.build({"model": chosen, "prefs": {"source": str(pairs)}}))


UNPAIRED = [
    {"prompt": "2 + 3?", "completion": "5", "label": True},
    {"prompt": "2 + 3?", "completion": "6", "label": False},
]


def test_unpaired_rows_are_for_kto_only_before_submit(blut_home: Path, tmp_path: Path) -> None:
    rows = tmp_path / "kto.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in UNPAIRED))
    line = _refused(blut_home, "llm-dpo", f"prefs.source={rows}")
    assert line.endswith(
        f"{rows}: dpo: unpaired rows (prompt, completion, label) train only with loss 'kto' "
        "or 'apo_zero_unpaired' (llm-kto); this stage needs pairs (chosen, rejected)"
    )
    with pytest.raises(DataProblem, match="reward: unpaired rows"):
        preflight(find("llm-reward").build({"prefs": {"source": str(rows)}}))
    preflight(find("llm-kto").build({"prefs": {"source": str(rows)}}))
    apo = {"prefs": {"source": str(rows)}, "dpo": {"loss": "apo_zero_unpaired"}}
    preflight(find("llm-dpo").build(apo))  # KTOTrainer's other loss takes them too
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps(UNPAIRED[0]) + "\n" + json.dumps(PAIR) + "\n")
    with pytest.raises(DataProblem, match=r"mixed\.jsonl: line 2: expected an unpaired row"):
        preflight(find("llm-kto").build({"prefs": {"source": str(mixed)}}))


def test_new_formats_follow_the_same_rules_before_submit(blut_home: Path, tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps(
            {"prompt": [{"role": "user", "content": "hi"}], "completion": [CHAT_PAIR["chosen"][0]]}
        )
        + "\n"
    )
    sft = find("llm-sft")
    preflight(sft.build({"tokenize": {"source": str(chat)}}))
    with pytest.raises(DataProblem, match=r"chat\.jsonl: line 1: message lists need format 'chat'"):
        preflight(sft.build({"tokenize": {"source": str(chat), "format": "text"}}))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    prompts = tmp_path / "prompts.jsonl"
    listed = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n" + json.dumps({"prompt": listed}) + "\n")
    line = _refused(blut_home, "llm-grpo", f"prompts.source={prompts}", f"model.path={model}")
    assert "prompts: chat prompts (prompts.chat=true or message lists) but the model's" in line
    grpo = find("llm-grpo")
    args = {"prompts": {"source": str(prompts), "chat": False}, "model": {"path": str(model)}}
    with pytest.raises(DataProblem, match=r"line 2: 'prompt' is a message list but prompts\.chat"):
        preflight(grpo.build(args))
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    preflight(grpo.build(args))  # text prompts, chat off: no template needed


def test_an_error_found_in_the_stage_is_printed_once(blut_home: Path, tmp_path: Path) -> None:
    """A problem only the stage can see (it needs the tokenizer) is reported by one line."""
    pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")
    long = {"role": "user", "content": "word " * 50}
    source = tmp_path / "long.jsonl"
    source.write_text(
        json.dumps({"messages": [long, {"role": "assistant", "content": "ok"}]}) + "\n"
    )
    result = blut(
        "recipe",
        "run",
        "llm-sft",
        "--set",
        f"tokenize.source={source}",
        "--set",
        "tokenize.max_length=8",
        "--set",
        "model.threads=1",
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    message = f"{source}: line 1: no target tokens left within max_length 8"
    both = result.stdout + result.stderr
    assert both.count(message) == 1, both
    assert "blut.payload" not in both and "Traceback" not in both
    assert "stage tokenize exit: exited with code 2" in result.stderr


def test_a_dry_run_checks_the_data_too(blut_home: Path, tmp_path: Path) -> None:
    """`--dry-run` printed the plan of a malformed file (exit 0); now the same one line, exit 2."""
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIR) + "\n" + json.dumps({"prompt": "p"}) + "\n")
    for argv in (
        ("recipe", "run", "llm-dpo", "--set", f"prefs.source={path}", "--dry-run"),
        ("train", "--method", "dpo", "--dataset", str(path), "--dry-run"),
    ):
        result = blut(*argv)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"blut: error: {path}: line 2: missing 'chosen'"
        )
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(PAIR) + "\n")
    result = blut("recipe", "run", "llm-dpo", "--set", f"prefs.source={good}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())


def test_a_job_output_without_a_chat_template_is_refused_too(tmp_path: Path) -> None:
    """``model.path=job:…`` resolves to ``artifact:<hash>``: the check looked for a dir of
    that name, found none and let chat data on a template-less model through to the stage."""
    model = tmp_path / "model"  # a user dir without a chat template
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    objects = tmp_path / "objects"
    trained, named = objects / ("a" * 64), objects / ("b" * 64)
    trained.mkdir(parents=True)  # a trainer's lm output: the model dir itself
    for name in ("config.json", "tokenizer_config.json"):
        (trained / name).write_bytes((model / name).read_bytes())
    named.mkdir()  # a model stage's output that names a dir (ref.json)
    (named / "ref.json").write_text(json.dumps({"path": str(model)}))
    pairs = tmp_path / "chat.jsonl"
    pairs.write_text(json.dumps(CHAT_PAIR) + "\n")
    recipe = find("llm-dpo")
    for digest in ("a" * 64, "b" * 64):
        args = {"prefs": {"source": str(pairs)}, "model": {"path": f"artifact:{digest}"}}
        with pytest.raises(
            DataProblem, match=r"prefs: chat preference pairs but .* no chat template"
        ):
            preflight(recipe.build(args), objects)
    (trained / "chat_template.jinja").write_text("{{ messages }}")
    args = {"prefs": {"source": str(pairs)}, "model": {"path": f"artifact:{'a' * 64}"}}
    preflight(recipe.build(args), objects)
