"""Group commit: attempt rows from many concurrent calls share one transaction.

Every attempt must be committed before its task is reported complete (DESIGN.md), but one commit per attempt
caps a SQLite ledger at a few hundred calls per second. The writer thread takes whatever rows are queued,
commits them together and then resolves each row's future, so a caller that awaits its future knows its row
is durable.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from ledger.records import AttemptRecord
from ledger.store import Ledger, insert_attempts

_STOP = object()
MAX_BATCH = 2000


class LedgerWriter:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._queue: queue.SimpleQueue[tuple[AttemptRecord, Future[None]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="switchboard-ledger-writer", daemon=True)
        self._thread.start()

    def submit(self, attempt: AttemptRecord) -> Future[None]:
        """Queue a row; the future completes once it is committed (or fails with the database error)."""
        done: Future[None] = Future()
        self._queue.put((attempt, done))
        return done

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[tuple[AttemptRecord, Future[None]]] = []
            stopping = item is _STOP
            if not stopping:
                batch.append(item)  # type: ignore[arg-type]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)  # type: ignore[arg-type]
            if batch:
                self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[tuple[AttemptRecord, Future[None]]]) -> None:
        try:
            with self._ledger.engine.begin() as conn:
                insert_attempts(conn, (a for a, _ in batch))
        except Exception as exc:  # the callers decide; the writer keeps serving later rows
            for _, done in batch:
                done.set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)
