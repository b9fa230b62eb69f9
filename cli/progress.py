"""A live progress line on stderr, fed by polling the ledger (works whichever runner executes the tasks)."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger import Ledger

POLL_S = 0.25


class LedgerProgress:
    def __init__(self, ledger: Ledger, run_id: str, *, total: int, console: Console) -> None:
        self._ledger, self._run_id = ledger, run_id
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._bar = self._progress.add_task(run_id, total=total, detail="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="switchboard-progress", daemon=True)

    def __enter__(self) -> LedgerProgress:
        if self._progress.console.is_terminal:
            self._progress.start()
            self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._progress.stop()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                counts = self._ledger.task_status_counts(self._run_id)
            except Exception:  # a busy database must not kill the display; the next poll tries again
                continue
            finished = sum(n for status, n in counts.items() if status != "pending")
            detail = " ".join(f"{status} {n}" for status, n in sorted(counts.items()) if status != "pending")
            self._progress.update(self._bar, completed=finished, detail=detail)


__all__ = ["LedgerProgress"]
