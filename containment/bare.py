"""`BareLauncher`: the fallback when no systemd user manager answers.

The process runs in its own session; a watchdog thread in the launching
process sums the RSS of its whole process tree, kills the tree when it passes
the memory ceiling (reported as ``oom``) or the time limit (``timeout``), and
writes the same result record a systemd unit would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

from blut.containment.envfile import read_env_file
from blut.containment.errors import LaunchError
from blut.containment.result import (
    outcome_from_record,
    read_record,
    reserve_record,
    write_record,
)
from blut.containment.spec import Handle, Outcome, UnitSpec, UnitState
from blut.containment.systemd import resolve_program
from blut.status.atomic import atomic_write

WATCH_INTERVAL = 0.05
STOP_GRACE = 10.0


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in bytes."""
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def kill_tree(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``, its process group and every descendant (even setsid ones)."""
    procs = _tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            continue


def _environment(spec: UnitSpec) -> dict[str, str]:
    """What systemd would give the unit: ``spec.env`` with the env file's variables over it."""
    if spec.env_file is None:
        return dict(spec.env)
    try:
        return {**spec.env, **read_env_file(spec.env_file)}
    except (OSError, ValueError) as exc:
        raise LaunchError(f"environment file {spec.env_file}: {exc}") from exc


def _pid_path(result_path: Path) -> Path:
    return result_path.with_name(result_path.name + ".pid")


class _Watch:
    """One supervised process: enforces limits, then records the outcome."""

    def __init__(self, spec: UnitSpec, proc: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.proc = proc
        self.peak = 0
        self.reason: str | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch-{spec.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        killed_at: float | None = None
        while self.proc.poll() is None:
            if killed_at is None:
                self.peak = max(self.peak, tree_rss(self.proc.pid))
                over_memory = self.spec.memory_max is not None and self.peak > self.spec.memory_max
                over_time = (
                    self.spec.timeout is not None and time.monotonic() - started > self.spec.timeout
                )
                if over_memory or over_time or self.stopping.is_set():
                    self.reason = "oom" if over_memory else "timeout" if over_time else "stop"
                    kill_tree(self.proc.pid, signal.SIGKILL if over_memory else signal.SIGTERM)
                    killed_at = time.monotonic()
            elif time.monotonic() - killed_at > STOP_GRACE:
                kill_tree(self.proc.pid, signal.SIGKILL)
            time.sleep(WATCH_INTERVAL)
        kill_tree(self.proc.pid, signal.SIGKILL)  # leftovers of the session
        write_record(self.spec.result_path, self._record(self.proc.returncode))

    def _record(self, returncode: int) -> dict[str, str]:
        if returncode < 0:
            code, status = "killed", signal.Signals(-returncode).name.removeprefix("SIG")
        else:
            code, status = "exited", str(returncode)
        result = {"oom": "oom-kill", "timeout": "timeout"}.get(self.reason or "", "")
        if not result:
            result = "success" if returncode == 0 or self.reason == "stop" else "exit-code"
        return {
            "service_result": result,
            "exit_code": code,
            "exit_status": status,
            "memcg": "",
            "oom_kill": "1" if self.reason == "oom" else "0",
            "peak_bytes": str(self.peak),
            "finished": f"{time.time():.6f}",
        }


class BareLauncher:
    """Plain subprocesses with a psutil watchdog enforcing the memory ceiling."""

    kind = "bare"

    def __init__(self) -> None:
        self._watches: dict[str, _Watch] = {}

    def launch(self, spec: UnitSpec) -> Handle:
        """Start ``spec`` in a new session, output appended to its log (or, with ``spec.tty``,
        stdin, stdout and stderr on that terminal, which is not made its controlling one)."""
        env = _environment(spec)
        program = resolve_program(spec.argv[0], env.get("PATH", os.environ.get("PATH")))
        reserve_record(spec.result_path)
        try:
            log = (
                os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                if spec.tty is None
                else os.open(spec.tty, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            )
        except OSError as exc:
            raise LaunchError(f"could not open {exc.filename}: {exc.strerror}") from exc
        try:
            proc = subprocess.Popen(
                [program, *spec.argv[1:]],
                stdin=subprocess.DEVNULL if spec.tty is None else log,
                stdout=log,
                stderr=log,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,
                umask=-1 if spec.umask is None else spec.umask,
            )
        except OSError as exc:
            raise LaunchError(f"could not start {spec.argv[0]}: {exc}") from exc
        finally:
            os.close(log)
        atomic_write(_pid_path(spec.result_path), str(proc.pid), durable=False)
        self._watches[spec.name] = _Watch(spec, proc)
        return Handle(spec.name, self.kind, spec.result_path, pid=proc.pid)

    def state(self, handle: Handle) -> UnitState:
        """Finished once the result is recorded; running while the process lives."""
        record = read_record(handle.result_path)
        if record is not None:
            return UnitState("finished", outcome_from_record(record))
        if handle.pid is not None and psutil.pid_exists(handle.pid):
            return UnitState("running", memory_current=tree_rss(handle.pid))
        return UnitState("unknown")

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        """Wait for the watchdog to record the outcome."""
        watch = self._watches.get(handle.name)
        if watch is None:
            raise LaunchError(f"{handle.name} was not started by this process")
        watch.thread.join(timeout)
        if watch.thread.is_alive():
            return None
        record = read_record(handle.result_path)
        return outcome_from_record(record) if record else Outcome("error", detail="no result")

    def stop(self, handle: Handle) -> None:
        """SIGTERM the whole tree; SIGKILL after a grace period."""
        watch = self._watches.get(handle.name)
        if watch is not None:
            watch.stopping.set()
        elif handle.pid is not None:
            kill_tree(handle.pid, signal.SIGTERM)

    def find(self, name: str, result_path: Path) -> Handle | None:
        """Re-attach through the pid file left beside the result path."""
        if result_path.exists():
            return Handle(name, self.kind, result_path)
        try:
            pid = int(_pid_path(result_path).read_text())
        except (OSError, ValueError):
            return None
        return Handle(name, self.kind, result_path, pid=pid) if psutil.pid_exists(pid) else None

    def memory_limit(self, handle: Handle) -> int | None:
        """The ceiling the watchdog enforces."""
        watch = self._watches.get(handle.name)
        return watch.spec.memory_max if watch is not None else None

    def close(self) -> None:
        """Nothing to release: watchdogs end with their processes."""
