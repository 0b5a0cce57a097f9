"""A foreground unit (`UnitSpec.tty` + `PtyForward`) on a real terminal and a real manager:
contained, its output on the terminal, keystrokes and Ctrl-C reaching it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.terminal import Terminal

UNIT = """
import os, time
try:
    open("/dev/tty").close()
    ctty = True
except OSError:
    ctty = False
try:  # Ctrl-C may come as soon as the line is out: before the sleep too
    print("tty", os.isatty(0), os.isatty(1), os.isatty(2), "ctty", ctty, flush=True)
    if ctty:
        time.sleep(60)
except KeyboardInterrupt:
    print("interrupted", flush=True)
print("got", input(), flush=True)
"""

LAUNCH = """
import sys
from pathlib import Path
from blut.containment.ptyforward import PtyForward
from blut.containment.{module} import {cls} as Launcher
from blut.containment.spec import UnitSpec

work = Path(sys.argv[1])
launcher = Launcher()
with PtyForward() as terminal:
    spec = UnitSpec(
        name="blut-foreground-{module}", argv=[sys.executable, "-c", sys.argv[2]],
        log_path=work / "log", result_path=work / "result", env={{"PATH": "/usr/bin:/bin"}},
        memory_max=200 << 20, tty=terminal.path,
    )
    handle = launcher.launch(spec)
    print("limit", launcher.memory_limit(handle), flush=True)
    terminal.attach()
    print("attached", flush=True)
    outcome = launcher.wait(handle, timeout=60)
    terminal.detach()
print("outcome", outcome.kind if outcome else None, flush=True)
launcher.close()
"""


@pytest.mark.parametrize(
    ("module", "cls"), [("systemd", "SystemdLauncher"), ("bare", "BareLauncher")]
)
def test_foreground_unit_owns_the_terminal(tmp_path: Path, module: str, cls: str) -> None:
    script = LAUNCH.format(module=module, cls=cls)
    term = Terminal([sys.executable, "-c", script, str(tmp_path), UNIT])
    term.expect("limit 209715200")  # contained: the kernel enforces the ceiling
    term.expect("attached")
    if module == "systemd":  # its controlling terminal: Ctrl-C interrupts it, as in pdb
        term.expect("tty True True True ctty True")
        term.type(b"\x03")
        term.expect("interrupted")
    else:  # the bare fallback gives it the terminal, not as its controlling one
        term.expect("tty True True True ctty False")
    term.type(b"hello\r")
    term.expect("got hello")
    term.expect("outcome success")
    assert term.wait() == 0
    assert not (tmp_path / "log").exists() or (tmp_path / "log").read_text() == ""
