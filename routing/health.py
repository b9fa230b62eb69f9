"""Provider health as routing sees it: cached checks refreshed in the background, never probed per decision.

`HealthMonitor` runs on the engine loop: it checks every provider when routing starts (without holding up the
first decisions) and again whenever a provider's `health_ttl_s` has passed, through `provider.health()`, whose
own cache spares a provider that something else (the `provider_health` flow, `providers --check`) checked
moments ago. A provider whose last check said `unhealthy` is skipped with reason `unhealthy: <detail>` until
a fresh check or a successful call says otherwise. `degraded` (it answers, with trouble) is not skipped: the
circuit breaker and quota state judge it call by call.

The monitor stops by itself once its router is gone or the router's providers are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

from providers import AIProvider, HealthStatus, ProviderHealth, utc_now

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 10.0
# Checks come no closer together than this, whatever the TTL (a TTL of 0 means "do not cache").
MIN_INTERVAL_S = 1.0
# A check scheduled exactly at the TTL could still read the provider's cached result; aim just past it.
_TTL_MARGIN_S = 0.05

Targets = Callable[[], list[tuple[AIProvider, "HealthView"]]]


class HealthView:
    """The last health verdict on one provider that routing acts on."""

    __slots__ = ("_on_change", "checked_at", "detail", "next_due", "status")

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.status = HealthStatus.UNKNOWN
        self.detail = ""
        self.checked_at: float | None = None
        self.next_due = 0.0
        self._on_change = on_change

    def refusal(self) -> str | None:
        if self.status is HealthStatus.UNHEALTHY:
            return f"unhealthy: {self.detail or 'failed its health check'}"
        return None

    def observe(self, health: ProviderHealth, next_due: float) -> None:
        changed = health.status is not self.status
        self.status, self.detail = health.status, health.detail
        self.checked_at, self.next_due = time.monotonic(), next_due
        if changed and self._on_change is not None:
            self._on_change()

    def call_succeeded(self) -> None:
        """A provider that just answered is not unhealthy, whatever its last check said."""
        if self.status is HealthStatus.UNHEALTHY:
            self.status, self.detail = HealthStatus.HEALTHY, "answered a call"

    def carry_over(self, old: HealthView) -> None:
        self.status, self.detail, self.checked_at = old.status, old.detail, old.checked_at
        # An updated provider (new URL, new key) is checked again at once.
        self.next_due = 0.0


class HealthMonitor:
    """Refreshes every target's `HealthView` in the background on the running loop."""

    def __init__(
        self, targets: Targets, *, timeout_s: float = HEALTH_TIMEOUT_S, min_interval_s: float = MIN_INTERVAL_S
    ) -> None:
        # Weak: the monitor must not keep its router alive.
        self._targets = weakref.WeakMethod(targets)  # type: ignore[arg-type]
        self._timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        """Start on the running loop unless already running there; cheap enough to call per decision."""
        task = self._task
        if task is not None and not task.done():
            try:
                if task.get_loop() is asyncio.get_running_loop():
                    return
            except RuntimeError:
                return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="switchboard-health")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def check_now(self) -> None:
        """Check every provider whose result is due (tests and callers that want a verdict before routing)."""
        targets = self._current()
        if targets:
            await self._check_due(targets)

    def _current(self) -> list[tuple[AIProvider, HealthView]]:
        targets = self._targets()
        return [] if targets is None else targets()

    async def _run(self) -> None:
        while True:
            targets = self._current()
            if not targets:
                return  # the router is gone or its providers were closed
            await self._check_due(targets)
            soonest = min(view.next_due for _, view in targets)
            del targets
            await asyncio.sleep(max(self.min_interval_s, soonest - time.monotonic()))

    async def _check_due(self, targets: list[tuple[AIProvider, HealthView]]) -> None:
        now = time.monotonic()
        due = [(p, v) for p, v in targets if v.next_due <= now]
        if due:
            await asyncio.gather(*(self._check(p, v) for p, v in due))

    async def _check(self, provider: AIProvider, view: HealthView) -> None:
        ttl = max(self.min_interval_s, provider.config.health_ttl_s)
        try:
            health = await asyncio.wait_for(provider.health(use_cache=True), self._timeout_s)
        except TimeoutError:
            health = ProviderHealth(
                status=HealthStatus.UNHEALTHY,
                checked_at=utc_now(),
                detail=f"health check took longer than {self._timeout_s:g}s",
            )
        except Exception:
            # A broken probe says nothing about the provider; keep the last verdict and try again later.
            log.warning("health check of %s raised", provider.provider_id, exc_info=True)
            view.next_due = time.monotonic() + ttl
            return
        view.observe(health, time.monotonic() + ttl + _TTL_MARGIN_S)
