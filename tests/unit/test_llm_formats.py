"""TRL's data formats through the LLM stages, masked as TRL masks them (tiny model, in-process).

The labels are what the ``sft`` stage's SFTTrainer builds from the
``tokenize`` output (input_ids where ``completion_mask`` is 1, else -100),
compared with the labels TRL's own SFTTrainer builds from the raw rows:
prompt/completion (text and conversational) trains the completion only, and
a multi-turn chat trains every assistant turn (TRL's ``assistant_only_loss``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from blut.payload.errors import DataError
from blut.payload.llm import common, generate, model
from blut.status.metrics import read_metrics_pandas
from tests.unit.llm_support import FAST, run_program
from tests.unit.quant_support import run_stage

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SYSTEM = {"role": "system", "content": "Be brief."}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


TEXT_PC = [
    {"prompt": "Q: What is 2 + 3?\nA:", "completion": " 5"},
    {"prompt": "Q: Reverse the word cat.\nA:", "completion": " tac"},
]
CHAT_PC = [
    {"prompt": [SYSTEM, _user("What is 2 + 3?")], "completion": [_assistant("5")]},
    {"prompt": [_user("Reverse cat.")], "completion": [_assistant("tac")]},
]
MULTI_TURN = [
    {
        "messages": [
            SYSTEM,
            _user("What is 2 + 3?"),
            _assistant("5"),
            _user("And 4 + 4?"),
            _assistant("8"),
        ]
    },
    {"messages": [_user("Shout cat."), _assistant("CAT"), _user("Again."), _assistant("CAT!")]},
]
GENERATION_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|assistant|>' }}"
    "{% generation %}{{ message['content'] + '<|eos|>' }}{% endgeneration %}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|eos|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
"""The tiny model's chat template with TRL's assistant markers (it renders the same text)."""


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return run_stage(tmp_path_factory.mktemp("formats"), "tiny-model", {"threads": 1})


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft_labels(lm: Path, rows: list[dict[str, Any]], tok: Any = None, **config: Any) -> list[Any]:
    """The labels TRL's SFTTrainer trains on for ``rows`` (raw, or blut's tokens)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(lm.parent / "trl-out"), use_cpu=True, report_to="none", **config
    )
    trainer = SFTTrainer(
        model=common.load_causal_lm(lm),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok or common.load_tokenizer(lm),
    )
    return list(trainer.train_dataset["labels"])


def _tokenized(lm: Path, tmp_path: Path, rows: list[Any], fmt: str) -> list[Any]:
    """Run ``tokenize`` on ``rows``; the labels the sft stage's trainer builds from its output."""
    source = _jsonl(tmp_path / "sft.jsonl", rows)
    out = run_stage(
        tmp_path / "job", "tokenize", {"source": str(source), "format": fmt}, {"lm": lm}
    )
    tokens = pq.read_table(out / "tokens.parquet").to_pylist()
    return _sft_labels(lm, tokens, completion_only_loss=True)


@pytest.mark.parametrize(("rows", "fmt"), [(TEXT_PC, "text"), (CHAT_PC, "chat")])
def test_prompt_completion_trains_the_completion_only_as_trl_does(
    lm: Path, tmp_path: Path, rows: list[Any], fmt: str
) -> None:
    ours = _tokenized(lm, tmp_path, rows, fmt)
    assert ours == _sft_labels(lm, rows)  # TRL's default for prompt/completion: completion only
    tok = common.load_tokenizer(lm)
    for labels, row in zip(ours, rows, strict=True):
        assert labels[0] == -100  # the prompt is context
        target = tok.decode([t for t in labels if t != -100])
        answer = row["completion"] if fmt == "text" else row["completion"][0]["content"]
        assert target.strip() == f"{answer.strip()}<|eos|>"


