"""The response cache (`cache:` in the providers file, off by default; `cache: false` on a task opts it out).

A task identical to one answered within `ttl_s` is served that answer from the ledger instead of calling a
provider: recorded as an attempt on the `cache` provider at no cost and no tokens, marked a cache hit, naming the
attempt it came from and what that one cost (what the hit saved). Identical means the same key: task type, the
prompt as providers are sent it (upstream tasks' outputs included), the provider or model the task asks for,
its output limit, its workdir and its team. The team is in the lookup as well as the key, so an answer never
crosses teams (no team is a bucket of its own).

The lookup is a query on the ledger's `cache_key` index, run on a worker thread (`ledger_lookup`): the routing
loop never waits on the database. A lookup that fails (the database away) is a miss: the task is routed as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from ledger import CachedAnswer, Ledger
from providers import AITask, render_prompt, utc_now
from routing.config import CacheSettings

log = logging.getLogger(__name__)

# (key, team, answered at or after) -> the newest such answer, or None.
CacheLookup = Callable[[str, str | None, datetime], Awaitable[CachedAnswer | None]]


def cache_key(task: AITask, team: str | None) -> str:
    """What makes two tasks identical for the cache, hashed (sha256, hex)."""
    document = {
        "type": task.type,
        "prompt": render_prompt(task),
        "provider": task.metadata.get("provider"),
        "model": task.metadata.get("model"),
        "max_output_tokens": task.max_output_tokens,
        "workdir": task.workdir,
        "team": team,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def ledger_lookup(ledger: Ledger) -> CacheLookup:
    """Look answers up in `ledger`, on a worker thread."""

    async def lookup(key: str, team: str | None, since: datetime) -> CachedAnswer | None:
        return await asyncio.to_thread(ledger.cached_answer, key, team, since)

    return lookup


class ResponseCache:
    """The cache as the router uses it: a key for each task it may serve, and the answer for a key."""

    def __init__(
        self, settings: CacheSettings, lookup: CacheLookup, *, wall_clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._ttl = timedelta(seconds=settings.ttl_s)
        self._lookup = lookup
        self._wall_clock = wall_clock

    @staticmethod
    def key_for(task: AITask, team: str | None) -> str | None:
        """The task's key; None when the task opted out (`cache: false`)."""
        return cache_key(task, team) if task.cache else None

    async def find(self, key: str, team: str | None) -> CachedAnswer | None:
        """The newest answer for `key` of `team` within the TTL; None on a miss or when the ledger cannot say."""
        try:
            return await self._lookup(key, team, self._wall_clock() - self._ttl)
        except Exception as exc:  # any failure of the lookup is a miss: the task is routed as usual
            log.warning("response cache lookup failed (%s: %s); routing the task", type(exc).__name__, exc)
            return None


__all__ = ["CacheLookup", "ResponseCache", "cache_key", "ledger_lookup"]
