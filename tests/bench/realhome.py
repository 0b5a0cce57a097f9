"""A realistic BLUT_HOME for the benches: real job folders, replicated to 1,000 jobs and ~1M lines.

    python tests/bench/realhome.py DEST [--jobs 1000] [--lines 1000000] [--seed-home DIR]

1. Seed: in a temporary BLUT_HOME, run real jobs with the CLI of this tree
   (quant-train, smoke, sweeps of both, an out-of-memory stage and an
   out-of-memory `blut run`, a failed `blut run`, a cancelled training, a
   fully cached re-run) and wait for each to end. ``--seed-home`` reuses
   the seed of an earlier build (it keeps ``seed.json``).
2. Replicate: copy those job folders into DEST under new ids spread over the
   past weeks (sorted order = time order), with ids, sweep ids, paths and
   every timestamp rewritten consistently; training stages get more epochs
   by repeating their real last epoch (metric, progress, resources,
   checkpoint and log events, with shifted ts/step/epoch), so the event mix
   and the per-epoch cadence stay the measured ones. The mix of job kinds is
   :data:`MIX`; epochs are spread so the streams total about ``--lines``.
3. If ``blut.status.summary.rebuild_summary`` exists, it is run on every job.

DEST/realhome.json records the summary and every job's final state; the
benches print the summary so their output says which world they measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clirun import blut, job_ended, user_manager_env, wait_ended


def quant(epochs: int = 4, *sets: str) -> list[str]:
    """`recipe run quant-train` args: epochs of ~200 steps (a metric every 10, the default)."""
    args = ["recipe", "run", "quant-train", "--set", f"train.epochs={epochs}"]
    for value in ("train.batch_size=32", "train.patience=0", "train.threads=1", *sets):
        args += ["--set", value]
    return args


SCRIPT = "import time\nfor i in range(6):\n    print(f'step {i}: loss {1 / (i + 1):.3f}', flush=True)\n    time.sleep(0.4)\n"
HOG = "import time\nx = []\nwhile True:\n    x.append(bytearray(8 << 20))\n    time.sleep(0.02)\n"
MIX = {
    "train": 0.40,
    "train-sweep": 0.20,
    "cached": 0.08,
    "smoke": 0.05,
    "smoke-sweep": 0.04,
    "script": 0.07,
    "exit": 0.05,
    "oom-run": 0.02,
    "oom-train": 0.04,
    "cancel": 0.05,
}
"""Share of jobs of each seed kind (a sweep's share counts its members)."""
SPAN_DAYS = 28
PREFIX = '{"v":1,"ts":'
EPOCH = re.compile(r"\bepoch (\d+)/(\d+)")
CHECKPOINT = re.compile(r"epoch-(\d{4})")
PART = re.compile(r"part-(\d+)\.parquet$")
UNIX_TS = re.compile(r"(?<![\w.])(1\d{9})\.(\d+)")
EPOCHS_ARG = re.compile(r'("epochs":\s*)(\d+)')
SKIP = ("staging", ".lock")
STATES = {"job_done": "succeeded", "job_failed": "failed", "job_cancelled": "cancelled"}


# ---- 1. seed ------------------------------------------------------------------


class Seeder:
    """Submits real jobs with the CLI into one home and remembers each one's kind."""

    def __init__(self, home: Path) -> None:
        self.home = home
        config = home / "xdg-config"  # no user config.toml changes a recipe's defaults
        config.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **user_manager_env(),
            "BLUT_HOME": str(home),
            "XDG_CONFIG_HOME": str(config),
        }
        self.kinds: dict[str, list[str]] = {}

    def submit(self, kind: str, *args: str) -> list[str]:
        """Run ``blut ARGS`` detached (it prints the job ids) and file the ids under ``kind``."""
        done = subprocess.run(
            blut(*args), cwd=self.home, env=self.env, capture_output=True, text=True
        )
        ids = done.stdout.split()
        if not ids:
            raise RuntimeError(f"blut {' '.join(args)} submitted nothing: {done.stderr.strip()}")
        self.kinds[kind] = ids
        return ids

    def cancel_after_epochs(self, job_id: str, epochs: int, timeout: float = 120) -> None:
        """`blut cancel` the job once it logged the end of epoch ``epochs``."""
        path = self.home / "jobs" / job_id / "status.jsonl"
        deadline = time.monotonic() + timeout
        while f"epoch {epochs}/".encode() not in path.read_bytes():
            if job_ended(self.home, job_id) or time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} ended or stalled before epoch {epochs}")
            time.sleep(0.1)
        subprocess.run(
            blut("cancel", job_id, "--yes"), env=self.env, check=True, capture_output=True
        )

    def save(self) -> None:
        """Write seed.json (what each kind's jobs are)."""
        (self.home / "seed.json").write_text(json.dumps(self.kinds, indent=1))


