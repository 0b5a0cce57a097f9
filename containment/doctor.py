"""The checks behind `blut doctor`: is this machine ready to run contained jobs?

Each check returns a `Check` (ok / warn / fail, a one-line summary, the exact
fix command, JSON-friendly detail). Rendering is the caller's business. No
check raises: a check that crashes becomes a failed `Check` with the error.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal, TypeAlias

from blut.containment import cgroup, usermanager

Status: TypeAlias = Literal["ok", "warn", "fail"]

CMD_TIMEOUT = 10.0
GIB = 2**30
DISK_FAIL_BELOW = 1 * GIB
DISK_WARN_BELOW = 10 * GIB
PROBE_MEMORY = 64 * 2**20
STOPPOST = Path(__file__).with_name("stoppost.sh")
DELEGATE_FIX = (
    "sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu "
    "cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf "
    "&& sudo systemctl daemon-reload, then log out and back in"
)
V1_FIX = (
    "run blut as root, or boot the host with pure cgroup v2 "
    "(kernel argument systemd.unified_cgroup_hierarchy=1)"
)


@dataclass(frozen=True)
class Check:
    """The verdict of one check, with the command that fixes it when it is not ok."""

    name: str
    status: Status
    summary: str
    fix: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-serialisable copy (for ``blut doctor --format json``)."""
        return asdict(self)


def exit_code(checks: Iterable[Check]) -> int:
    """0 when every check is ok, 1 when any warns, 2 when any fails."""
    statuses = {c.status for c in checks}
    return 2 if "fail" in statuses else 1 if "warn" in statuses else 0


def run_checks(blut_home: Path, ray_address: str | None = None) -> list[Check]:
    """Run every check, in display order (with ``ray_address``, that cluster's too)."""
    from blut.containment.extras import check_extras, check_telemetry  # they import Check

    manager = _guarded("user-manager", check_user_manager)
    env = None
    if manager.status == "ok":
        env = usermanager.manager_env(Path(str(manager.detail["runtime_dir"])))
    return [
        manager,
        _guarded("memory-limits", lambda: check_memory_limits(env)),
        _guarded("linger", check_linger),
        _guarded("gpus", check_gpus),
        _guarded("disk", lambda: check_disk(blut_home)),
        _guarded("blut-home", lambda: check_home(blut_home)),
        _guarded("space", lambda: check_space(blut_home)),
        _guarded("oom-detection", lambda: check_stoppost(STOPPOST)),
        _guarded("versions", check_versions),
        _guarded("extras", check_extras),
        _guarded("telemetry", check_telemetry),
        *(_ray_checks(ray_address) if ray_address else []),
    ]


def _ray_checks(address: str) -> list[Check]:
    from blut.containment.raydoctor import ray_checks  # Ray loads only when asked about

    try:
        return ray_checks(address)
    except Exception as exc:  # a doctor must survive the sickness it diagnoses
        return [Check("ray-cluster", "fail", f"check crashed: {type(exc).__name__}: {exc}")]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # a doctor must survive the sickness it diagnoses
        return Check(name, "fail", f"check crashed: {type(exc).__name__}: {exc}")


def _run(argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT,
        check=False,
    )


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def check_user_manager() -> Check:
    """(a) A systemd user manager answers, on its private socket and on the user D-Bus."""
    probes = {str(d): usermanager.probe(d) for d in usermanager.candidate_dirs()}
    detail: dict[str, object] = {"probes": probes}
    for runtime_dir, state in probes.items():
        if state == "ok":
            detail["runtime_dir"] = runtime_dir
            summary = f"systemd user manager answers at {runtime_dir}"
            return Check("user-manager", "ok", summary, detail=detail)
    for runtime_dir, state in probes.items():
        if state == "no-bus":
            summary = f"the manager at {runtime_dir} answers but its user D-Bus does not"
            return Check("user-manager", "fail", summary, usermanager.DBUS_HINT, detail)
    if usermanager.pid1_is_systemd():
        runtime_dir = f"/run/user/{os.getuid()}"
        fix = f"sudo loginctl enable-linger {_user()} && export XDG_RUNTIME_DIR={runtime_dir}"
    else:
        fix = usermanager.START_HINT
    summary = (
        f"no systemd user manager answers (looked in {', '.join(probes)}): jobs run uncontained"
    )
    return Check("user-manager", "fail", summary, fix, detail)


