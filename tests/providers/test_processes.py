"""Stopping a child with everything it started: SIGTERM to its process group, SIGKILL to what ignores it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from providers import group_members, pid_alive, stop_group, terminate_group

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)
# A child that dies on SIGTERM, leaving behind a grandchild that ignores it (an agent's tool, say).
PARENT = (
    "import subprocess, sys, time; "
    f"g = subprocess.Popen([sys.executable, '-c', {IGNORES_TERM!r}], stdout=subprocess.PIPE); "
    "g.stdout.readline(); print('ready', flush=True); time.sleep(60)"
)


def _gone(pgid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.05)
    return False


async def test_stop_group_takes_down_a_grandchild_that_ignores_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"ready"
    assert len(group_members(proc.pid)) == 2
    await stop_group(proc, grace_s=5.0)
    assert proc.returncode is not None
    assert _gone(proc.pid)


def test_terminate_group_kills_a_child_that_ignores_sigterm_after_the_grace_period() -> None:
    child = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE, start_new_session=True)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    child.returncode = 0  # terminate_group reaps it; Popen must not try again (or warn) when collected
    terminate_group(child.pid, grace_s=0.3)
    assert not pid_alive(child.pid)
    assert _gone(child.pid)
