"""Processes on this machine: whether one still runs (run ownership, the managed server's pid files)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a dead child of ours is reaped on the way, and a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    reap(pid)  # if it is our own dead child, this makes it vanish
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): trust kill(0)
    try:  # a zombie (dead, not yet reaped by its parent) is not running
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False  # reaped just now


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


__all__ = ["pid_alive", "reap"]