def check_memory_limits(env: Mapping[str, str] | None) -> Check:
    """(b) MemoryMax reaches the kernel: a real probe unit when a manager answers."""
    layout = cgroup.layout()
    fix = DELEGATE_FIX if layout == "v2" else V1_FIX
    detail: dict[str, object] = {"cgroup_layout": layout, "root": os.geteuid() == 0}
    if layout == "none":
        summary = "no cgroup filesystem at /sys/fs/cgroup"
        return Check("memory-limits", "fail", summary, None, detail)
    if env is None:
        if layout != "v2" and os.geteuid() != 0:
            summary = (
                f"cgroup {layout}: memory exists only in v1, which a non-root manager cannot "
                "write: MemoryMax would be silently unenforced"
            )
            return Check("memory-limits", "fail", summary, fix, detail)
        summary = f"not probed: no user manager answers (cgroup layout {layout})"
        return Check("memory-limits", "warn", summary, None, detail)
    if layout == "v2":
        detail["manager_controllers"] = _manager_controllers(env)
    enforced = _probe_memory_limit(env)
    detail["probe_limit"] = enforced
    if cgroup.limit_matches(PROBE_MEMORY, enforced):
        how = "delegated cgroup v2" if layout == "v2" else "cgroup v1 memory, manager runs as root"
        summary = f"MemoryMax enforced: a probe unit got its 64 MiB ceiling ({how})"
        return Check("memory-limits", "ok", summary, detail=detail)
    got = "no limit" if enforced is None else f"{enforced} bytes"
    summary = f"MemoryMax NOT enforced: a probe unit asking for 64 MiB got {got} (cgroup {layout})"
    return Check("memory-limits", "fail", summary, fix, detail)


def _manager_controllers(env: Mapping[str, str]) -> list[str]:
    """The cgroup v2 controllers the user manager may hand to its units."""
    done = _run(["systemctl", "--user", "show", "-p", "ControlGroup", "--value"], env)
    path = cgroup.CGROUP_ROOT / done.stdout.strip().lstrip("/") / "cgroup.controllers"
    try:
        return path.read_text().split()
    except OSError:
        return []


def _probe_memory_limit(env: Mapping[str, str]) -> int | None:
    """Start a 64 MiB transient unit, read the limit its cgroup enforces, stop it."""
    unit = f"blut-doctor-probe-{os.getpid()}.service"
    sleep = shutil.which("sleep") or "/bin/sleep"
    limit = f"MemoryMax={PROBE_MEMORY}"
    argv = ["systemd-run", "--user", "--quiet", "--collect", f"--unit={unit}", "-p", limit]
    started = _run([*argv, sleep, "5"], env)
    if started.returncode != 0:
        raise RuntimeError(f"systemd-run failed: {started.stderr.strip()}")
    try:
        shown = _run(["systemctl", "--user", "show", "-p", "ControlGroup", "--value", unit], env)
        return cgroup.memory_limit(shown.stdout.strip())
    finally:
        _run(["systemctl", "--user", "stop", unit], env)


def check_linger() -> Check:
    """(c) The user manager and its jobs outlive the SSH session."""
    user = _user()
    if not usermanager.pid1_is_systemd():
        summary = (
            "no logind (PID 1 is not systemd): the private user manager survives SSH "
            "logout but not a reboot or container restart"
        )
        return Check("linger", "warn", summary, f"after a restart: {usermanager.START_HINT}")
    linger = Path("/var/lib/systemd/linger", user).exists()
    if not linger:
        shown = _run(["loginctl", "show-user", user, "-p", "Linger", "--value"])
        linger = shown.stdout.strip() == "yes"
    if linger:
        return Check("linger", "ok", f"linger on for {user}: jobs survive logout")
    summary = f"linger off for {user}: jobs stop when your last session ends"
    return Check("linger", "warn", summary, f"sudo loginctl enable-linger {user}")


def check_gpus() -> Check:
    """(d) NVIDIA driver and GPUs through NVML."""
    from blut.containment.nvml import Nvml

    with Nvml() as nvml:
        if not nvml.available:
            summary = "no NVIDIA driver/GPU found (CPU jobs still run)"
            return Check("gpus", "warn", summary, detail={"error": nvml.error})
        driver = nvml.driver_version() or "?"
        samples = nvml.sample()
    gpus: list[dict[str, object]] = [
        {"index": s.index, "name": s.name, "memory": s.memory_total} for s in samples
    ]
    names = [f"{s.index}: {s.name} {_gib(s.memory_total or 0)}" for s in samples]
    detail: dict[str, object] = {"driver": driver, "gpus": gpus}
    if not gpus:
        summary = f"driver {driver} but no GPU visible (CPU jobs still run)"
        return Check("gpus", "warn", summary, detail=detail)
    summary = f"{len(gpus)} GPU(s), driver {driver}: {', '.join(names)}"
    return Check("gpus", "ok", summary, detail=detail)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_status(free: int) -> Status:
    """fail under 1 GiB free, warn under 10 GiB, ok otherwise."""
    if free < DISK_FAIL_BELOW:
        return "fail"
    return "warn" if free < DISK_WARN_BELOW else "ok"


