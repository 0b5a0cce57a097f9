"""Run the `blut` command line as a user does: in a terminal, timed where the user sees it.

Shared by the benches. A command runs in a subprocess whose stdin, stdout and
stderr are a pseudo-terminal of 80×24 (so rich and Textual render as they do
on a terminal); the clock starts just before the spawn and stops at the first
complete output line and at the process's exit. Peak RSS is the child's
high-water mark (VmHWM), read every 10 ms and after every output chunk while
it runs (``ru_maxrss`` would not do: a child spawned by a big parent inherits
the parent's size in it, at the fork and the exec).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

COLUMNS, LINES = 80, 24
SAMPLE_EVERY = 0.01
"""Seconds between two readings of a running child's peak RSS."""
TAIL = 1 << 16
"""Bytes of the latest output that :meth:`Terminal.wait_for` looks at."""
TERMINAL_EVENTS = frozenset({"job_done", "job_failed", "job_cancelled"})
_ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[P^_][^\x1b]*\x1b\\|.)")


def compile_bytecode() -> str:
    """Compile blut's bytecode, as an installed blut has it; returns a note for the report.

    This machine sets PYTHONDONTWRITEBYTECODE=1, so without this every run would
    compile blut's modules from source, a cost no installed copy pays.
    """
    import compileall

    import blut as package

    root = Path(package.__file__).parent
    for folder in (root, *(p.resolve() for p in root.iterdir() if p.is_symlink())):
        compileall.compile_dir(folder, quiet=1)  # it skips symlinked folders: the rooms
    return "bytecode compiled first (as installed)"


def blut(*args: str) -> list[str]:
    """argv of the blut CLI of this interpreter (the tree on its path wins)."""
    return [sys.executable, "-m", "blut", *args]


def user_manager_env() -> dict[str, str]:
    """The exports of a reachable systemd user manager, started if needed (`blut doctor`)."""
    done = subprocess.run(
        blut("doctor", "--start-user-manager"), capture_output=True, text=True, check=True
    )
    env = {}
    for line in done.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = " ".join(shlex.split(value))
    return env


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a blut command on ``home``, as on an 80×24 terminal."""
    env = {**os.environ, "BLUT_HOME": str(home), "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.setdefault("TERM", "xterm-256color")
    return {**env, **extra}


def screen_text(raw: bytes) -> str:
    """Terminal output with escape sequences removed (what was printed, not where)."""
    return _ANSI.sub(b"", raw).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Timed:
    """One command as its user saw it."""

    wall: float
    """Seconds from spawn to exit."""
    first_line: float | None
    """Seconds from spawn to the first complete output line (None: it printed none)."""
    peak_rss: int
    """Bytes: the child's peak resident set (VmHWM as last read before it exited)."""
    cpu: float
    """User + system CPU seconds of the child."""
    code: int
    output: bytes


class Terminal:
    """A command running on a pseudo-terminal of COLUMNS×LINES; read it, type into it."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        self.fd = master
        self.output = bytearray()
        self.first_line: float | None = None
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.eof = False
        self.peak_rss = 0

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def read(self, timeout: float) -> bool:
        """Read what the command printed, waiting ≤ ``timeout`` s (and read its memory).

        False once the command closed the terminal (it exited)."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], min(max(timeout, 0), SAMPLE_EVERY))
        self._sample()
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError:  # EIO: every writer of the terminal has closed it
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        if self.first_line is None and b"\n" in chunk:
            self.first_line = time.perf_counter() - self.start
        self.output += chunk
        return True

    def _sample(self) -> None:
        with suppress(OSError, KeyError):  # gone, or a zombie (no memory left to report)
            self.peak_rss = max(self.peak_rss, proc_rss(self.proc.pid)[1])

    def wait_for(self, seen: Callable[[str], bool], timeout: float) -> float | None:
        """Seconds from spawn until the latest output satisfies ``seen`` (None: never)."""
        deadline = time.perf_counter() + timeout
        mark = 0
        while time.perf_counter() < deadline:
            if len(self.output) != mark:
                mark = len(self.output)
                if seen(screen_text(bytes(self.output[-TAIL:]))):
                    return time.perf_counter() - self.start
            if not self.read(deadline - time.perf_counter()):
                return None
        return None

    def type(self, keys: bytes) -> None:
        """Send keystrokes."""
        os.write(self.fd, keys)

    def finish(self, timeout: float = 60.0) -> Timed:
        """Read to the end, reap the child, and time it."""
        deadline = time.perf_counter() + timeout
        while self.read(max(deadline - time.perf_counter(), 0.1)):
            if time.perf_counter() > deadline:
                self.proc.kill()
                deadline = float("inf")
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.perf_counter() - self.start
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        os.close(self.fd)
        return Timed(
            wall=wall,
            first_line=self.first_line,
            peak_rss=self.peak_rss,
            cpu=usage.ru_utime + usage.ru_stime,
            code=self.proc.returncode,
            output=bytes(self.output),
        )


def run_timed(argv: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> Timed:
    """Run ``argv`` on a terminal to its end; when it printed its first line and exited."""
    return Terminal(argv, env).finish(timeout)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> tuple[int, int]:
    """Current and peak resident set of a live process, in bytes (VmRSS, VmHWM)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def job_ended(home: Path, job_id: str) -> bool:
    """Whether the job's status.jsonl holds a terminal event (read as bytes, no blut import)."""
    try:
        data = (home / "jobs" / job_id / "status.jsonl").read_bytes()
    except FileNotFoundError:
        return False
    return any(f'"event":"{kind}"'.encode() in data for kind in TERMINAL_EVENTS)


def wait_ended(home: Path, job_ids: Sequence[str], timeout: float = 300.0) -> None:
    """Wait until every job has a terminal event."""
    deadline = time.monotonic() + timeout
    pending = list(job_ids)
    while pending:
        pending = [j for j in pending if not job_ended(home, j)]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running after {timeout:.0f} s: {', '.join(pending)}")
        time.sleep(0.2)


@contextmanager
def live_job(home: Path, env: Mapping[str, str], seconds: int = 600) -> Iterator[str]:
    """A real running job (`blut run --detach -- sleep`) in ``home``; cancelled and removed after.

    Removed so that a home reused with ``--home`` stays as it was built.
    """
    argv = blut("run", "--detach", "--name", "live", "--", "sleep", str(seconds))
    job_id = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    job_id = job_id.strip()
    try:
        yield job_id
    finally:
        subprocess.run(blut("cancel", job_id, "--yes"), env=env, capture_output=True)
        shutil.rmtree(home / "jobs" / job_id, ignore_errors=True)


def machine() -> str:
    """CPUs and load average: how busy the machine was while a bench measured."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)"


def median_ms(values: Sequence[float]) -> float:
    """Median of seconds, in milliseconds."""
    return statistics.median(values) * 1000


def verdict(value: float, goal: float) -> str:
    """``ratio 0.62 of the goal (met)`` for a value that should stay at or below ``goal``."""
    return f"{value / goal:.2f}× the goal ({'met' if value <= goal else 'NOT met'})"
