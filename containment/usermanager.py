"""Find, or start, the systemd user manager that runs blut's units.

On a normal systemd host the manager is logind's ``user@UID.service``. On hosts
whose PID 1 is not systemd (containers, Firecracker VMs, CI) blut starts a
private ``systemd --user`` itself, in a 0700 runtime dir owned by the user, with
a clean environment (the manager hands its environment to every unit).

A manager is found again by probing runtime dirs in a fixed order, so every
caller reuses the same one: two managers of one user started from the same
cgroup would share ``/app.slice``. The lock file name is the one the
``user-systemd-up`` script uses, so the two never start a manager concurrently.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal, TypeAlias

from blut.containment.errors import ManagerUnavailable
from blut.status.flock import Flock

ProbeResult: TypeAlias = Literal["ok", "no-bus", "absent"]

PROBE_TIMEOUT = 3.0
POLL_INTERVAL = 0.1
LOCK_NAME = ".user-systemd-up.lock"
LOG_NAME = "user-manager.log"
SYSTEMD_BINARIES = (Path("/usr/lib/systemd/systemd"), Path("/lib/systemd/systemd"))
START_HINT = 'eval "$(blut doctor --start-user-manager)"'
DBUS_HINT = "sudo apt-get install dbus-user-session, then restart the user manager"


def manager_env(runtime_dir: Path) -> dict[str, str]:
    """The variables that point systemctl, systemd-run and pystemd at ``runtime_dir``'s manager."""
    return {
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime_dir}/bus",
    }


