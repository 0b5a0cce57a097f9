"""`RayLauncher`: units with a placement run as Ray jobs, contained on the node that runs them.

A unit whose spec has a `Placement` (a job's stages, `--launcher ray`) becomes a Ray job
submitted through the Jobs API: its submission id is the unit's name, so a restarted
executor finds it again (`find`) instead of submitting twice; its entrypoint reserves the
placement (``entrypoint_num_cpus``/``entrypoint_num_gpus``, ``entrypoint_memory`` = the
ceiling, custom resources to pin it to the nodes that have them) and runs
``python -m blut.containment.noderun`` there, which runs the unit under that node's
systemd user manager with its MemoryMax, exactly as on one box. The unit's log and result
record are written on the shared ``$BLUT_HOME`` (docs/cluster.md), so how it ended reads
the same as a local unit's; Ray's own status answers only while no record exists.

Every other unit (the job's executor) runs on this machine through ``local``.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from blut.containment.errors import LaunchError, ManagerUnavailable
from blut.containment.noderun import (
    node_note_path,
    node_spec_path,
    read_memory_sample,
    write_node_spec,
)
from blut.containment.result import outcome_from_record, read_record, reserve_record
from blut.containment.spec import Handle, Outcome, Placement, UnitSpec, UnitState
from blut.status.private import private_file

if TYPE_CHECKING:
    from blut.containment.launcher import Launcher

KIND = "ray"
NODERUN_MODULE = "blut.containment.noderun"
WAITING = ("PENDING", "RUNNING")
"""Ray job states of a unit not finished yet (queued for resources, or running)."""
ASK_EVERY = 1.0
"""Least seconds between two asks of Ray about a unit it said runs (its record is read on
every call): an executor polling 100 stages ten times a second asks Ray 100 times a second."""


def ray_error(exc: Exception) -> bool:
    """True for what the Jobs API raises when the cluster does not answer or refuses."""
    return isinstance(exc, ConnectionError | RuntimeError | OSError | ValueError)


class RayLauncher:
    """Launch placed units as Ray jobs at ``address`` (the dashboard's http address)."""

    kind = KIND

    def __init__(self, address: str, local: Launcher) -> None:
        self.address = address
        self.local = local
        self._client: Any = None
        self._running_at: dict[str, float] = {}
        """Unit → when Ray last said it runs (monotonic)."""
        self._cluster_gpus: float | None = None

    @property
    def client(self) -> Any:
        """The Jobs API client, connected on first use (`ManagerUnavailable` if it cannot)."""
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError as exc:
                raise ManagerUnavailable(
                    "--launcher ray needs Ray: pip install 'blut[ray]'"
                ) from exc
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as exc:
                if not ray_error(exc):
                    raise
                raise ManagerUnavailable(f"Ray cluster at {self.address}: {exc}") from exc
        return self._client

    def close(self) -> None:
        """Forget the Jobs API client and close the local launcher."""
        self._client = None
        self.local.close()

    def _info(self, name: str) -> Any | None:
        """The Ray job ``name`` (None when the cluster has none by that id)."""
        try:
            return self.client.get_job_info(name)
        except Exception as exc:
            if not ray_error(exc):
                raise
            if "does not exist" in str(exc):
                return None
            raise ManagerUnavailable(f"Ray cluster at {self.address}: {exc}") from exc

    def _gpus(self, place: Placement) -> float:
        """The GPUs to reserve: none for a stage that may run on the CPU when no node alive
        has as many (the cluster is asked once)."""
        if not place.gpus or not place.gpus_optional:
            return place.gpus
        if self._cluster_gpus is None:
            nodes = cluster_nodes(self.address)
            self._cluster_gpus = max((n.gpus for n in nodes if n.alive), default=0.0)
        return place.gpus if self._cluster_gpus >= place.gpus else 0

    def launch(self, spec: UnitSpec) -> Handle:
        """Submit ``spec`` as Ray job ``spec.name`` (a unit without placement runs locally)."""
        if spec.placement is None:
            return self.local.launch(spec)
        place = spec.placement
        previous = self._info(spec.name)
        if previous is not None:
            if str(previous.status) in WAITING:
                raise LaunchError(f"Ray job {spec.name} is still running")
            self.client.delete_job(spec.name)  # an earlier run's: its id is this run's now
        reserve_record(spec.result_path)
        node_note_path(spec.result_path).unlink(missing_ok=True)
        private_file(spec.log_path)
        spec_path = write_node_spec(spec)
        entrypoint = shlex.join([sys.executable, "-m", NODERUN_MODULE, str(spec_path)])
        try:
            self.client.submit_job(
                entrypoint=entrypoint,
                submission_id=spec.name,
                entrypoint_num_cpus=place.cpus,
                entrypoint_num_gpus=self._gpus(place),
                entrypoint_memory=spec.memory_max or 0,
                entrypoint_resources=dict(place.resources) or None,
                metadata={"blut_unit": spec.name, "description": spec.description[:200]},
            )
        except Exception as exc:
            if not ray_error(exc):
                raise
            raise LaunchError(f"could not submit Ray job {spec.name}: {exc}") from exc
        return Handle(name=spec.name, launcher=self.kind, result_path=spec.result_path)

    def state(self, handle: Handle) -> UnitState:
        """The result record when there is one, else what Ray says of the job."""
        if handle.launcher != self.kind:
            return self.local.state(handle)
        record = read_record(handle.result_path)
        if record is not None:
            self._running_at.pop(handle.name, None)
            return UnitState("finished", outcome_from_record(record))
        running = UnitState("running", memory_current=read_memory_sample(handle.result_path))
        if time.monotonic() - self._running_at.get(handle.name, -ASK_EVERY) < ASK_EVERY:
            return running
        info = self._info(handle.name)
        if info is None:
            return UnitState("unknown")
        status = str(info.status)
        if status in WAITING:
            self._running_at[handle.name] = time.monotonic()
            return running
        self._running_at.pop(handle.name, None)
        record = read_record(handle.result_path)  # it may have ended meanwhile
        if record is not None:
            return UnitState("finished", outcome_from_record(record))
        return UnitState("finished", self._unrecorded(status, info.message or ""))

    def _unrecorded(self, status: str, message: str) -> Outcome:
        """How a Ray job that left no result record ended."""
        if status == "STOPPED":
            return Outcome("signal", signal="TERM", detail="stopped on Ray before it ran")
        if status == "SUCCEEDED":
            return Outcome(
                "error",
                detail="the Ray job ended but left no result record: is $BLUT_HOME the "
                "same shared folder on every node? (docs/cluster.md)",
            )
        last = message.strip().splitlines()[-1:] or [status]
        return Outcome("error", detail=f"Ray job {status.lower()}: {last[0][:300]}")

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        """Poll the result record (every 50 ms) and Ray (every second) until it ended."""
        if handle.launcher != self.kind:
            return self.local.wait(handle, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        next_check = time.monotonic()
        while True:
            record = read_record(handle.result_path)
            if record is not None:
                return outcome_from_record(record)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1.0
                state = self.state(handle)
                if state.phase == "finished":
                    return state.outcome
                if state.phase == "unknown":
                    return Outcome("error", detail="the Ray job vanished without a result")
            if deadline is not None and now >= deadline:
                return None
            time.sleep(0.05)

    def stop(self, handle: Handle) -> None:
        """Stop the Ray job (its entrypoint stops the unit on the node; idempotent)."""
        if handle.launcher != self.kind:
            self.local.stop(handle)
            return
        info = self._info(handle.name)
        if info is None or str(info.status) not in WAITING:
            return
        try:
            self.client.stop_job(handle.name)
        except Exception as exc:
            if not ray_error(exc):
                raise
            raise LaunchError(f"could not stop Ray job {handle.name}: {exc}") from exc

    def find(self, name: str, result_path: Path) -> Handle | None:
        """A unit sent to Ray (its spec lies next to its record) by its submission id,
        else the local launcher's unit of that name."""
        if not node_spec_path(result_path).exists():
            return self.local.find(name, result_path)
        if result_path.exists() or self._info(name) is not None:
            return Handle(name=name, launcher=self.kind, result_path=result_path)
        return None

    def memory_limit(self, handle: Handle) -> int | Literal["gone"] | None:
        """The local unit's ceiling; a Ray unit's is checked by the node that runs it
        (`blut.containment.noderun` warns in its log), so ``"gone"`` here."""
        if handle.launcher != self.kind:
            return self.local.memory_limit(handle)
        return "gone"


@dataclass(frozen=True)
class ClusterNode:
    """One node of a Ray cluster as its dashboard reports it."""

    node_id: str
    ip: str
    alive: bool
    head: bool
    cpus: float
    gpus: float
    memory: int
    custom: Mapping[str, float]
    """Its custom resources (those a stage can be pinned by), less Ray's own."""


def _custom(resources: Mapping[str, float]) -> dict[str, float]:
    own = ("CPU", "GPU", "memory", "object_store_memory")
    return {
        k: v
        for k, v in resources.items()
        if k not in own and not k.startswith(("node:", "accelerator_type:"))
    }


def cluster_nodes(address: str, timeout: float = 10) -> list[ClusterNode]:
    """The nodes of the cluster at ``address`` (`ManagerUnavailable` when it does not answer)."""
    try:
        from ray.util.state import list_nodes
    except ImportError as exc:
        raise ManagerUnavailable("Ray is not installed: pip install 'blut[ray]'") from exc
    try:
        found = list_nodes(address=address, timeout=int(timeout), raise_on_missing_output=False)
    except Exception as exc:
        if not ray_error(exc) and "ray" not in type(exc).__module__:
            raise
        raise ManagerUnavailable(f"Ray cluster at {address}: {exc}") from exc
    nodes = []
    for node in found:
        total = dict(node.resources_total or {})
        nodes.append(
            ClusterNode(
                node_id=str(node.node_id),
                ip=str(node.node_ip),
                alive=str(node.state) == "ALIVE",
                head=bool(node.is_head_node),
                cpus=float(total.get("CPU", 0)),
                gpus=float(total.get("GPU", 0)),
                memory=int(total.get("memory", 0)),
                custom=_custom(total),
            )
        )
    return nodes
