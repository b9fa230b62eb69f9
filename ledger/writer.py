"""Group commit: attempt rows and task outcomes from many concurrent calls share one transaction.

Every attempt must be committed before its task is reported complete (DESIGN.md), but one commit per attempt
caps a SQLite ledger at a few hundred calls per second. The writer thread takes whatever is queued, commits
it together and then resolves each item's future, so a caller that awaits its future knows its row is
durable.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from ledger.records import AttemptRecord, TaskOutcome
from ledger.store import Ledger, insert_attempts, update_outcomes

_STOP = object()
MAX_BATCH = 2000

# An attempt row, or a task's final state with its run id.
_Item = AttemptRecord | tuple[str, TaskOutcome]


class LedgerWriter:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._queue: queue.SimpleQueue[tuple[_Item, Future[None]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="switchboard-ledger-writer", daemon=True)
        self._thread.start()

    def submit(self, attempt: AttemptRecord) -> Future[None]:
        """Queue an attempt row; the future completes once it is committed (or fails with the database error)."""
        return self._put(attempt)

    def submit_outcome(self, run_id: str, outcome: TaskOutcome) -> Future[None]:
        """Queue a task's final state; it commits in order with (and after) the attempts queued before it."""
        return self._put((run_id, outcome))

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _put(self, item: _Item) -> Future[None]:
        done: Future[None] = Future()
        self._queue.put((item, done))
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            stopping = first is _STOP
            batch: list[tuple[_Item, Future[None]]] = [] if stopping else [first]  # type: ignore[list-item]
            while not stopping and len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                else:
                    batch.append(more)  # type: ignore[arg-type]
            if batch:
                self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[tuple[_Item, Future[None]]]) -> None:
        attempts = [item for item, _ in batch if isinstance(item, AttemptRecord)]
        outcomes = [item for item, _ in batch if not isinstance(item, AttemptRecord)]
        try:
            with self._ledger.engine.begin() as conn:
                insert_attempts(conn, attempts)
                update_outcomes(conn, outcomes)  # type: ignore[arg-type]
        except Exception as exc:  # the callers decide; the writer keeps serving later items
            for _, done in batch:
                done.set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)
