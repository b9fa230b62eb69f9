"""Who owns a run: a live process on this machine, or a fresh claim from another one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from batches.ownership import STALE_AFTER, owner_active, this_owner


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_owner_on_this_machine_is_active_while_its_process_lives_and_renews() -> None:
    now = datetime.now(UTC)
    host = socket.gethostname()
    assert owner_active(this_owner(), now)
    assert this_owner() == f"{host}:{os.getpid()}"
    assert not owner_active(f"{host}:{_dead_pid()}", now)  # killed: resumable at once
    assert not owner_active(this_owner(), now - STALE_AFTER - timedelta(seconds=1))  # a recycled or stuck pid
    assert not owner_active(this_owner(), None)


def test_an_owner_elsewhere_is_active_while_its_claim_is_fresh() -> None:
    now = datetime.now(UTC)
    assert owner_active("worker-7.example:4242", now - timedelta(seconds=5))
    assert not owner_active("worker-7.example:4242", now - STALE_AFTER - timedelta(seconds=1))