def seed(home: Path) -> dict[str, list[str]]:
    """Run the seed jobs in ``home`` (about a minute on 2 cores); their ids by kind."""
    s = Seeder(home)
    first = s.submit("train", *quant(), "--detach")
    s.submit("smoke", "recipe", "run", "smoke", "--detach")
    s.submit("script", "run", "--detach", "--name", "script", "--", sys.executable, "-c", SCRIPT)
    s.submit("exit", "run", "--detach", "--", "sh", "-c", "echo x; exit 3")
    s.submit("oom-run", "run", "--detach", "-m", "64M", "--", sys.executable, "-c", HOG)
    wait_ended(home, first)  # its data stages are cached now: the others start at train
    s.submit("cached", *quant(), "--detach")
    s.submit("train-sweep", *quant(), "--sweep", "train.lr=0.003,0.01")  # 0.001 is cached
    s.submit("smoke-sweep", "recipe", "run", "smoke", "--sweep", "make.count=8,16,32")
    oom = quant(4, "train.seed=7", "train.memory_max=160M")  # a new seed: not a cache hit
    s.submit("oom-train", *oom, "--detach")
    (long,) = s.submit("cancel", *quant(100, "train.seed=8"), "--detach")
    s.cancel_after_epochs(long, 2)
    wait_ended(home, [j for ids in s.kinds.values() for j in ids])
    s.save()
    return s.kinds


# ---- 2. replicate ----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """The last complete epoch of a training stage: the unit repeated to add epochs."""

    stage: str
    start: int
    """Index of the block's first event."""
    end: int
    """Index one past its epoch-end log event."""
    epoch: int
    total: int
    """Epochs the run planned (the N of ``epoch E/N``)."""
    steps: int
    """Optimizer steps per epoch."""
    seconds: float

    @property
    def lines(self) -> int:
        """Events in one epoch."""
        return self.end - self.start


@dataclass
class Template:
    """One seed job: its events and files, parsed once."""

    id: str
    kind: str
    events: list[dict[str, Any]]
    files: dict[str, bytes]
    sweep: str | None
    state: str
    reason: str | None
    block: Block | None = None
    lines_by_k: dict[int, list[tuple[float, str]]] = field(default_factory=dict)