def test_multi_turn_chat_trains_every_assistant_turn(lm: Path, tmp_path: Path) -> None:
    ours = _tokenized(lm, tmp_path, MULTI_TURN, "chat")
    marked = common.load_tokenizer(lm)
    assert marked.chat_template == model.CHAT_TEMPLATE
    marked.chat_template = GENERATION_TEMPLATE
    assert ours == _sft_labels(lm, MULTI_TURN, tok=marked, assistant_only_loss=True)
    tok = common.load_tokenizer(lm)
    runs = [tok.decode(run) for run in _target_runs(ours[0])]
    assert runs == ["5<|eos|>", "8<|eos|>"]  # both answers, not only the last


def _target_runs(labels: list[int]) -> list[list[int]]:
    """The unmasked stretches of a label row."""
    runs: list[list[int]] = []
    for i, token in enumerate(labels):
        if token == -100:
            continue
        if i == 0 or labels[i - 1] == -100:
            runs.append([])
        runs[-1].append(token)
    return runs


def test_sft_trains_on_the_new_chat_formats(lm: Path, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "mixed.jsonl", [*CHAT_PC, *MULTI_TURN])
    tokens = run_stage(tmp_path / "data", "tokenize", {"source": str(source)}, {"lm": lm})
    job = tmp_path / "sft"
    inputs = [("model", "lm", lm), ("tokenize", "tokens", tokens)]
    run_program(job, "sft", "sft", {**FAST, "max_steps": 2, "batch_size": 2}, inputs)
    losses = list(read_metrics_pandas(job / "stages" / "sft" / "metrics")["loss"])
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_implicit_prompt_pairs_are_split_as_trl_splits_them(tmp_path: Path) -> None:
    from trl import extract_prompt

    rows = [
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
        {
            "chosen": [SYSTEM, _user("2 + 3?"), _assistant("5")],
            "rejected": [SYSTEM, _user("2 + 3?"), _assistant("6")],
        },
    ]
    out = run_stage(tmp_path / "job", "prefs", {"source": str(_jsonl(tmp_path / "p.jsonl", rows))})
    stored = pq.read_table(out / "prefs.parquet").to_pylist()
    wrapped = {"role": "user", "content": "The sky is"}  # one file, one form: text is wrapped
    assert stored[0] == {
        "prompt": [wrapped],
        "chosen": [_assistant(" blue.")],
        "rejected": [_assistant(" green.")],
    }
    assert extract_prompt(rows[0])["prompt"] == "The sky is"
    assert stored[1] == extract_prompt(rows[1])
    assert json.loads((out / "prefs.json").read_text())["unpaired"] is False


UNPAIRED = [
    {"prompt": "What is 2 + 3?", "completion": "5", "label": True},
    {"prompt": "What is 2 + 3?", "completion": "7", "label": False},
    {"prompt": [_user("Shout cat.")], "completion": [_assistant("CAT")], "label": True},
    {"prompt": [_user("Shout cat.")], "completion": [_assistant("cat")], "label": False},
]


def test_unpaired_rows_train_kto_and_are_refused_by_dpo(lm: Path, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "kto.jsonl", UNPAIRED)
    out = run_stage(tmp_path / "data", "prefs", {"source": str(source)})
    manifest = json.loads((out / "prefs.json").read_text())
    assert manifest["unpaired"] is True and manifest["chat"] is True
    assert [r["label"] for r in pq.read_table(out / "prefs.parquet").to_pylist()] == [
        True,
        False,
        True,
        False,
    ]
    inputs = [("model", "lm", lm), ("prefs", "preferences", out)]
    args = {**FAST, "max_steps": 2, "batch_size": 2}
    with pytest.raises(DataError, match=r"^dpo: unpaired rows .* only with loss 'kto'"):
        run_program(tmp_path / "dpo", "dpo", "dpo", args, inputs)
    job = tmp_path / "kto"
    run_program(job, "dpo", "dpo", {**args, "loss": "kto"}, inputs)
    frame = read_metrics_pandas(job / "stages" / "dpo" / "metrics")
    assert len(frame) == 2 and all(math.isfinite(v) for v in frame["loss"])


