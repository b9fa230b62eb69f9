"""Group commit: attempt rows and task outcomes from many concurrent calls share one transaction.

Every attempt must be committed before its task is reported complete (DESIGN.md), but one commit per attempt
caps a ledger at a few hundred calls per second. Items queue up and are committed together; each item's
future resolves once its row is durable.

Two ways to run the commits:
- on the caller's event loop (SQLite): items submitted during one loop iteration are committed by a callback
  scheduled for the next one. A SQLite commit in WAL mode takes tens of microseconds, less than handing the
  rows to another thread and being woken again, and nothing crosses threads;
- on a writer thread (other databases, and callers without a running loop): a network round trip to
  PostgreSQL must not stall the routing engine's loop.

Nothing handed to the writer is dropped. A group commit that fails is retried row by row (one refused row must
not take the others with it); when the database itself is out of reach, or a row is still refused, the rows go
to the local spool (ledger.spool), fsynced, and their futures complete: the rows are safe, and they are written
to the ledger by this writer once a later commit succeeds, else at the next start. One warning line says so.
A future fails only when even the spool cannot be written.

Ledger I/O never stalls the routing loop: on the loop, a SQLite commit waits at most `LOOP_BUSY_MS` for a write
lock. When another process holds the lock (a backup, a long transaction), this writer moves to its thread for
good, where the commit may wait as long as the database's own busy timeout (30 s) while routing, health checks
and timeouts go on; the callers' futures complete from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from ledger.db import out_of_reach, short_error, shown_url
from ledger.records import AttemptRecord, TaskOutcome
from ledger.spool import Spool
from ledger.store import Ledger, insert_attempts, update_outcomes

log = logging.getLogger(__name__)

_STOP = object()
MAX_BATCH = 2000
# How long a commit on the routing loop may wait for another process's write lock before moving off the loop.
LOOP_BUSY_MS = 50

# An attempt row, or a task's final state with its run id.
_Item = AttemptRecord | tuple[str, TaskOutcome]
_Done = Future[None] | asyncio.Future[None]


class LedgerWriter:
    def __init__(
        self,
        ledger: Ledger,
        *,
        on_loop: bool | None = None,
        on_unreachable: Callable[[Exception], None] | None = None,
    ) -> None:
        self._ledger = ledger
        # Told once when the database cannot be reached even on a fresh connection (the run should stop paying
        # for answers it can only spool); a killed connection alone is replaced without a word.
        self._on_unreachable = on_unreachable
        self.unreachable: Exception | None = None
        self._on_loop = ledger.engine.dialect.name == "sqlite" if on_loop is None else on_loop
        self._lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._connection: Connection | None = None
        # loop mode
        self._pending: list[tuple[_Item, _Done]] = []
        self._flush_scheduled = False
        # thread mode, started on first use
        self._queue: queue.SimpleQueue[tuple[_Item, _Done] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.spool = Spool(ledger.url)
        self._warned = False
        self._closed = False

    def submit(self, attempt: AttemptRecord) -> _Done:
        """Queue an attempt row; the future completes once it is committed (or fails with the database error)."""
        return self._put(attempt)

    def submit_outcome(self, run_id: str, outcome: TaskOutcome) -> _Done:
        """Queue a task's final state; it commits in order with (and after) the attempts queued before it."""
        return self._put((run_id, outcome))

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the writer thread (if any) and release the connection."""
        with self._thread_lock:  # from here on, submissions are written by their callers (see _put_threaded)
            self._closed = True
            if self._thread is not None:
                self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._pending:  # submitted on a loop that stopped before its flush ran
                batch, self._pending = self._pending, []
                self._commit(batch)
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # --- loop mode ---------------------------------------------------------------------------------

    def _put(self, item: _Item) -> _Done:
        loop = _running_loop() if self._on_loop else None
        if loop is None:
            return self._put_threaded(item)
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((item, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return done

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._on_loop:
            with self._lock:
                try:
                    self._commit(batch, locked_out=True)
                    return
                except _LockedOut:
                    self._drop_connection()
                    self._on_loop = False
                    log.warning(
                        "the ledger at %s is locked by another process; its writes go on off the routing loop",
                        shown_url(self._ledger.url),
                    )
        for entry in batch:  # to the writer thread, in order, ahead of anything submitted after
            self._start_thread()
            self._queue.put(entry)

    # --- thread mode -------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        # Not under `_lock`: the writer thread holds that while it waits on the database, and the routing loop
        # must never wait for it.
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="switchboard-ledger-writer", daemon=True)
                self._thread.start()

    def _put_threaded(self, item: _Item) -> _Done:
        done: Future[None] = Future()
        with self._thread_lock:
            if not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="switchboard-ledger-writer", daemon=True)
                    self._thread.start()
                self._queue.put((item, done))
                return done
        # A straggler after close (a node finishing as its run is torn down): written here, by its caller.
        with self._lock:
            self._commit([(item, done)])
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            stopping = first is _STOP
            batch: list[tuple[_Item, _Done]] = [] if stopping else [first]  # type: ignore[list-item]
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
                with self._lock:
                    self._commit(batch)
            if stopping:
                return

    # --- both --------------------------------------------------------------------------------------

    def _commit(self, batch: list[tuple[_Item, _Done]], *, locked_out: bool = False) -> None:
        """One transaction for the whole batch; called with `_lock` held. `locked_out`: on the routing loop, where
        another process's write lock raises `_LockedOut` (nothing resolved) instead of being waited for."""
        attempts = [item for item, _ in batch if isinstance(item, AttemptRecord)]
        outcomes: list[Any] = [item for item, _ in batch if not isinstance(item, AttemptRecord)]
        try:
            conn = self._connect()
            with conn.begin():
                insert_attempts(conn, attempts)
                update_outcomes(conn, outcomes)
        except Exception as exc:
            if locked_out and _is_locked(exc):
                raise _LockedOut from exc
            self._drop_connection()
            self._salvage(batch, exc)
            return
        if self.spool.rows:  # the database answers again: what waited goes in before these are acknowledged
            self._replay_spool()
        for _, done in batch:
            _resolve(done, None)

    def _commit_all(self, batch: list[tuple[_Item, _Done]]) -> None:
        conn = self._connect()
        with conn.begin():
            insert_attempts(conn, [item for item, _ in batch if isinstance(item, AttemptRecord)])
            update_outcomes(conn, [item for item, _ in batch if not isinstance(item, AttemptRecord)])
        for _, done in batch:
            _resolve(done, None)

    def _lost(self, error: Exception) -> None:
        if self.unreachable is not None:
            return
        self.unreachable = error
        if self._on_unreachable is not None:
            try:
                self._on_unreachable(error)
            except Exception:  # the rows are spooled whatever the callback does
                log.exception("on_unreachable failed")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on the writer's connection (a failed one drops it, as every failed commit here does)."""
        conn = self._connect()
        try:
            with conn.begin():
                yield conn
        except Exception:
            self._drop_connection()
            raise

    def _connect(self) -> Connection:
        conn = self._connection
        if conn is None or conn.closed:
            # One long-lived connection: checking one out of the pool per commit costs as much as the commit.
            conn = self._connection = self._ledger.engine.connect()
            if self._on_loop and conn.dialect.name == "sqlite":
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {LOOP_BUSY_MS}")
                conn.commit()  # the statement began a transaction; commits begin their own
        return conn

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already gone with its server
                self._connection.invalidate()
            self._connection = None

    def _salvage(self, batch: list[tuple[_Item, _Done]], error: Exception) -> None:
        """After a failed group commit: each row in a transaction of its own, the rest to the spool."""
        failed: list[tuple[_Item, _Done]] = []
        reason = error
        if out_of_reach(error):
            # A connection killed under us (a failover, pg_terminate_backend) is not the database gone: once more
            # on a fresh one. Row by row would only wait on the same dead server again.
            try:
                self._commit_all(batch)
                return
            except Exception as again:
                self._drop_connection()
                reason = again
                failed = batch
                if out_of_reach(again) and not _is_locked(again):  # locked is busy, not gone: the run goes on
                    self._lost(again)
        else:
            for index, (item, done) in enumerate(batch):
                try:
                    conn = self._connect()
                    with conn.begin():
                        if isinstance(item, AttemptRecord):
                            insert_attempts(conn, [item])
                        else:
                            update_outcomes(conn, [item])
                except Exception as exc:
                    self._drop_connection()
                    if _callers_mistake(exc):  # e.g. a task "finished" as pending: no database would take it
                        _resolve(done, exc)
                        continue
                    failed.append((item, done))
                    reason = exc
                    if out_of_reach(exc):
                        failed.extend(batch[index + 1 :])
                        break
                    continue
                _resolve(done, None)
        if not failed:
            return
        try:
            self.spool.add(item for item, _ in failed)
        except Exception as spool_error:  # nowhere left to keep them: the callers must hear it
            log.error("could not spool %d ledger rows to %s: %s", len(failed), self.spool.path, spool_error)
            for _, done in failed:
                _resolve(done, reason)
            return
        if not self._warned:
            self._warned = True
            log.warning(
                "the ledger at %s did not take %d row(s) (%s); kept in %s and written there when it answers again, "
                "else at the next start",
                shown_url(self._ledger.url), len(failed), short_error(reason), self.spool.path,
            )  # fmt: skip
        for _, done in failed:
            _resolve(done, None)

    def _replay_spool(self) -> None:
        """The database answers again: write back what this writer spooled (rows it refuses stay for the next
        start, see Spool.replay)."""
        try:
            replayed = self.spool.replay(self._transaction)
        except Exception as exc:  # out of reach again: the next commit tries again, or the next start
            self._drop_connection()
            log.debug("spool replay deferred: %s", exc)
            return
        if replayed:
            log.warning("wrote %d spooled row(s) to the ledger at %s", replayed, shown_url(self._ledger.url))


class _LockedOut(Exception):
    """A commit on the routing loop met another process's write lock."""


def _is_locked(error: Exception) -> bool:
    return isinstance(error, OperationalError) and any(w in str(error.orig) for w in ("locked", "busy"))


def _callers_mistake(error: Exception) -> bool:
    """Refused before any database saw it (our own validation); spooling it would only fail again later."""
    return isinstance(error, ValueError) and not isinstance(error, UnicodeError)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(done: _Done, error: Exception | None) -> None:
    if isinstance(done, asyncio.Future) and _running_loop() is not done.get_loop():
        # Made on the routing loop, resolved by the writer thread: only its loop may touch it.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            done.get_loop().call_soon_threadsafe(_resolve, done, error)
        return
    if done.done():  # an asyncio future whose waiter was cancelled
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