def check_disk(blut_home: Path) -> Check:
    """(e) Free space on the filesystem that holds BLUT_HOME: warn under 10 GiB, fail
    under 1 GiB (a job that fills it fails with ``disk full``)."""
    where = _existing(blut_home)
    usage = shutil.disk_usage(where)
    status = disk_status(usage.free)
    summary = f"{_gib(usage.free)} free of {_gib(usage.total)} at {where}"
    if status != "ok":
        below = DISK_FAIL_BELOW if status == "fail" else DISK_WARN_BELOW
        summary += f": under {_gib(below)}, jobs may soon fail with 'disk full'"
    fix = None if status == "ok" else f"free space on {where}, or set BLUT_HOME to a bigger disk"
    detail: dict[str, object] = {"path": str(where), "free": usage.free, "total": usage.total}
    return Check("disk", status, summary, fix, detail)


def check_home(blut_home: Path) -> Check:
    """(f) BLUT_HOME is (or can be made) a private directory we can write."""
    detail: dict[str, object] = {"path": str(blut_home)}
    if not blut_home.exists():
        parent = _existing(blut_home)
        if os.access(parent, os.W_OK | os.X_OK):
            summary = f"{blut_home} will be created (mode 700)"
            return Check("blut-home", "ok", summary, detail=detail)
        summary = f"cannot create {blut_home}: {parent} is not writable"
        fix = f"sudo mkdir -p -m 700 {blut_home} && sudo chown {_user()} {blut_home}"
        return Check("blut-home", "fail", summary, fix, detail)
    if not blut_home.is_dir():
        summary = f"{blut_home} is not a directory"
        return Check("blut-home", "fail", summary, "set BLUT_HOME to a directory", detail)
    if not os.access(blut_home, os.W_OK | os.X_OK):
        fix = f"sudo chown -R {_user()} {blut_home}"
        return Check("blut-home", "fail", f"{blut_home} is not writable", fix, detail)
    mode = stat.S_IMODE(blut_home.stat().st_mode)
    detail["mode"] = f"{mode:o}"
    if mode & 0o077:
        summary = f"{blut_home} is mode {mode:o}: other users can read job logs and data"
        return Check("blut-home", "warn", summary, f"chmod 700 {blut_home}", detail)
    return Check("blut-home", "ok", f"{blut_home} writable, mode 700", detail=detail)


def check_space(blut_home: Path) -> Check:
    """(f2) What BLUT_HOME holds: job folders against the stage cache (informational)."""
    from blut.status.usage import home_usage

    use = home_usage(blut_home)
    detail: dict[str, object] = {"jobs": use.jobs, "job_count": use.job_count, "cache": use.cache}
    summary = (
        f"jobs {_size(use.jobs)} in {use.job_count} folder(s), cache {_size(use.cache)} "
        "(`blut jobs prune`, `blut cache prune` free them)"
    )
    return Check("space", "ok", summary, detail=detail)


def _size(n: int) -> str:
    return _gib(n) if n >= GIB else f"{n / 2**20:.1f} MiB"


def check_stoppost(script: Path) -> Check:
    """(g) The ExecStopPost helper that records OOM kills and peak memory is installed."""
    detail: dict[str, object] = {"path": str(script)}
    if not script.is_file():
        summary = f"{script} is missing: OOM kills would look like plain SIGKILLs"
        return Check("oom-detection", "fail", summary, "pip install --force-reinstall blut", detail)
    if not os.access(script, os.X_OK):
        summary = f"{script} is not executable"
        return Check("oom-detection", "fail", summary, f"chmod +x {script}", detail)
    summary = "ExecStopPost helper in place: OOM kills and peak memory are recorded"
    return Check("oom-detection", "ok", summary, detail=detail)


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _systemd_version() -> str:
    try:
        first = _run(["systemctl", "--version"]).stdout.partition("\n")[0]
    except OSError:
        return "not found"
    return first.removeprefix("systemd ").strip() or "unknown"


def check_versions() -> Check:
    """(h) Versions of the pieces blut stands on (informational, always ok)."""
    versions = {
        "python": platform.python_version(),
        "blut": _dist_version("blut") or "dev",
        "systemd": _systemd_version(),
        "kernel": platform.release(),
        "torch": _dist_version("torch") or "not installed",
        "textual": _dist_version("textual") or "not installed",
    }
    summary = ", ".join(f"{k} {v}" for k, v in versions.items())
    return Check("versions", "ok", summary, detail=dict(versions))
