"""Run a program on a real pseudo-terminal: read what it shows, type at it."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence


class Terminal:
    """``argv`` running with a pseudo-terminal as its stdin, stdout, stderr and controlling tty."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes argv
            os.execvpe(argv[0], list(argv), {**os.environ, **(env or {})})
        self.screen = b""
        self.code: int | None = None

    def _read(self, timeout: float) -> bool:
        """Append what arrives within ``timeout``; False once the program closed the terminal."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every process on the terminal has ended
            return False
        self.screen += data
        return bool(data)

    def expect(self, text: str, timeout: float = 60) -> None:
        """Read until ``text`` is on the screen; fail showing the screen when it never comes."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"{text!r} never showed; the screen:\n{self.text}")

    def type(self, keys: bytes) -> None:
        """Type ``keys`` (raw bytes: b"\\r" is Enter, b"\\x03" Ctrl-C)."""
        os.write(self.fd, keys)

    def wait(self, timeout: float = 60) -> int:
        """Read until the program ends; its exit code."""
        deadline = time.monotonic() + timeout
        ended = False
        while not ended and time.monotonic() < deadline:
            ended = not self._read(0.1)
        if not ended:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.code = os.waitstatus_to_exitcode(status)
        assert ended, f"still running after {timeout}s; the screen:\n{self.text}"
        return self.code

    @property
    def text(self) -> str:
        """Everything shown so far, decoded."""
        return self.screen.decode(errors="replace")