def _answers(argv: list[str], runtime_dir: Path) -> bool:
    try:
        done = subprocess.run(
            argv,
            env={**os.environ, **manager_env(runtime_dir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def probe(runtime_dir: Path) -> ProbeResult:
    """Whether a manager answers for ``runtime_dir``.

    "ok": it answers on ``systemd/private`` (plain ``systemctl --user``) and on the
    user D-Bus at ``bus`` (pystemd, ``systemd-run --wait``); "no-bus": only the
    former; "absent": no manager answers.
    """
    if not (runtime_dir / "systemd" / "private").is_socket():
        return "absent"
    if not _answers(["systemctl", "--user", "show-environment"], runtime_dir):
        return "absent"
    if not (runtime_dir / "bus").is_socket():
        return "no-bus"
    ping = ["busctl", "--user", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1"]
    if not _answers([*ping, "org.freedesktop.DBus.Peer", "Ping"], runtime_dir):
        return "no-bus"
    return "ok"


def candidate_dirs() -> list[Path]:
    """Runtime dirs to look for a manager in: $XDG_RUNTIME_DIR, /run/user/UID, the tmp fallback.

    ``BLUT_RUNTIME_DIR`` pins blut to exactly one runtime dir (no search).
    """
    pinned = os.environ.get("BLUT_RUNTIME_DIR")
    if pinned:
        return [Path(pinned)]
    uid = os.getuid()
    dirs = [
        Path(f"/run/user/{uid}"),
        Path(os.environ.get("TMPDIR") or "/tmp") / f"user-systemd-{uid}",
    ]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        dirs.insert(0, Path(xdg))
    return list(dict.fromkeys(dirs))


def find_reachable() -> dict[str, str] | None:
    """The env of the first candidate dir whose manager fully answers, or None."""
    for runtime_dir in candidate_dirs():
        if probe(runtime_dir) == "ok":
            return manager_env(runtime_dir)
    return None


def pid1_is_systemd() -> bool:
    """True on a host booted with systemd (logind, ``user@UID.service``)."""
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def serving_pid(runtime_dir: Path) -> int | None:
    """The pid of this user's live ``systemd --user`` started for ``runtime_dir``, if any."""
    uid = os.getuid()
    wanted = f"XDG_RUNTIME_DIR={runtime_dir}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid or (proc / "comm").read_text().strip() != "systemd":
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--user" in argv and wanted in environ:
            return int(proc.name)
    return None


def export_lines(env: Mapping[str, str]) -> str:
    """Shell lines that export ``env``: ``eval "$(...)"`` them."""
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())


def ensure_user_manager(timeout: float = 10.0) -> dict[str, str]:
    """The env of a reachable user manager, starting one if none answers (idempotent).

    Raises ManagerUnavailable with the command that fixes the host when no
    manager can be reached or started within ``timeout`` seconds.
    """
    env = find_reachable()
    if env is not None:
        return env
    half_up = next((d for d in candidate_dirs() if probe(d) == "no-bus"), None)
    if half_up is not None:
        raise ManagerUnavailable(
            f"the user manager at {half_up} answers but its D-Bus does not: {DBUS_HINT}"
        )
    if pid1_is_systemd():
        return _start_logind_manager(timeout)
    return _start_private_manager(timeout)


def _start_logind_manager(timeout: float) -> dict[str, str]:
    uid = os.getuid()
    user = pwd.getpwuid(uid).pw_name
    runtime_dir = Path(f"/run/user/{uid}")
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            ["systemctl", "--no-ask-password", "start", f"user@{uid}.service"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(runtime_dir) == "ok":
            return manager_env(runtime_dir)
        time.sleep(POLL_INTERVAL)
    raise ManagerUnavailable(
        f"no systemd user manager answers for {user}: run `sudo loginctl enable-linger {user}` "
        f"(or log in over ssh), then `export XDG_RUNTIME_DIR={runtime_dir}`"
    )


def _systemd_binary() -> Path:
    for path in SYSTEMD_BINARIES:
        if os.access(path, os.X_OK):
            return path
    raise ManagerUnavailable(
        "systemd is not installed: sudo apt-get install systemd dbus-user-session"
    )


def _private_dir(path: Path) -> bool:
    """Create ``path`` if needed; True when it is a 0700 dir owned by and writable for us."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid != os.getuid():
            return False
        path.chmod(0o700)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _choose_runtime_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        if _private_dir(Path(xdg)):
            return Path(xdg)
        raise ManagerUnavailable(
            f"XDG_RUNTIME_DIR={xdg} is not a private dir owned by you: unset it or fix it, "
            f"then {START_HINT}"
        )
    tried = candidate_dirs()
    for path in tried:
        if _private_dir(path):
            return path
    raise ManagerUnavailable(
        f"no usable runtime dir (tried {', '.join(map(str, tried))}): "
        f"set XDG_RUNTIME_DIR to a private dir of yours, then {START_HINT}"
    )


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    lock = Flock(path)
    if not lock.acquire(timeout=timeout):
        raise ManagerUnavailable(f"timed out waiting for the lock {path}")
    try:
        yield
    finally:
        lock.release()


def _log_tail(log: Path, lines: int = 10) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in tail if line.strip())


def _start_private_manager(timeout: float) -> dict[str, str]:
    binary = _systemd_binary()
    for tool in ("systemctl", "busctl", "systemd-run"):
        if shutil.which(tool) is None:
            raise ManagerUnavailable(f"{tool} not found: sudo apt-get install systemd")
    try:  # sd_booted(): systemd --user refuses to run unless this dir exists
        Path("/run/systemd/system").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ManagerUnavailable(
            f"cannot create /run/systemd/system ({exc.strerror}): run `sudo mkdir -p "
            f"/run/systemd/system` once, then {START_HINT}"
        ) from exc
    runtime_dir = _choose_runtime_dir()
    with _locked(runtime_dir / LOCK_NAME, timeout + 5):
        if probe(runtime_dir) == "ok":  # another caller won the race
            return manager_env(runtime_dir)
        pid = serving_pid(runtime_dir)
        if pid is not None:
            raise ManagerUnavailable(
                f"a systemd --user (pid {pid}) serves {runtime_dir} but does not answer: "
                f"see {runtime_dir / LOG_NAME}, stop it with `kill {pid}`, then {START_HINT}"
            )
        for stale in ("systemd/private", "systemd/notify", "bus"):
            (runtime_dir / stale).unlink(missing_ok=True)
        return _spawn(binary, runtime_dir, timeout)


def _clean_env(runtime_dir: Path) -> dict[str, str]:
    user = pwd.getpwuid(os.getuid()).pw_name
    return {
        "HOME": os.environ.get("HOME", "/"),
        "USER": user,
        "LOGNAME": user,
        "SHELL": os.environ.get("SHELL", "/bin/sh"),
        "PATH": os.environ.get(
            "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "XDG_RUNTIME_DIR": str(runtime_dir),
    }


def _spawn(binary: Path, runtime_dir: Path, timeout: float) -> dict[str, str]:
    """Start ``systemd --user`` detached from us and wait until it answers."""
    log = runtime_dir / LOG_NAME
    with open(log, "ab") as out:
        manager = subprocess.Popen(
            [str(binary), "--user"],
            env=_clean_env(runtime_dir),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    state: ProbeResult = "absent"
    while time.monotonic() < deadline:
        state = probe(runtime_dir)
        if state == "ok":
            return manager_env(runtime_dir)
        if manager.poll() is not None:
            raise ManagerUnavailable(
                f"systemd --user exited with status {manager.returncode} right after start "
                f"(XDG_RUNTIME_DIR={runtime_dir}): {_log_tail(log)}"
            )
        time.sleep(POLL_INTERVAL)
    if state == "no-bus":
        raise ManagerUnavailable(
            f"the user manager at {runtime_dir} started but its D-Bus does not answer: {DBUS_HINT}"
        )
    raise ManagerUnavailable(
        f"systemd --user (pid {manager.pid}) did not answer within {timeout:g}s "
        f"(XDG_RUNTIME_DIR={runtime_dir}): {_log_tail(log)}"
    )
