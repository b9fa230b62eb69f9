"""The batch flow's heartbeat, without the second a sync flow spends stopping Prefect's.

Prefect emits `prefect.flow-run.heartbeat` events (what its crashed-run automations watch) from a thread that
sleeps in one-second steps, and a sync flow joins that thread on exit: every run in this process paid up to
1 s after its work was done (PREFECT.md measured 1.1 s for an empty sync flow). `in_process_heartbeat` turns
the engine's heartbeat off for a flow run started here, and `flow_heartbeat`, entered by the flow body, sends
the same event at the same frequency from a thread that stops the moment the body ends. A flow run started
elsewhere (a worker running a deployment) keeps Prefect's own heartbeat and `flow_heartbeat` does nothing.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import __version__ as prefect_version
from prefect.context import FlowRunContext, SettingsContext, get_settings_context
from prefect.events import emit_event
from prefect.events.related import tags_as_related_resources

# Prefect's own floor for the interval (flow_engine.MINIMUM_HEARTBEAT_INTERVAL).
MIN_INTERVAL_S = 30
logger = logging.getLogger("switchboard.heartbeat")

# Seconds between heartbeats that the flow body must send itself; None where Prefect's engine sends them.
_own_interval: contextvars.ContextVar[int | None] = contextvars.ContextVar("switchboard_heartbeat", default=None)


@contextmanager
def in_process_heartbeat() -> Iterator[None]:
    """Around a flow call in this process: the engine sends no heartbeat, the flow body sends it instead."""
    current = get_settings_context()
    interval = current.settings.flows.heartbeat_frequency
    if interval is None:  # the user turned heartbeats off
        yield
        return
    # A copy of the settings with one value changed; prefect.settings.temporary_settings would rebuild and
    # revalidate them from every source (measured 10-25 ms, on the path of every run).
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    quiet = current.settings.model_copy(update={"flows": flows})
    token = _own_interval.set(max(interval, MIN_INTERVAL_S))
    try:
        with SettingsContext(profile=current.profile, settings=quiet):
            yield
    finally:
        _own_interval.reset(token)


@contextmanager
def flow_heartbeat() -> Iterator[None]:
    """Inside the flow body: send the flow run's heartbeat if `in_process_heartbeat` took it from the engine."""
    interval = _own_interval.get()
    context = FlowRunContext.get()
    if interval is None or context is None or context.flow_run is None:
        yield
        return
    resource, related = _heartbeat_resources(context)
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                emit_event(event="prefect.flow-run.heartbeat", resource=resource, related=related)
            except Exception:  # a missed heartbeat must never fail the run
                logger.debug("could not emit the flow run heartbeat", exc_info=True)
            if stop.wait(interval):
                return

    # The thread runs in a copy of this context so it talks to the same Prefect API as the flow run.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(beat,), name="switchboard-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()  # wakes the thread at once: no join, nothing to wait for


def _heartbeat_resources(context: FlowRunContext) -> tuple[dict[str, str], list[Any]]:
    """The resource and related resources Prefect's engine puts on a flow run's heartbeat."""
    run = context.flow_run
    assert run is not None
    resource = {
        "prefect.resource.id": f"prefect.flow-run.{run.id}",
        "prefect.resource.name": run.name or "",
        "prefect.version": prefect_version,
    }
    related: list[Any] = []
    if run.flow_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow.{run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": context.flow.name if context.flow else "",
            }
        )
    if run.deployment_id:
        related.append(
            {"prefect.resource.id": f"prefect.deployment.{run.deployment_id}", "prefect.resource.role": "deployment"}
        )
    related += tags_as_related_resources(run.tags or [])
    return resource, related


__all__ = ["flow_heartbeat", "in_process_heartbeat"]
