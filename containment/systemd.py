"""`SystemdLauncher`: every process a transient service of the user manager.

Each unit gets MemoryMax (+ MemorySwapMax=0), KillMode=control-group, its
stdout/stderr appended to a log file (created 0600 first; a foreground unit
has a terminal as stdin, stdout, stderr and controlling tty instead, as with
`systemd-run --pty`, which `blut.containment.ptyforward` serves), blut's few variables
in Environment= and everything else through EnvironmentFile= (so no value of
the user's environment lands in the transient unit file systemd writes, 0644,
under its runtime dir), an optional UMask and RuntimeMaxSec, and an
ExecStopPost helper (``stoppost.sh``) that records the outcome, OOM kills and
peak memory into a result file before systemd removes the cgroup. Units are
collected when they stop: the result file, not the unit, is the record, so
the outcome survives the launcher, a manager restart and a reboot.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from blut.containment import cgroup
from blut.containment.errors import LaunchError, ManagerUnavailable
from blut.containment.result import outcome_from_record, read_record, reserve_record
from blut.containment.spec import Handle, Outcome, UnitSpec, UnitState
from blut.status.private import private_file

STOPPOST = Path(__file__).with_name("stoppost.sh")
STOP_TIMEOUT_USEC = 10_000_000
ACTIVE_STATES = (b"active", b"activating", b"deactivating", b"reloading")


def _service(name: str) -> bytes:
    return f"{name}.service".encode()


def resolve_program(program: str, env_path: str | None) -> str:
    """The absolute path systemd needs for ExecStart (units get a minimal PATH)."""
    if "/" in program:
        path = Path(program).absolute()
        if not os.access(path, os.X_OK) or path.is_dir():
            raise LaunchError(f"not an executable file: {program}")
        return str(path)
    found = shutil.which(program, path=env_path)
    if found is None:
        raise LaunchError(f"command not found: {program}")
    return str(Path(found).absolute())


def _literal(arg: str) -> bytes:
    """An argument systemd passes through unchanged (it expands ``$VAR`` in Exec lines)."""
    return arg.replace("$", "$$").encode()


def unit_properties(spec: UnitSpec) -> dict[bytes, Any]:
    """The transient-unit properties that realise ``spec``."""
    program = resolve_program(spec.argv[0], spec.env.get("PATH", os.environ.get("PATH")))
    argv = [_literal(program), *(_literal(a) for a in spec.argv[1:])]
    log = str(spec.log_path).encode()
    stoppost = [b"/bin/sh", _literal(str(STOPPOST)), _literal(str(spec.result_path))]
    props: dict[bytes, Any] = {
        b"Description": (spec.description or f"blut {spec.name}").encode(),
        b"ExecStart": [(program.encode(), argv, False)],
        b"ExecStopPost": [(stoppost[0], stoppost, True)],
        b"KillMode": b"control-group",
        b"TimeoutStopUSec": STOP_TIMEOUT_USEC,
        b"CollectMode": b"inactive-or-failed",
        b"Environment": [f"{k}={v}".encode() for k, v in spec.env.items()],
    }
    if spec.tty is None:
        props[b"StandardOutputFileToAppend"] = log
        props[b"StandardErrorFileToAppend"] = log
    else:  # what `systemd-run --pty` asks for; the caller forwards the terminal (ptyforward)
        props.update(
            {
                b"StandardInput": b"tty",
                b"StandardOutput": b"tty",
                b"StandardError": b"tty",
                b"TTYPath": str(spec.tty).encode(),
            }
        )
    if spec.env_file is not None:
        props[b"EnvironmentFiles"] = [(str(spec.env_file).encode(), False)]
    if spec.umask is not None:
        props[b"UMask"] = spec.umask
    if spec.cwd is not None:
        props[b"WorkingDirectory"] = str(spec.cwd).encode()
    if spec.memory_max is not None:
        props[b"MemoryMax"] = spec.memory_max
        props[b"MemorySwapMax"] = 0
    if spec.cpu_quota is not None:
        props[b"CPUQuotaPerSecUSec"] = int(spec.cpu_quota * 1_000_000)
    if spec.timeout is not None:
        props[b"RuntimeMaxUSec"] = int(spec.timeout * 1_000_000)
    return props


class SystemdLauncher:
    """Launch units through the user manager over one kept-open D-Bus connection."""

    kind = "systemd"

    def __init__(self) -> None:
        self._bus: Any = None

    @contextmanager
    def _dbus(self) -> Iterator[Any]:
        from pystemd.dbusexc import DBusBaseError
        from pystemd.dbuslib import DBus

        try:
            if self._bus is None:
                bus = DBus(user_mode=True)
                bus.open()
                self._bus = bus
            yield self._bus
        except DBusBaseError as exc:
            self.close()
            raise ManagerUnavailable(f"systemd user manager: {exc}") from exc

    def close(self) -> None:
        """Close the D-Bus connection (reopened on the next call)."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def _unit(self, bus: Any, name: str) -> Any:
        from pystemd.systemd1 import Unit

        return Unit(_service(name), bus=bus, _autoload=True)

    def launch(self, spec: UnitSpec) -> Handle:
        """Start ``spec`` as transient service ``<spec.name>.service``."""
        from pystemd.dbusexc import DBusBaseError
        from pystemd.systemd1 import Manager
        from pystemd.systemd1.unit_signatures import KNOWN_UNIT_SIGNATURES

        KNOWN_UNIT_SIGNATURES.setdefault(b"UMask", b"u")  # systemd takes it; pystemd 0.15 lacks it
        props = unit_properties(spec)
        reserve_record(spec.result_path)
        private_file(spec.log_path)  # systemd would create it with the unit's umask
        with self._dbus() as bus:
            manager = Manager(bus=bus, _autoload=True)
            try:
                manager.Manager.StartTransientUnit(_service(spec.name), b"fail", props)
            except DBusBaseError as exc:
                raise LaunchError(f"could not start unit {spec.name}: {exc}") from exc
        return Handle(name=spec.name, launcher=self.kind, result_path=spec.result_path)

    def _loaded_unit(self, name: str) -> Any | None:
        with self._dbus() as bus:
            unit = self._unit(bus, name)
            if unit.Unit.LoadState != b"loaded":
                return None
            return unit

    def state(self, handle: Handle) -> UnitState:
        """Finished when the result file exists, running while the unit is active."""
        record = read_record(handle.result_path)
        if record is not None:
            return UnitState("finished", outcome_from_record(record))
        unit = self._loaded_unit(handle.name)
        if unit is not None and unit.Unit.ActiveState in ACTIVE_STATES:
            cg = unit.Service.ControlGroup.decode()
            current = cgroup.memory_current(cg) if cg else None
            return UnitState("running", memory_current=current)
        record = read_record(handle.result_path)  # it may have stopped meanwhile
        if record is not None:
            return UnitState("finished", outcome_from_record(record))
        return UnitState("unknown")

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        """Poll the result file (fast at first, then every 50 ms); check the unit each second."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        next_unit_check = time.monotonic() + 1.0
        while True:
            record = read_record(handle.result_path)
            if record is not None:
                return outcome_from_record(record)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            if now >= next_unit_check:
                next_unit_check = now + 1.0
                if self.state(handle).phase == "unknown":
                    return Outcome("error", detail="unit vanished without leaving a result")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def stop(self, handle: Handle) -> None:
        """Stop the unit: SIGTERM to the whole cgroup, SIGKILL after 10 s."""
        from pystemd.dbusexc import DBusBaseError

        unit = self._loaded_unit(handle.name)
        if unit is None:
            return
        try:
            unit.Unit.Stop(b"replace")
        except DBusBaseError as exc:
            if self._loaded_unit(handle.name) is not None:
                raise LaunchError(f"could not stop unit {handle.name}: {exc}") from exc

    def find(self, name: str, result_path: Path) -> Handle | None:
        """A handle when the unit is loaded or has left its result file."""
        if result_path.exists() or self._loaded_unit(name) is not None:
            return Handle(name=name, launcher=self.kind, result_path=result_path)
        return None

    def control_group(self, name: str) -> str | None:
        """The cgroup of unit ``name`` while it is loaded (None once it is gone)."""
        unit = self._loaded_unit(name)
        group = unit.Service.ControlGroup.decode() if unit is not None else ""
        return group or None

    def memory_limit(self, handle: Handle, settle: float = 1.0) -> int | Literal["gone"] | None:
        """The ceiling the kernel enforces on the running unit.

        Returns the limit in bytes, None when the unit runs without one, or
        ``"gone"`` when the unit finished before its cgroup could be read.
        """
        deadline = time.monotonic() + settle
        while True:
            unit = self._loaded_unit(handle.name)
            cg = unit.Service.ControlGroup.decode() if unit is not None else ""
            if cg:
                return cgroup.memory_limit(cg)
            if unit is None or time.monotonic() >= deadline:
                return "gone"
            time.sleep(0.01)
