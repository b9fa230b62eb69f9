"""Which process is running a run, so a second process running the same spec does not resume it meanwhile.

The process that starts or resumes a run claims it in the ledger ("host:pid") and renews the claim every few
seconds while it works. Another process that finds the run `running` resumes it only if its owner is gone:
on this machine, its process has exited; on another machine (a shared PostgreSQL ledger), it has not renewed
its claim for `STALE_AFTER`. So a run killed with `kill -9` is resumed at once on the same machine, and a run
on a worker that vanished is resumed once its claim has gone stale.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from ledger import Ledger
from providers import pid_alive, utc_now

RENEW_EVERY_S = 10.0
STALE_AFTER = timedelta(seconds=60)
logger = logging.getLogger("switchboard.ownership")


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_active(owner: str, heartbeat_at: datetime | None) -> bool:
    """Whether the process named by `owner` may still be running its run."""
    fresh = heartbeat_at is not None and utc_now() - heartbeat_at < STALE_AFTER
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        # A live pid with a stale claim is a recycled pid (or a process stuck for a minute): not the owner.
        return fresh and pid_alive(int(pid))
    return fresh


def process_gone(owner: str) -> bool:
    """Whether `owner` ("host:pid") is a process on this machine that has exited. One on another machine cannot be
    told gone without a claim it renews (runs have one, see `owner_active`)."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


@contextmanager
def claim_renewed(ledger: Ledger, run_id: str, owner: str | None = None) -> Iterator[None]:
    """While the body runs, renew this process's claim on the run in the background."""
    owner = owner or this_owner()
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_EVERY_S):
            try:
                if not ledger.renew_run_claim(run_id, owner):
                    logger.warning("run %s was taken over by another process", run_id)
                    return
            except Exception:  # a busy database must not fail the run; the next renewal may get through
                logger.warning("could not renew the claim on run %s", run_id, exc_info=True)

    thread = threading.Thread(target=renew, name="switchboard-run-claim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


__all__ = ["RENEW_EVERY_S", "STALE_AFTER", "claim_renewed", "owner_active", "process_gone", "this_owner"]