PROMPTS = [
    {"prompt": [SYSTEM, _user("What is 2 + 3?")], "answer": "5"},
    {"prompt": "Shout cat.", "answer": "CAT"},
]


def test_message_list_prompts_reach_generate_with_their_system_prompt(
    lm: Path, tmp_path: Path
) -> None:
    source = _jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    prompts = run_stage(tmp_path / "data", "prompts", {"source": str(source)})
    rows = pq.read_table(prompts / "prompts.parquet").to_pylist()
    assert rows[0]["messages"] == PROMPTS[0]["prompt"] and rows[1]["messages"] is None
    tok = common.load_tokenizer(lm)
    assert generate.render(tok, rows[0], True) == (
        "<|system|>Be brief.<|eos|><|user|>What is 2 + 3?<|eos|><|assistant|>"
    )
    assert generate.render(tok, rows[1], True) == "<|user|>Shout cat.<|eos|><|assistant|>"
    args = {"max_new_tokens": 2, "threads": 1}
    inputs = [("model", "lm", lm), ("prompts", "prompts", prompts)]
    out = run_program(tmp_path / "gen", "generate", "generate", args, inputs)
    done = pq.read_table(out / "completions.parquet").to_pylist()
    assert [json.loads(done[0]["prompt"]), done[1]["prompt"]] == [
        PROMPTS[0]["prompt"],
        "Shout cat.",
    ]
    # chained by job: (prompts.source, tokenize.source): the list, not its JSON text as a user turn
    table = tmp_path / "completions.parquet"  # as generated, with answers to train on
    generated = pq.read_table(out / "completions.parquet")
    answers = pa.array(["5"] * len(done), pa.string())
    pq.write_table(generated.set_column(5, "completion", answers), table)
    again = run_stage(tmp_path / "again", "prompts", {"source": str(table)})
    assert (
        pq.read_table(again / "prompts.parquet").to_pylist()[0]["messages"] == PROMPTS[0]["prompt"]
    )
    tokens = run_stage(tmp_path / "sft-data", "tokenize", {"source": str(table)}, {"lm": lm})
    first = pq.read_table(tokens / "tokens.parquet").to_pylist()[0]["input_ids"]
    assert tok.decode(first).startswith("<|system|>Be brief.<|eos|><|user|>What is 2 + 3?<|eos|>")


SEEN: dict[str, Any] = {}


def prompt_probe(completions: list[Any], **kw: Any) -> list[float]:
    """Records the prompts GRPO hands its rewards."""
    SEEN.update(kw)
    return [0.0] * len(completions)


def test_grpo_prompts_keep_their_system_prompt(lm: Path, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    prompts = run_stage(tmp_path / "data", "prompts", {"source": str(source)})
    args = {
        **FAST,
        "max_steps": 1,
        "num_generations": 2,
        "max_completion_length": 2,
        "rewards": ["tests.unit.test_llm_formats:prompt_probe"],
    }
    inputs = [("model", "lm", lm), ("prompts", "prompts", prompts)]
    run_program(tmp_path / "grpo", "grpo", "grpo", args, inputs)
    seen = SEEN["prompts"]
    assert [SYSTEM, _user("What is 2 + 3?")] in seen and [_user("Shout cat.")] in seen


def test_a_template_that_rewrites_earlier_turns_is_refused(lm: Path) -> None:
    """Some templates drop earlier turns' content (reasoning): those turns cannot be masked."""
    from blut.payload.llm import data

    tok = common.load_tokenizer(lm)
    tok.chat_template = (
        "{% for message in messages %}"
        "{% if message['role'] == 'assistant' and not loop.last %}{{ '<|assistant|><|eos|>' }}"
        "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|eos|>' }}{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )
    with pytest.raises(data.Unmaskable, match="renders message 2 differently"):
        data.encode_messages(tok, MULTI_TURN[0]["messages"], 128)
    ids, mask = data.encode_messages(tok, MULTI_TURN[0]["messages"][:3], 128)
    assert tok.decode([t for t, m in zip(ids, mask, strict=True) if m]) == "5<|eos|>"
