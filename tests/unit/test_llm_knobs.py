"""TRL/peft knobs as stage args: each one reaches the TRL config, LoRA adapter dirs, generate n."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

import pyarrow.parquet as pq
import torch

from blut.jobs.errors import UsageError
from blut.jobs.outputs import Output, export
from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import InputError
from blut.payload.llm import common, generate, methods, model
from tests.unit.llm_support import run_program, stage_files, tiny_lm_and_data
from tests.unit.quant_support import env, run_stage, write_stage_files

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return tiny_lm_and_data(tmp_path_factory.mktemp("knobs"), tokenize=96, prompts=6)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[StageContext]:
    write_stage_files(tmp_path, "stage", {}, {})
    with StageContext.from_env("stage", env(tmp_path, "stage")) as context:
        yield context


def _config(stage: str, ctx: StageContext, given: dict[str, Any]) -> Any:
    opts = args.resolve(stage, given, [])
    build = {"sft": methods.sft_config, "dpo": methods.dpo_config, "grpo": methods.grpo_config}
    return build[stage](ctx, opts)


GRPO_KNOBS = {
    "loss_type": "dr_grpo",
    "epsilon": 0.3,
    "num_iterations": 2,
    "scale_rewards": "batch",
    "top_p": 0.9,
    "top_k": 20,
    "temperature": 0.7,
    "gradient_checkpointing": True,
}


@pytest.mark.parametrize(
    ("stage", "given", "fields"),
    [
        ("sft", {}, {"packing": False, "padding_free": False, "gradient_checkpointing": False}),
        ("sft", {"packing": True}, {"packing": True, "packing_strategy": "bfd", "max_length": 128}),
        (
            "sft",
            {"padding_free": True, "max_length": 64},
            {"padding_free": True, "max_length": None},
        ),
        ("sft", {"gradient_checkpointing": True}, {"gradient_checkpointing": True}),
        ("dpo", {}, {"loss_type": ["sigmoid"], "beta": 0.1, "label_smoothing": 0.0}),
        ("dpo", {"loss": "robust", "label_smoothing": 0.1}, {"loss_type": ["robust"]}),
        ("dpo", {"loss": "dpo", "label_smoothing": 0.2, "beta": 0.3}, {"label_smoothing": 0.2}),
        ("dpo", {"loss": "ipo", "beta": 0.3}, {"loss_type": ["ipo"], "beta": 0.3}),
        ("dpo", {"loss": "hinge"}, {"loss_type": ["hinge"]}),
        (
            "dpo",
            {"loss": "kto", "desirable_weight": 2.0, "undesirable_weight": 0.5},
            {"loss_type": "kto", "desirable_weight": 2.0, "undesirable_weight": 0.5},
        ),
        ("dpo", {"loss": "apo_zero_unpaired"}, {"loss_type": "apo_zero_unpaired"}),
        ("grpo", GRPO_KNOBS, {**GRPO_KNOBS, "remove_unused_columns": False}),
        ("grpo", {"scale_rewards": "none"}, {"scale_rewards": "none", "loss_type": "dapo"}),
    ],
)
def test_each_knob_reaches_the_trl_config(
    ctx: StageContext, stage: str, given: dict[str, Any], fields: dict[str, Any]
) -> None:
    config = _config(stage, ctx, given)
    assert {name: getattr(config, name) for name in fields} == fields


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.parametrize("stage", ["sft", "dpo", "grpo"])
def test_checkpointing_is_set_without_a_deprecation_warning(
    ctx: StageContext, stage: str, on: bool
) -> None:
    """transformers 5.24 warns when ``gradient_checkpointing`` is set (TRL's default):
    each stage's log showed that FutureWarning though the knob was off."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = _config(stage, ctx, {"gradient_checkpointing": on})
    assert config.gradient_checkpointing is on
    assert not [w for w in caught if "gradient_checkpointing" in str(w.message)]


def test_unpaired_losses_build_a_kto_config(ctx: StageContext) -> None:
    from trl import DPOConfig, KTOConfig

    assert isinstance(_config("dpo", ctx, {"loss": "kto"}), KTOConfig)
    assert isinstance(_config("dpo", ctx, {"loss": "nca_pair"}), DPOConfig)


def test_exo_pair_without_label_smoothing_is_one_line(ctx: StageContext) -> None:
    with pytest.raises(InputError, match=r"exo_pair needs label_smoothing > 0"):
        _config("dpo", ctx, {"loss": "exo_pair"})
    assert _config("dpo", ctx, {"loss": "exo_pair", "label_smoothing": 1e-3}).label_smoothing


def test_lora_knobs_reach_the_peft_config() -> None:
    default = common.peft_config(args.resolve("sft", {"lora": True}, []))
    assert default.target_modules == "all-linear" and default.lora_dropout == 0.0
    given = {"lora": True, "lora_dropout": 0.1, "lora_target_modules": ["q_proj", "v_proj"]}
    config = common.peft_config(args.resolve("sft", given, []))
    assert config.lora_dropout == 0.1 and set(config.target_modules) == {"q_proj", "v_proj"}


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"lora_save": "adapter"}, r"lora_save=adapter needs lora=true"),
        ({"lora": True, "lora_target_modules": ["all-linear", "q_proj"]}, r"stands alone"),
    ],
)
def test_lora_settings_that_cannot_work_are_refused(given: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        common.check_lora("sft", args.resolve("sft", given, []))


def test_attn_implementation_reaches_the_model(base: dict[str, Path]) -> None:
    assert common.load_causal_lm(base["lm"], "eager").config._attn_implementation == "eager"
    assert common.load_causal_lm(base["lm"], "sdpa").config._attn_implementation == "sdpa"
    if not common.has_gpu():
        with pytest.raises(InputError, match=r"flash_attention_2 needs a GPU"):
            common.load_causal_lm(base["lm"], "flash_attention_2")


def test_sft_packing_packs_the_examples(base: dict[str, Path]) -> None:
    """One epoch of 96 short examples: 12 steps of 8 unpacked, far fewer packed into 128 tokens."""
    job = base["root"] / "packed"
    given = {"epochs": 1, "batch_size": 8, "packing": True, "threads": 1, "save_every": 100}
    inputs = [("model", "lm", base["lm"]), ("tokenize", "tokens", base["tokens"])]
    out = run_program(job, "sft", "sft", given, inputs)
    summary = json.loads((out / "train.json").read_text())
    rows = pq.read_table(base["tokens"] / "tokens.parquet").num_rows
    assert 0 < summary["steps"] <= rows // 8 // 2
    assert summary["args"]["packing"] is True


def _logits(lm: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lm(ids).logits


def test_sft_lora_saves_merged_and_adapter_and_exports_the_adapter(
    base: dict[str, Path], tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job = base["root"] / "both"
    given = {
        "max_steps": 2,
        "batch_size": 4,
        "threads": 1,
        "lora": True,
        "lora_save": "both",
        "lora_target_modules": ["q_proj", "v_proj"],
        "lora_dropout": 0.05,
    }
    inputs = [("model", "lm", base["lm"]), ("tokenize", "tokens", base["tokens"])]
    out = run_program(job, "sft", "sft", given, inputs)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    output = Output("j", "sft", "lm", "0" * 64, out, True)
    dest = export(output, tmp_path / "adapter", adapter=True)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {
        p.name for p in dest.iterdir()
    }
    adapter_config = json.loads((dest / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"q_proj", "v_proj"}
    assert adapter_config["lora_dropout"] == 0.05
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    merged = _logits(AutoModelForCausalLM.from_pretrained(str(out)), ids)
    on_base = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base["lm"])), dest)
    assert torch.allclose(_logits(on_base, ids), merged, atol=1e-5)
    assert not torch.allclose(_logits(common.load_causal_lm(base["lm"]), ids), merged, atol=1e-5)
    with pytest.raises(UsageError, match=r"saved no LoRA adapter"):
        export(Output("j", "model", "lm", "0" * 64, base["lm"], True), tmp_path / "none", True)


def test_an_adapter_only_output_loads_on_its_base(base: dict[str, Path], tmp_path: Path) -> None:
    """``lora_save=adapter``: a peft dir, no model weights; peft, transformers and the next
    stage's loader all load it on the base model it names."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    trained = get_peft_model(common.load_causal_lm(base["lm"]), config)
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    want = _logits(trained, ids)
    write_stage_files(tmp_path, "sft", {}, {})
    with StageContext.from_env("sft", env(tmp_path, "sft")) as stage:
        common.publish(stage, trained, common.load_tokenizer(base["lm"]), {"steps": 0}, "adapter")
        staged = stage.staging
    names = {p.name for p in staged.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "train.json"} <= names
    assert not {"config.json", "model.safetensors"} & names
    dest = export(Output("j", "sft", "lm", "0" * 64, staged, True), tmp_path / "out")
    on_base = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base["lm"])), dest)
    assert torch.allclose(_logits(on_base, ids), want, atol=1e-5)
    assert torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(str(dest)), ids), want)
    assert torch.allclose(_logits(common.load_causal_lm(dest), ids), want, atol=1e-5)


def test_model_chat_template_choice(base: dict[str, Path], tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}]
    ref = run_stage(
        tmp_path / "a", "tiny-model", {"path": str(base["lm"]), "chat_template": "chatml"}
    )
    tok = common.load_tokenizer(common.lm_path(ref))
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    ref = run_stage(
        tmp_path / "b", "tiny-model", {"path": str(base["lm"]), "chat_template": str(jinja)}
    )
    tok = common.load_tokenizer(common.lm_path(ref))
    assert tok.apply_chat_template(messages, tokenize=False) == "[user] hi\n"
    with pytest.raises(InputError, match=r"no such template file"):
        model.chat_template(str(tmp_path / "missing.jinja"))


def test_generate_n_samples_per_prompt_resume_exactly_once(base: dict[str, Path]) -> None:
    job = base["root"] / "gen-n"
    given = {"max_new_tokens": 3, "part_size": 4, "batch_size": 4, "threads": 1}
    given |= {"n": 3, "temperature": 1.0}
    inputs = [("model", "lm", base["lm"]), ("prompts", "prompts", base["prompts"])]
    stage_dir = stage_files(job, "generate", given, inputs)
    killed = subprocess.run(
        [sys.executable, "-m", "blut.payload", "generate"],
        env={**os.environ, **env(job, "generate"), generate.KILL_ENV: "2"},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    out = run_program(job, "generate", "generate", given, inputs)
    prompts = pq.read_table(base["prompts"] / "prompts.parquet").to_pylist()
    result = pq.read_table(out / "completions.parquet").to_pylist()
    assert [(r["prompt"], r["sample"]) for r in result] == [
        (p["prompt"], k) for p in prompts for k in range(3)
    ]
    unique = len({p["prompt"] for p in prompts})  # equal prompts are the same samples
    assert len({r["id"] for r in result}) == 3 * unique
    ledger = generate.Ledger(stage_dir / "work")
    assert set(ledger.done_records) == {r["id"] for r in result}
    assert set(ledger.done_records.values()) == {1}  # every sample generated exactly once
    summary = json.loads((out / "generate.json").read_text())
    assert summary["generated_this_attempt"] == 3 * unique - 8
    for prompt in prompts:  # sampled with its own seed, so samples of a prompt mostly differ
        assert len({r["id"] for r in result if r["prompt"] == prompt["prompt"]}) == 3
