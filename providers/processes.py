"""Processes on this machine: whether one still runs, and stopping a child together with everything it started.

A child meant to be stopped as a whole (a Claude Code CLI call, the managed Prefect server and its worker) is
started with `start_new_session=True`: its pid is then its process group's id, and the group holds whatever it
spawned (an agent's tools, the server's services). Stopping it is one sequence, here in its two forms: SIGTERM
the group, give it a grace period, SIGKILL what is left. `stop_group` awaits an asyncio child (whose exit the
event loop reaps); `terminate_group` polls any pid, and also waits for the group's other members.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
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


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid` (Linux /proc; empty elsewhere)."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat_file.parent.name))
    return members


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid` (a child started in a session of its own: its pid); gone is fine.
    Where the group cannot be signalled as a whole, the leader still gets it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, sig)


async def stop_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM an asyncio child's process group, then SIGKILL whatever is left after `grace_s`."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Grandchildren that ignored SIGTERM are still in the group even though the child itself has exited.
    signal_group(proc.pid, signal.SIGKILL)


def terminate_group(pid: int, grace_s: float) -> None:
    """SIGTERM the process group led by `pid`, wait up to `grace_s` for it and its members to exit, SIGKILL
    what is left."""
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (pid_alive(pid) or group_members(pid)):
        time.sleep(0.1)
    if pid_alive(pid) or group_members(pid):
        signal_group(pid, signal.SIGKILL)
        time.sleep(0.2)
        reap(pid)


__all__ = ["group_members", "pid_alive", "reap", "signal_group", "stop_group", "terminate_group"]
