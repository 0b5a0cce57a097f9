"""`PtyForward`: the terminal of a foreground unit, forwarded to this process's terminal.

What `systemd-run --pty` does, in-process: a unit launched with ``UnitSpec.tty`` =
:attr:`PtyForward.path` gets the pseudo-terminal's slave as stdin, stdout, stderr and
controlling terminal. From the start, whatever it writes is copied to our stdout;
between :meth:`~PtyForward.attach` and :meth:`~PtyForward.detach` our keystrokes are
copied to it, with our terminal in raw mode (so Ctrl-C, Ctrl-D and arrow keys reach
the unit: pdb and ipdb work) and its window size following ours. Output processing
stays on, so lines this process prints meanwhile still start at the left margin.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import termios
import threading
import tty
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

POLL = 0.05
"""Seconds the forwarding thread waits for input before it looks at its flags again."""
DRAIN_LIMIT = 2.0
"""Most seconds :meth:`PtyForward.detach` waits for the unit's last output."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PtyForward:
    """A pseudo-terminal for one foreground unit, served by a thread until :meth:`close`."""

    def __init__(self, stdin: int = 0, stdout: int = 1) -> None:
        self._in, self._out = stdin, stdout
        self._master, self._slave = os.openpty()  # the slave stays open: no EIO between units
        self.path = Path(os.ttyname(self._slave))
        """The slave's path, which the unit's ``TTYPath=`` names."""
        self._saved: list[Any] | None = None
        self._winch: Any = None
        self._attached = threading.Event()
        self._draining = threading.Event()
        self._drained = threading.Event()
        self._stop = threading.Event()
        self._copy_size()
        self._thread = threading.Thread(target=self._pump, name="ptyforward", daemon=True)
        self._thread.start()

    def _copy_size(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Give the pseudo-terminal our terminal's window size."""
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(self._in, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, size)

    def attach(self) -> None:
        """Hand our terminal to the unit: raw mode, keystrokes forwarded (main thread only:
        it follows window size changes through SIGWINCH)."""
        if self._saved is not None:
            return
        self._saved = termios.tcgetattr(self._in)
        tty.setraw(self._in, termios.TCSANOW)
        mode = termios.tcgetattr(self._in)
        mode[1] |= termios.OPOST  # oflag: "\n" still returns the carriage for our own lines
        termios.tcsetattr(self._in, termios.TCSANOW, mode)
        self._copy_size()
        self._winch = signal.signal(signal.SIGWINCH, self._copy_size)
        self._attached.set()

    def detach(self) -> None:
        """Take our terminal back once the unit's last output is copied (idempotent)."""
        self._attached.clear()
        if self._thread.is_alive():
            self._drained.clear()
            self._draining.set()
            self._drained.wait(DRAIN_LIMIT)
            self._draining.clear()
        if self._saved is not None:
            termios.tcsetattr(self._in, termios.TCSADRAIN, self._saved)
            self._saved = None
        if self._winch is not None:
            signal.signal(signal.SIGWINCH, self._winch)
            self._winch = None

    def _pump(self) -> None:
        """Copy the unit's output out, and while attached our input in, until closed."""
        while not self._stop.is_set():
            fds = [self._master, self._in] if self._attached.is_set() else [self._master]
            try:
                ready, _, _ = select.select(fds, [], [], POLL)
                if self._master in ready:
                    data = os.read(self._master, 65536)
                    _write_all(self._out, data)
                elif self._draining.is_set():
                    self._drained.set()  # nothing more came for a while
                if self._in in ready and self._attached.is_set():
                    _write_all(self._master, os.read(self._in, 4096))
            except OSError:
                if self._stop.wait(POLL):
                    break

    def close(self) -> None:
        """Detach, stop the thread and close the pseudo-terminal."""
        self.detach()
        self._stop.set()
        self._thread.join()
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> PtyForward:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