def find_block(events: list[dict[str, Any]]) -> Block | None:
    """The last full epoch of the stage that logs ``epoch E/N``, if it logged two."""
    ends: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        if e["event"] == "log" and e.get("stage") and EPOCH.search(e.get("msg", "")):
            ends.setdefault(e["stage"], []).append(i)
    stage, idx = max(ends.items(), key=lambda kv: len(kv[1]), default=(None, []))
    if stage is None or len(idx) < 2:
        return None
    match = EPOCH.search(events[idx[-1]]["msg"])
    assert match is not None
    epoch, total = int(match[1]), int(match[2])
    block = events[idx[-2] + 1 : idx[-1] + 1]
    last_step = max(
        e["step"] for e in block if e["event"] in ("metric", "checkpoint") and "step" in e
    )
    seconds = events[idx[-1]]["ts"] - events[idx[-2]]["ts"]
    return Block(stage, idx[-2] + 1, idx[-1] + 1, epoch, total, last_step // epoch, seconds)


def shift_event(e: dict[str, Any], b: Block, j: int, k: int) -> dict[str, Any]:
    """Event ``e`` moved ``j`` epochs (and ``j`` epoch durations) later, in a run of ``k`` more."""
    e = {**e, "ts": e["ts"] + j * b.seconds}
    if e.get("stage") != b.stage:
        return e
    if j and e["event"] in ("metric", "progress", "checkpoint") and "step" in e:
        e["step"] += j * b.steps
    if j and "epoch" in e:
        e["epoch"] += j
    if j and e["event"] == "metric":
        e["values"] = {
            n: v * 0.997**j if "loss" in n and isinstance(v, float) else v
            for n, v in e["values"].items()
        }
    if j and e["event"] == "checkpoint":
        e["path"] = CHECKPOINT.sub(lambda m: f"epoch-{int(m[1]) + j:04d}", e["path"])
    if e["event"] == "progress" and e.get("unit") == "step":
        e["total"] = b.steps * (b.total + k)
    if e["event"] == "stage_done" and j:
        e["seconds"] += j * b.seconds
    if "msg" in e:
        e["msg"] = EPOCH.sub(lambda m: f"epoch {int(m[1]) + j}/{b.total + k}", e["msg"])
    return e


def extended(t: Template, k: int) -> list[dict[str, Any]]:
    """The template's events with ``k`` copies of its last epoch inserted after it."""
    b = t.block
    if b is None or k == 0:
        return t.events if b is None else [shift_event(e, b, 0, 0) for e in t.events]
    out = [shift_event(e, b, 0, k) for e in t.events[: b.end]]
    for j in range(1, k + 1):
        out.extend(shift_event(e, b, j, k) for e in t.events[b.start : b.end])
    out.extend(shift_event(e, b, k, k) for e in t.events[b.end :])
    return out


def encoded(t: Template, k: int) -> list[tuple[float, str]]:
    """(ts, rest of the line after ts) of every extended event, compact as the writer's."""
    if k not in t.lines_by_k:
        rows = []
        for e in extended(t, k):
            line = json.dumps(e, separators=(",", ":"), ensure_ascii=False)
            head = PREFIX + repr(e["ts"])
            if not line.startswith(head):
                raise ValueError(f"not a canonical status line: {line[:80]}")
            rows.append((e["ts"], line[len(head) :]))
        t.lines_by_k[k] = rows
    return t.lines_by_k[k]


def load_templates(seed_home: Path, kinds: dict[str, list[str]]) -> list[Template]:
    """Every seed job, parsed."""
    out = []
    for kind, ids in kinds.items():
        for job_id in ids:
            d = seed_home / "jobs" / job_id
            lines = (d / "status.jsonl").read_text().splitlines()
            events = [json.loads(line) for line in lines if line.strip()]
            files = {
                str(p.relative_to(d)): p.read_bytes()
                for p in sorted(d.rglob("*"))
                if p.is_file()
                and p.name != "status.jsonl"
                and not any(part in SKIP for part in p.relative_to(d).parts)
            }
            end = next(e for e in reversed(events) if e["event"] in STATES)
            sweep = next((e.get("sweep") for e in events if e["event"] == "job_submitted"), None)
            out.append(
                Template(
                    job_id, kind, events, files, sweep, STATES[end["event"]], end.get("reason")
                )
            )
            out[-1].block = find_block(events)
    return out


@dataclass
class Planned:
    """One job to write: its template, new id, submit time, sweep and added epochs."""

    template: Template
    id: str
    t0: float
    sweep: str | None
    extra_epochs: int = 0


def plan_jobs(
    templates: list[Template], jobs: int, lines: int, rng: random.Random
) -> list[Planned]:
    """``jobs`` new jobs drawn by :data:`MIX`, spread over the past weeks, epochs sized to ``lines``."""
    units: dict[str, list[Template]] = {}
    for t in templates:
        units.setdefault(t.kind, []).append(t)
    kinds = [k for k in MIX if k in units]
    weights = [MIX[k] / len(units[k]) for k in kinds]
    drawn: list[list[Template]] = []
    count = 0
    while count < jobs:
        group = units[rng.choices(kinds, weights)[0]][: jobs - count]
        drawn.append(group)
        count += len(group)
    now = time.time()
    starts = sorted(rng.uniform(now - SPAN_DAYS * 86400, now - 600) for _ in drawn)
    planned: list[Planned] = []
    used: set[str] = set()
    for group, t0 in zip(drawn, starts, strict=True):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t0))
        sweep = f"sweep-{stamp}-{rng.getrandbits(16):04x}" if group[0].sweep else None
        suffix = rng.randrange(0, 0xFFFF - len(group))
        for i, t in enumerate(group):
            job_id = f"{stamp}-{suffix + i:04x}"
            while job_id in used:
                suffix += len(group)
                job_id = f"{stamp}-{suffix + i:04x}"
            used.add(job_id)
            planned.append(Planned(t, job_id, t0 + i * 0.05, sweep))
    size_epochs(planned, lines, rng)
    return planned


