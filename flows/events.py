"""Routing domain events -> Prefect events (for automations) and the ledger's `provider_events` table.

The routing engine calls its observer on its own hot path (often on the engine loop), so the forwarder only
enqueues: a daemon thread emits the Prefect event (itself buffered by Prefect's EventsWorker) and writes the
ledger row. A broken Prefect connection or a locked database is logged and skipped; it never raises into
routing. Prefect event names are `switchboard.<kind>`, e.g. `switchboard.circuit.opened`.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ledger import Ledger
from routing import (
    BUDGET_EXHAUSTED,
    CIRCUIT_CLOSED,
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPENED,
    QUOTA_BLOCKED,
    QUOTA_FORECAST_CROSSED,
    QUOTA_RESET,
    RoutingEvent,
    plain_detail,
    record_event,
)

logger = logging.getLogger("switchboard.events")

# State changes worth an automation. Failovers happen per failed attempt (thousands in a bad batch); they are
# in the ledger's attempt rows and the run's failover artifact, so they are not forwarded unless asked.
DEFAULT_KINDS = frozenset(
    {
        CIRCUIT_OPENED,
        CIRCUIT_HALF_OPEN,
        CIRCUIT_CLOSED,
        QUOTA_FORECAST_CROSSED,
        QUOTA_BLOCKED,
        QUOTA_RESET,
        BUDGET_EXHAUSTED,
    }
)
_STOP = object()


def prefect_event_name(kind: str) -> str:
    return f"switchboard.{kind}"


def resource_for(event: RoutingEvent) -> dict[str, str]:
    """The Prefect resource an event is about: the provider, else the router as a whole."""
    if event.provider_id is None:
        return {"prefect.resource.id": "switchboard.router", "prefect.resource.name": "switchboard router"}
    resource = {
        "prefect.resource.id": f"switchboard.provider.{event.provider_id}",
        "prefect.resource.name": event.provider_id,
    }
    if event.subscription:
        resource["switchboard.subscription"] = event.subscription
    return resource


class PrefectEventForwarder:
    """A `RoutingObserver` that forwards routing events to Prefect and records them in the ledger.

    Create it where the Prefect context is the one events should belong to (inside the flow run, so each
    event is related to that flow run); the delivery thread runs in a copy of that context.
    """

    def __init__(
        self,
        ledger: Ledger | None,
        *,
        kinds: Iterable[str] | None = DEFAULT_KINDS,
        emit: bool = True,
        max_queue: int = 10_000,
    ) -> None:
        self._ledger = ledger
        self._kinds = None if kinds is None else frozenset(kinds)  # None: forward every kind
        self._emit_enabled = emit
        self._queue: queue.Queue[RoutingEvent | object] = queue.Queue(maxsize=max_queue)
        self._context = contextvars.copy_context()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self.dropped = 0

    def __call__(self, event: RoutingEvent) -> None:
        if self._kinds is not None and event.kind not in self._kinds:
            return
        try:
            self._ensure_thread()
            self._queue.put_nowait(event)
        except queue.Full:
            # Never stall routing: a flood beyond the queue loses events, and says so.
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("routing event queue full; %d event(s) dropped so far", self.dropped)
        except Exception:
            logger.exception("could not queue routing event %s", event.kind)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event has been handed to Prefect and written to the ledger."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued and stop the delivery thread (call it when the run ends)."""
        self.flush(timeout)
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            atexit.unregister(self._flush_at_exit)
            self._queue.put(_STOP)
            thread.join(timeout)

    def _flush_at_exit(self) -> None:
        # A daemon thread dies with the interpreter; give queued events a moment if nobody called close().
        self.flush(timeout=5.0)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="switchboard-events", daemon=True)
                self._thread.start()
                atexit.register(self._flush_at_exit)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, RoutingEvent)
                # Only this thread enters the copied context, so it is never entered twice at once.
                self._context.run(self._deliver, item)
            finally:
                self._queue.task_done()

    def _deliver(self, event: RoutingEvent) -> None:
        if self._emit_enabled:
            try:
                from prefect.events import emit_event

                emit_event(
                    event=prefect_event_name(event.kind),
                    resource=resource_for(event),
                    occurred=event.at,
                    payload=plain_detail(event.detail),
                )
            except Exception:
                logger.warning("could not emit Prefect event for %s", event.kind, exc_info=True)
        if self._ledger is not None:
            try:
                record_event(self._ledger, event)
            except Exception:
                logger.warning("could not record routing event %s in the ledger", event.kind, exc_info=True)


def circuit_opened_automation(
    name: str = "switchboard: provider circuit keeps opening",
    *,
    threshold: int = 3,
    within_s: float = 600,
    actions: Iterable[Any] | None = None,
) -> Any:
    """The example automation from docs/prefect.md: fires when one provider's circuit opens `threshold` times
    within `within_s` seconds. `actions` default to DoNothing (the event still shows in the UI); pass e.g.
    `SendNotification(block_document_id=..., subject=..., body=...)` to be told. Call `.create()` to save it."""
    from prefect.automations import Automation, DoNothing, EventTrigger

    return Automation(
        name=name,
        description="A provider's circuit breaker opened repeatedly: it is failing, routing avoids it.",
        trigger=EventTrigger(
            expect={prefect_event_name(CIRCUIT_OPENED)},
            match={"prefect.resource.id": "switchboard.provider.*"},
            for_each={"prefect.resource.id"},  # count per provider, not across all of them
            posture="Reactive",
            threshold=threshold,
            within=timedelta(seconds=within_s),
        ),
        actions=list(actions) if actions is not None else [DoNothing()],
    )


__all__ = [
    "DEFAULT_KINDS",
    "PrefectEventForwarder",
    "circuit_opened_automation",
    "prefect_event_name",
    "resource_for",
]
