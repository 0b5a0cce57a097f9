"""``python -m blut.containment.noderun SPEC``: a unit run contained on a cluster node.

(``--probe-nodes`` instead asks every node of the cluster whether it has a user manager.)

A Ray job's entrypoint (`blut.containment.ray`). It reads the unit's spec (a JSON file
`write_node_spec` left next to the unit's result record, on the shared ``$BLUT_HOME``),
runs the unit under this node's systemd user manager (or the loud bare fallback where the
node has none: `blut.containment.select`) exactly as on one box, so the unit's own
ExecStopPost writes the result record (outcome, OOM, peak memory), waits for it, and exits
0 when it succeeded, else its exit code (1 when it has none). SIGTERM (Ray's stop) stops
the unit. What this node did is noted next to the record (`read_node_note`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from blut.containment.launcher import Launcher
from blut.containment.spec import Handle, UnitSpec
from blut.status.atomic import atomic_write_json

PROBE = "--probe-nodes"
PROBE_MARK = "blut-nodes: "
"""Starts the line of `probe_nodes`'s answer in the probe job's log."""
NODE_VARS = ("CUDA_VISIBLE_DEVICES",)
"""Variables the cluster sets for the entrypoint (the GPUs it reserved) that the unit gets."""


def node_spec_path(result_path: Path) -> Path:
    """Where the spec of a unit sent to a cluster lies (next to its result record)."""
    return result_path.with_name(result_path.name + ".spec.json")


def node_note_path(result_path: Path) -> Path:
    """Where the node that ran a unit notes itself (next to its result record)."""
    return result_path.with_name(result_path.name + ".node.json")


def memory_sample_path(result_path: Path) -> Path:
    """Where the node notes the unit's current memory while it runs (next to its record)."""
    return result_path.with_name(result_path.name + ".memory.json")


def read_memory_sample(result_path: Path) -> int | None:
    """The unit's memory in bytes as its node last sampled it (None: no sample yet)."""
    try:
        return int(json.loads(memory_sample_path(result_path).read_text())["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


SAMPLE_EVERY = 1.0
"""Seconds between the node's samples of a running unit's memory."""


def write_node_spec(spec: UnitSpec) -> Path:
    """Write ``spec`` (less its placement and terminal) for `noderun`; returns its path."""
    data = {
        "name": spec.name,
        "argv": list(spec.argv),
        "log_path": str(spec.log_path),
        "result_path": str(spec.result_path),
        "env": dict(spec.env),
        "env_file": None if spec.env_file is None else str(spec.env_file),
        "umask": spec.umask,
        "cwd": None if spec.cwd is None else str(spec.cwd),
        "memory_max": spec.memory_max,
        "cpu_quota": spec.cpu_quota,
        "timeout": spec.timeout,
        "description": spec.description,
    }
    path = node_spec_path(spec.result_path)
    atomic_write_json(path, data, durable=False)
    return path


def read_node_spec(path: Path) -> UnitSpec:
    """The unit spec `write_node_spec` wrote (ValueError/OSError when unreadable)."""
    data: dict[str, Any] = json.loads(path.read_text())
    for key in ("log_path", "result_path", "env_file", "cwd"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    return UnitSpec(**data)


@dataclass(frozen=True)
class NodeNote:
    """Which node ran a unit, under which launcher, and its containment warning if any."""

    node: str
    launcher: str
    warning: str | None = None


def read_node_note(result_path: Path) -> NodeNote | None:
    """The note of the node that ran the unit of ``result_path`` (None: none yet)."""
    try:
        data = json.loads(node_note_path(result_path).read_text())
        return NodeNote(str(data["node"]), str(data["launcher"]), data.get("warning"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _say(spec: UnitSpec, msg: str) -> None:
    """A warning into the unit's log (which the user reads) and to stderr (the Ray job's)."""
    line = f"blut: warning: {msg}\n"
    sys.stderr.write(line)
    with open(spec.log_path, "a") as log:
        log.write(line)


def run(spec: UnitSpec) -> int:
    """Run ``spec`` contained on this node and wait for it; the exit status to return."""
    from dataclasses import replace

    from blut.containment.cgroup import unapplied_limit
    from blut.containment.select import choose_launcher

    launcher, warning = choose_launcher(contained=True)
    node = socket.gethostname()
    if warning:
        warning = f"node {node}: {warning}"
        _say(spec, warning)
    atomic_write_json(
        node_note_path(spec.result_path),
        {"node": node, "launcher": launcher.kind, "warning": warning},
        durable=False,
    )
    env = dict(spec.env)
    env["BLUT_CONTAINED"] = "1" if launcher.kind == "systemd" else "0"
    env.update({k: os.environ[k] for k in NODE_VARS if k in os.environ})
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        handle = launcher.launch(replace(spec, env=env))
        if launcher.kind == "systemd":
            msg = unapplied_limit(spec.name, spec.memory_max, launcher.memory_limit(handle))
            if msg:
                _say(spec, f"node {node}: {msg}")
        stopped = False
        sampled_at, last = 0.0, None
        while True:
            outcome = launcher.wait(handle, timeout=0.1)
            if outcome is not None:
                return 0 if outcome.ok else (outcome.exit_code or 1)
            if stopping and not stopped:
                launcher.stop(handle)
                stopped = True
            if time.monotonic() - sampled_at >= SAMPLE_EVERY:
                sampled_at = time.monotonic()
                last = _sample_memory(launcher, handle, spec.result_path, last)
    finally:
        launcher.close()


def _sample_memory(
    launcher: Launcher, handle: Handle, result_path: Path, last: int | None
) -> int | None:
    """Note the unit's current memory for the submitting machine (the executor reads it as
    it reads a local unit's cgroup) when it moved by more than a MiB; the value noted."""
    current = launcher.state(handle).memory_current
    if current is None or (last is not None and abs(current - last) <= 1 << 20):
        return last
    atomic_write_json(memory_sample_path(result_path), {"bytes": current}, durable=False)
    return current


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m blut.containment.noderun SPEC``."""
    from blut.containment.errors import ContainmentError

    args = sys.argv[1:] if argv is None else argv
    if args == [PROBE]:
        print(PROBE_MARK + json.dumps(probe_nodes()))
        return 0
    if len(args) != 1:
        print("usage: python -m blut.containment.noderun SPEC", file=sys.stderr)
        return 2
    try:
        spec = read_node_spec(Path(args[0]))
    except (OSError, ValueError, TypeError) as exc:
        print(f"blut noderun: unreadable unit spec {args[0]}: {exc}", file=sys.stderr)
        return 2
    try:
        return run(spec)
    except ContainmentError as exc:
        print(f"blut noderun: {exc}", file=sys.stderr)
        return 1


def probe_nodes(timeout: float = 60) -> dict[str, dict[str, object]]:
    """Inside a Ray job: on every alive node, its host name and whether a systemd user
    manager answers there (what `blut doctor --ray-address` asks each node)."""
    import logging

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(logging_level=logging.ERROR)
    probe = ray.remote(num_cpus=0)(_probe_here)
    refs = {
        node["NodeID"]: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote()
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node["Alive"]
    }
    return {node: ray.get(ref, timeout=timeout) for node, ref in refs.items()}


def _probe_here() -> dict[str, object]:
    from blut.containment.usermanager import find_reachable

    return {"host": socket.gethostname(), "user_manager": find_reachable() is not None}


if __name__ == "__main__":
    sys.exit(main())