def size_epochs(planned: list[Planned], lines: int, rng: random.Random) -> None:
    """Give training jobs extra epochs (each its own share) so all streams total ~``lines``."""
    base = sum(len(encoded(p.template, 0)) for p in planned)
    growable = [p for p in planned if p.template.block is not None]
    shares = [rng.uniform(0.3, 1.7) for _ in growable]
    room = max(lines - base, 0)
    for p, share in zip(growable, shares, strict=True):
        block = p.template.block
        assert block is not None
        p.extra_epochs = round(room * share / sum(shares) / block.lines)


def ts_mapper(p: Planned) -> Callable[[float], float]:
    """Seed time → the planned job's time (later after the inserted epochs)."""
    t, first = p.template, p.template.events[0]["ts"]
    delta = p.t0 - first
    b = t.block
    if b is None or not p.extra_epochs:
        return lambda ts: ts + delta
    after, shift = t.events[b.end - 1]["ts"], p.extra_epochs * b.seconds
    return lambda ts: ts + delta + (shift if ts > after else 0.0)


def rewrite_text(text: str, p: Planned, seed_home: Path, home: Path) -> str:
    """Ids, paths, sweep id and unix timestamps of a seed file, for the planned job."""
    t = p.template
    text = text.replace(t.id, p.id).replace(str(seed_home), str(home))
    if t.sweep and p.sweep:
        text = text.replace(t.sweep, p.sweep)
    lo, hi = t.events[0]["ts"] - 3600, t.events[-1]["ts"] + 3600
    to = ts_mapper(p)

    def stamp(m: re.Match[str]) -> str:
        value = float(m[0])
        return f"{to(value):.{len(m[2])}f}" if lo <= value <= hi else m[0]

    return UNIX_TS.sub(stamp, text)


def grow_log(text: str, b: Block, k: int) -> str:
    """A training log with ``k`` copies of its epoch-``b.epoch`` line, epochs renumbered."""
    out = []
    for line in text.splitlines(keepends=True):
        m = EPOCH.search(line)
        if m is None:
            out.append(line)
            continue
        e = int(m[1])
        shift = k if e > b.epoch else 0
        out.append(EPOCH.sub(f"epoch {e + shift}/{b.total + k}", line, count=1))
        if e == b.epoch:
            out.extend(
                EPOCH.sub(f"epoch {e + j}/{b.total + k}", line, count=1) for j in range(1, k + 1)
            )
    return "".join(out)


def new_names(rel: str, b: Block | None, k: int) -> list[str]:
    """Where a seed file goes when ``k`` epochs are added after epoch ``b.epoch``.

    Per-epoch metrics parts after it shift by ``k`` (its own part is copied for each
    added epoch); the checkpoints kept (the last ones) shift by ``k``.
    """
    if b is None:
        return [rel]
    part = PART.search(rel)
    if part is not None:
        n, head = int(part[1]), rel[: part.start()]
        added = range(n, n + k + 1) if n == b.epoch else [n + k if n > b.epoch else n]
        return [f"{head}part-{i:06d}.parquet" for i in added]
    if "/checkpoints/" in rel:
        return [CHECKPOINT.sub(lambda m: f"epoch-{int(m[1]) + k:04d}", rel)]
    return [rel]


