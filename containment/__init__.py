"""How a process is started and kept inside limits: systemd user units, bare fallback."""
