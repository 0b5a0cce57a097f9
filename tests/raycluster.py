"""A real two-node Ray cluster on 127.0.0.1 for the Ray tests and bench (no mocks).

One head (2 CPUs) and a second node process (1 CPU and the custom resource ``node2``, so
that pinning a stage to it is real scheduling), with token authentication as a real cluster
has it (``RAY_AUTH_MODE=token``, the token in a file of the cluster's own temp dir, not
under ~/.ray). Both run ``ray start --block`` in their own session; `stop` ends them and any
process left running from the cluster's temp dir, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
PIN = "node2"
"""The custom resource only the second node has."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RayCluster:
    """A running cluster: its dashboard address and the environment that reaches it."""

    root: Path
    address: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self) -> object:
        """A Jobs API client of the cluster (authenticated through ``env``)."""
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address)

    def stop(self) -> None:
        """End both nodes and every process they started (workers too), by pid."""
        ours: dict[int, psutil.Process] = {}
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                ours.update((p.pid, p) for p in (root, *root.children(recursive=True)))
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(str(self.root) in arg for arg in proc.info["cmdline"] or ()):
                    ours[proc.pid] = proc
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(list(ours.values()), timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _wait_nodes(cluster: RayCluster, count: int, deadline: float) -> None:
    from blut.containment.ray import cluster_nodes

    while True:
        try:
            if sum(n.alive for n in cluster_nodes(cluster.address)) >= count:
                return
        except Exception as exc:  # not up yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster did not come up: {exc}") from exc
        if time.monotonic() > deadline:
            logs = "".join(p.read_text()[-2000:] for p in cluster.root.glob("*.log"))
            raise RuntimeError(f"the Ray cluster has fewer than {count} nodes alive:\n{logs}")
        time.sleep(0.5)


def start(environ: dict[str, str] | None = None, timeout: float = 180) -> RayCluster:
    """Start the head and the second node; returns once both are alive.

    The variables that reach the cluster (token, PYTHONPATH of this checkout) are set in
    this process's ``os.environ`` too, so the test's own Jobs API clients authenticate.
    """
    root = Path(tempfile.mkdtemp(prefix="blray", dir="/tmp"))  # short: socket paths
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    extra = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": path,
    }
    os.environ.update(extra)
    env = {**os.environ, **(environ or {}), **extra}
    port, dash = _free_port(), _free_port()
    cluster = RayCluster(root, f"http://127.0.0.1:{dash}", env)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    common += ["--temp-dir", str(root / "t")]
    head = [_ray(), "start", "--head", "--num-cpus", "2", "--port", str(port)]
    head += ["--dashboard-port", str(dash), "--include-dashboard", "true"]
    head += ["--ray-client-server-port", str(_free_port())]
    head += ["--dashboard-agent-listen-port", str(_free_port()), *common]
    node = [_ray(), "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1"]
    node += ["--resources", json.dumps({PIN: 1})]
    node += ["--dashboard-agent-listen-port", str(_free_port()), *common]
    deadline = time.monotonic() + timeout
    try:
        for name, argv in (("head", head), ("node2", node)):
            with open(root / f"{name}.log", "wb") as log:
                cluster.procs.append(
                    subprocess.Popen(
                        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
            _wait_nodes(cluster, len(cluster.procs), deadline)
    except BaseException:
        cluster.stop()
        raise
    return cluster
