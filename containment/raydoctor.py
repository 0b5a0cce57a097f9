"""`blut doctor --ray-address`: can this machine run stages on that Ray cluster, contained?

Two checks: the cluster answers with this machine's token and has nodes alive (their
CPUs, GPUs, memory and custom resources), and every node has a systemd user manager (a
probe job runs a zero-CPU task on each node; a node without one runs stages uncontained).
"""

from __future__ import annotations

import json
import shlex
import sys
import time

from blut.containment.doctor import Check
from blut.containment.errors import ManagerUnavailable
from blut.containment.noderun import PROBE, PROBE_MARK
from blut.containment.ray import ClusterNode, cluster_nodes

PROBE_TIMEOUT = 120.0
AUTH_FIX = (
    "export RAY_AUTH_TOKEN_PATH=FILE holding the cluster's token (on the head: "
    "`ray get-auth-token`), or put it in ~/.ray/auth_token"
)
ADDRESS_FIX = (
    "give the head's dashboard address (--ray-address http://HOST:8265); the head must run "
    "`ray start --head --include-dashboard true` with Ray's [default] extra"
)
MANAGER_FIX = (
    "on those nodes, start Ray from a login session with a user manager "
    '(`loginctl enable-linger $USER`, or `eval "$(blut doctor --start-user-manager)"` '
    "before `ray start`)"
)


def _summary(nodes: list[ClusterNode]) -> str:
    alive = [n for n in nodes if n.alive]
    cpus = sum(n.cpus for n in alive)
    gpus = sum(n.gpus for n in alive)
    memory = sum(n.memory for n in alive) / 2**30
    custom = sorted({k for n in alive for k in n.custom})
    extra = f"; custom resources: {', '.join(custom)}" if custom else ""
    return (
        f"{len(alive)} of {len(nodes)} nodes alive: {cpus:g} CPUs, {gpus:g} GPUs, "
        f"{memory:.1f} GiB{extra}"
    )


def check_cluster(address: str) -> Check:
    """The cluster answers (with this machine's token) and has nodes alive."""
    try:
        nodes = cluster_nodes(address)
    except ManagerUnavailable as exc:
        text = str(exc)
        if "uthenticat" in text or "Unauthorized" in text or "token" in text.lower():
            return Check("ray-cluster", "fail", f"{address} refused this machine's token", AUTH_FIX)
        return Check("ray-cluster", "fail", f"{address} does not answer: {text[:200]}", ADDRESS_FIX)
    detail: dict[str, object] = {"address": address, "nodes": [n.__dict__ for n in nodes]}
    if not any(n.alive for n in nodes):
        return Check("ray-cluster", "fail", f"{address}: no node alive", ADDRESS_FIX, detail)
    return Check("ray-cluster", "ok", f"{address}: {_summary(nodes)}", detail=detail)


def probe_nodes(address: str, timeout: float = PROBE_TIMEOUT) -> dict[str, dict[str, object]]:
    """Node id → host and whether a user manager answers there (one probe Ray job)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    entrypoint = shlex.join([sys.executable, "-m", "blut.containment.noderun", PROBE])
    job = client.submit_job(entrypoint=entrypoint, entrypoint_num_cpus=0)
    deadline = time.monotonic() + timeout
    while not client.get_job_status(job).is_terminal():
        if time.monotonic() > deadline:
            client.stop_job(job)
            raise TimeoutError(f"the probe job {job} did not end within {timeout:g}s")
        time.sleep(0.2)
    logs = client.get_job_logs(job)
    client.delete_job(job)
    for line in logs.splitlines():
        if line.startswith(PROBE_MARK):
            found: dict[str, dict[str, object]] = json.loads(line[len(PROBE_MARK) :])
            return found
    raise RuntimeError(f"the probe job {job} answered nothing: {logs.strip()[-300:]}")


def check_node_managers(address: str) -> Check:
    """Every alive node has a systemd user manager, so stages there run contained."""
    try:
        found = probe_nodes(address)
    except Exception as exc:  # the cluster check says why the cluster does not answer
        return Check("ray-nodes", "fail", f"could not probe the nodes: {exc}"[:300], ADDRESS_FIX)
    missing = sorted(f"{v['host']} ({k[:8]})" for k, v in found.items() if not v["user_manager"])
    detail: dict[str, object] = {"nodes": found}
    if missing:
        summary = f"no systemd user manager on {', '.join(missing)}: stages there run UNCONTAINED"
        return Check("ray-nodes", "warn", summary, MANAGER_FIX, detail)
    return Check(
        "ray-nodes", "ok", f"all {len(found)} nodes have a systemd user manager", None, detail
    )


def ray_checks(address: str) -> list[Check]:
    """The cluster checks, in display order (the node probe only when the cluster answers)."""
    cluster = check_cluster(address)
    if cluster.status == "fail":
        return [cluster]
    return [cluster, check_node_managers(address)]