def job_files(p: Planned, seed_home: Path, home: Path) -> dict[str, bytes]:
    """Every file of the planned job but status.jsonl, rewritten (and grown when it trains more)."""
    t, k = p.template, p.extra_epochs
    b = t.block if k else None
    out: dict[str, bytes] = {}
    for rel, data in t.files.items():
        text = None if rel.endswith((".parquet", ".pt")) else data.decode(errors="ignore")
        if text is not None and text.encode() == data:  # text: ids, paths, times, epochs
            text = rewrite_text(text, p, seed_home, home)
            if b is not None and rel.endswith(".json"):
                text = EPOCHS_ARG.sub(lambda m: f"{m[1]}{int(m[2]) + k}", text)
            if b is not None and rel == f"stages/{b.stage}/log":
                text = grow_log(text, b, k)
            data = text.encode()
        for name in new_names(rel, b, k):
            out[name] = data
    return out


def write_job(p: Planned, seed_home: Path, home: Path) -> tuple[int, int, Counter[str]]:
    """Write one job folder; its line count, stream bytes and event kinds."""
    d = home / "jobs" / p.id
    for rel, data in job_files(p, seed_home, home).items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data)
    rows = encoded(p.template, p.extra_epochs)
    delta = p.t0 - p.template.events[0]["ts"]
    text = "".join(f"{PREFIX}{ts + delta!r}{rest}\n" for ts, rest in rows)
    text = text.replace(p.template.id, p.id).replace(str(seed_home), str(home))
    if p.template.sweep and p.sweep:
        text = text.replace(p.template.sweep, p.sweep)
    stream = text.encode()
    (d / "status.jsonl").write_bytes(stream)
    return len(rows), len(stream), _kinds(p.template, p.extra_epochs)


def _kinds(t: Template, k: int) -> Counter[str]:
    counts = Counter(e["event"] for e in t.events)
    if t.block is not None and k:
        for e in t.events[t.block.start : t.block.end]:
            counts[e["event"]] += k
    return counts


def rebuild_summaries(home: Path, ids: list[str]) -> bool:
    """Run ``blut.status.summary.rebuild_summary`` on every job, where it exists."""
    try:
        module = importlib.import_module("blut.status.summary")
    except ImportError:
        return False
    rebuild = getattr(module, "rebuild_summary", None)
    if rebuild is None:
        return False
    for job_id in ids:
        rebuild(home / "jobs" / job_id)
    return True


