"""One long-lived event loop per process for the engine's async work.

Prefect's thread-pool runner calls tasks on several threads; an httpx client made on one loop fails on
another, so every provider call runs on this loop and threads hand their coroutines to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="switchboard-engine", daemon=True)
        self._thread.start()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None, *, cleanup: bool = False) -> T:
        """Run `coro` on the engine loop and wait for it from the calling (non-loop) thread.

        While stopping, only `cleanup` work (closing clients and processes) is accepted.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("EngineLoop.run called from the engine loop itself; await the coroutine instead")
        return self.submit(coro, cleanup=cleanup).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T], *, cleanup: bool = False) -> concurrent.futures.Future[T]:
        """Start `coro` on the engine loop; the returned future completes with its result."""
        if self._stopping.is_set() and not cleanup:
            coro.close()
            raise concurrent.futures.CancelledError("the engine is stopping (interrupted)")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def in_flight(self) -> int:
        """Coroutines currently running on the loop."""

        async def count() -> int:
            return len(asyncio.all_tasks(self._loop)) - 1  # minus this one

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(1.0)

    def resume(self) -> None:
        """Accept work again after `cancel_all` (tests, or a long-lived process that handled an interrupt)."""
        self._stopping.clear()

    def cancel_all(self) -> None:
        """Cancel every coroutine in flight and refuse new ones (Ctrl-C): providers stop calls and child processes."""
        self._stopping.set()

        def cancel() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel)


_start_lock = threading.Lock()


def engine_loop() -> EngineLoop:
    """The process's engine loop, started on first use.

    Prefect starts several tasks at once on its thread pool; without the lock two of them could each start a
    loop, each owning some providers' clients, with ledger futures settled on the wrong loop (a hang).
    """
    with _start_lock:
        return _the_engine_loop()


@cache
def _the_engine_loop() -> EngineLoop:
    return EngineLoop()
