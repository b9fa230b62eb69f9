"""The live feed behind `WS /api/v1/ws`: provider health, circuit and quota changes, calls in flight and batch
progress, pushed to every subscriber when they change, plus a heartbeat.

One sampler runs while anyone listens: it takes the router's live views on the engine loop every
`interval_s`, compares each provider's with the last one sent (ignoring what only ages, such as "checked 3 s
ago"), and reads the running batches' progress from the ledger every `runs_every_s`. Each subscriber has a
bounded queue; a subscriber whose queue is full (it does not read fast enough) is dropped, so one slow client
never holds up the others or the sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from typing import Any

from api.state import ApiState
from batches import API_RUN_PREFIX
from flows import ui_url
from ledger import AttemptRecord, RunStatus, is_failover
from providers import utc_now
from routing import ProviderLiveView, engine_loop, provider_views

log = logging.getLogger(__name__)

FAILOVER_WINDOW = timedelta(minutes=15)
MAX_FAILOVERS = 20


def prefect_ui() -> str:
    """The Prefect UI the runs' pages are on: PREFECT_API_URL's server, else the managed local one."""
    api = os.environ.get("PREFECT_API_URL")
    return api.rstrip("/").removesuffix("/api") if api else ui_url()


# Fields that change by the passing of time alone; a change in them is not news.
_AGEING = {"checked_s_ago", "open_for_s", "exhausted_in_s", "exhausted_at", "cooling_off_s"}


@dataclass(frozen=True)
class FeedSettings:
    interval_s: float = 0.5
    runs_every_s: float = 2.0
    heartbeat_s: float = 10.0
    queue_size: int = 256  # messages a subscriber may fall behind by before it is dropped
    send_timeout_s: float = 5.0  # a send that does not go out in this long drops the subscriber


def _settled(value: Any) -> Any:
    """`value` without the fields that only age, for comparison."""
    if isinstance(value, dict):
        return {k: _settled(v) for k, v in value.items() if k not in _AGEING}
    if isinstance(value, list):
        return [_settled(v) for v in value]
    return value


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, message: dict[str, Any]) -> bool:
        """Queue `message`; False (and the subscriber marked dropped) when it is too far behind."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped.set()
            return False
        return True


class Feed:
    def __init__(self, state: ApiState, settings: FeedSettings | None = None) -> None:
        self.state = state
        self.settings = settings or FeedSettings()
        self._subscribers: set[Subscriber] = set()
        self._sampler: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_providers: dict[str, Any] = {}
        self._last_runs: Any = None
        self._last_failovers: Any = None
        self.dropped = 0  # subscribers dropped for being slow, since start

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def snapshot(self) -> dict[str, Any]:
        """Everything the feed knows now, as one message (a new subscriber's first)."""
        views = await self._views()
        return {
            "type": "snapshot",
            "at": utc_now().isoformat(),
            "providers": [v.model_dump(mode="json") for v in views],
            "runs": await asyncio.to_thread(self._runs),
            "failovers": await asyncio.to_thread(self._failovers),
        }

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(asyncio.Queue(self.settings.queue_size))
        self._subscribers.add(subscriber)
        self._loop = asyncio.get_running_loop()  # the server's: subscribers' queues belong to it
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._sample(), name="switchboard-feed")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler

    # --- the sampler ------------------------------------------------------------------------------

    def publish(self, message: dict[str, Any]) -> None:
        """Offer `message` to every subscriber (from any thread); a subscriber too far behind is dropped."""
        loop = self._loop
        if loop is None:
            return  # nobody has subscribed yet
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._offer(message)
        else:
            loop.call_soon_threadsafe(self._offer, message)

    def _offer(self, message: dict[str, Any]) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.offer(message):
                self._subscribers.discard(subscriber)
                self.dropped += 1
                log.info("dropped a feed subscriber that fell %d messages behind", self.settings.queue_size)

    async def _views(self) -> list[ProviderLiveView]:
        return await asyncio.wrap_future(engine_loop().submit(provider_views(self.state.engine.router)))

    async def _sample(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        next_runs = next_beat = loop.time()
        first = True
        while self._subscribers:
            try:
                await self._providers_changed(quiet=first)
                now = loop.time()
                if now >= next_runs:
                    next_runs = now + settings.runs_every_s
                    runs = await asyncio.to_thread(self._runs)
                    if runs != self._last_runs:
                        if not first:
                            self.publish({"type": "runs", "at": utc_now().isoformat(), "runs": runs})
                        self._last_runs = runs
                    failovers = await asyncio.to_thread(self._failovers)
                    if failovers != self._last_failovers:
                        if not first:
                            self.publish({"type": "failovers", "at": utc_now().isoformat(), "failovers": failovers})
                        self._last_failovers = failovers
                if now >= next_beat:
                    next_beat = now + settings.heartbeat_s
                    self.publish({"type": "heartbeat", "at": utc_now().isoformat(), "subscribers": self.subscribers})
            except Exception:  # the feed must outlive a database hiccup
                log.exception("the live feed could not sample")
            first = False
            await asyncio.sleep(settings.interval_s)

    async def _providers_changed(self, quiet: bool) -> None:
        """Publish each provider whose state changed since the last sample (only remember, when `quiet`)."""
        for view in await self._views():
            document = view.model_dump(mode="json")
            settled = _settled(document)
            if self._last_providers.get(view.id) != settled:
                self._last_providers[view.id] = settled
                if not quiet:
                    self.publish({"type": "provider", "at": utc_now().isoformat(), "provider": document})

    def _runs(self) -> list[dict[str, Any]]:
        """Recent batch runs with their progress (task counts by status) and their page in the Prefect UI; the
        API's day runs left out."""
        ledger = self.state.ledger
        out = []
        for run in ledger.list_runs(10):
            if run.run_id.startswith(API_RUN_PREFIX):
                continue
            counts = ledger.task_status_counts(run.run_id) if run.status == RunStatus.RUNNING else {}
            out.append(
                {
                    "id": run.run_id,
                    "name": run.batch_name,
                    "status": str(run.status),
                    "flow_run_id": run.flow_run_id,
                    "ui_url": f"{prefect_ui()}/runs/flow-run/{run.flow_run_id}" if run.flow_run_id else None,
                    "tasks": {str(status): n for status, n in counts.items()},
                }
            )
        return out

    def _failovers(self) -> list[dict[str, Any]]:
        """The last failovers (a failed attempt followed by another provider's) of the past 15 minutes, newest first."""
        now = utc_now()
        by_task: dict[tuple[str, str], list[AttemptRecord]] = {}
        for a in self.state.ledger.attempts_between(now - FAILOVER_WINDOW, now):
            by_task.setdefault((a.run_id, a.task_id), []).append(a)
        found = []
        for (run_id, task_id), attempts in by_task.items():
            attempts.sort(key=lambda a: a.attempt)
            for before, after in pairwise(attempts):
                if is_failover(before, after):
                    found.append(
                        {
                            "at": after.started_at.isoformat(),
                            "run_id": run_id,
                            "task_id": task_id,
                            "from": before.provider_id,
                            "to": after.provider_id,
                            "reason": before.outcome + (f" ({before.error_type})" if before.error_type else ""),
                        }
                    )
        found.sort(key=lambda f: f["at"], reverse=True)
        return found[:MAX_FAILOVERS]


__all__ = ["Feed", "FeedSettings", "Subscriber"]