def replicate(seed_home: Path, home: Path, jobs: int, lines: int, seed: int = 0) -> dict[str, Any]:
    """Write ``jobs`` jobs replicated from the seed into ``home``; the manifest (also saved)."""
    kinds = json.loads((seed_home / "seed.json").read_text())
    templates = load_templates(seed_home, kinds)
    planned = plan_jobs(templates, jobs, lines, random.Random(seed))
    (home / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)  # blut refuses a home open to others that holds files not its own
    total_lines = total_bytes = 0
    events: Counter[str] = Counter()
    for p in planned:
        n, size, counts = write_job(p, seed_home, home)
        total_lines, total_bytes = total_lines + n, total_bytes + size
        events.update(counts)
    summaries = rebuild_summaries(home, [p.id for p in planned])
    manifest = {
        "jobs": len(planned),
        "lines": total_lines,
        "stream_bytes": total_bytes,
        "events": dict(events.most_common()),
        "kinds": dict(Counter(p.template.kind for p in planned).most_common()),
        "outcomes": dict(Counter(_outcome(p.template) for p in planned).most_common()),
        "sweeps": len({p.sweep for p in planned if p.sweep}),
        "sweep_jobs": sum(1 for p in planned if p.sweep),
        "epochs": _epoch_stats(planned),
        "summaries": summaries,
        "states": {p.id: p.template.state for p in planned},
        "sweep_of": {p.id: p.sweep for p in planned if p.sweep},
    }
    (home / "realhome.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _outcome(t: Template) -> str:
    return t.state if t.reason is None or t.state == "cancelled" else f"{t.state}/{t.reason}"


def _epoch_stats(planned: list[Planned]) -> str:
    runs = sorted(
        p.template.block.epoch + p.extra_epochs for p in planned if p.template.block is not None
    )
    if not runs:
        return "no training runs"
    return (
        f"{len(runs)} training runs of {runs[0]}–{runs[-1]} epochs (median {runs[len(runs) // 2]})"
    )


# ---- for the benches ---------------------------------------------------------------


def describe(manifest: dict[str, Any]) -> str:
    """The world a bench measured, in a few lines."""
    events = manifest["events"]
    total = sum(events.values())
    mix = ", ".join(
        f"{k} {v:,}" + (f" ({v / total:.1%})" if v >= total / 1000 else "")
        for k, v in events.items()
    )
    return "\n".join(
        [
            f"home: {manifest['jobs']} jobs, {manifest['lines']:,} status lines, "
            f"{manifest['stream_bytes'] / 2**20:.0f} MiB of streams; "
            f"{manifest['sweep_jobs']} jobs in {manifest['sweeps']} sweeps; "
            f"per-job summaries: {'yes' if manifest['summaries'] else 'no (not in this tree)'}",
            f"  outcomes: {', '.join(f'{k} {v}' for k, v in manifest['outcomes'].items())}",
            f"  seed kinds: {', '.join(f'{k} {v}' for k, v in manifest['kinds'].items())}",
            f"  {manifest['epochs']}",
            f"  events: {mix}",
        ]
    )


def build(dest: Path, jobs: int, lines: int, seed_home: Path | None = None) -> dict[str, Any]:
    """Seed (unless ``seed_home`` holds one) and replicate into ``dest``; the manifest."""
    if seed_home is not None and (seed_home / "seed.json").is_file():
        return replicate(seed_home, dest, jobs, lines)
    with tempfile.TemporaryDirectory(prefix="blut-seed-") as tmp:
        where = seed_home or Path(tmp)
        started = time.perf_counter()
        seed(where)
        print(f"seed: real jobs ran in {time.perf_counter() - started:.0f} s", flush=True)
        return replicate(where, dest, jobs, lines)


@contextmanager
def realhome(
    home: Path | None, jobs: int = 1000, lines: int = 1_000_000
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A built home and its manifest: ``home`` if it has one, else built there or in a temp dir.

    Built by a child process, so that the bench's own process does not carry the builder's
    memory (it measures the cockpit's RSS in-process).
    """
    if home is not None and (home / "realhome.json").is_file():
        yield home, json.loads((home / "realhome.json").read_text())
        return
    tmp = None
    if home is None:
        tmp = home = Path(tempfile.mkdtemp(prefix="blut-realhome-"))
    try:
        argv = [sys.executable, __file__, str(home), "--jobs", str(jobs), "--lines", str(lines)]
        subprocess.run([*argv, "--quiet"], check=True)
        yield home, json.loads((home / "realhome.json").read_text())
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="the new BLUT_HOME (must not hold jobs yet)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--seed-home", type=Path, help="keep the seed here (reused if it has one already)"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary (a bench prints it)")
    opts = parser.parse_args()
    if (opts.dest / "jobs").is_dir() and any((opts.dest / "jobs").iterdir()):
        parser.error(f"{opts.dest} already has jobs")
    started = time.perf_counter()
    manifest = build(opts.dest, opts.jobs, opts.lines, opts.seed_home)
    print(f"built {opts.dest} in {time.perf_counter() - started:.0f} s", flush=True)
    if not opts.quiet:
        print(describe(manifest))


if __name__ == "__main__":
    main()
