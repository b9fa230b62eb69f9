"""Shared httpx plumbing for the HTTP providers (`anthropic`, `openai_compatible`).

One `HttpProvider` base owns what both need: a client per event loop, the single place where httpx transport
errors become `ProviderError`s, API-key lookup and redaction, the probe, and header parsing helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import re
import threading
import time
from abc import abstractmethod
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import Field

from providers.base import AIProvider, ProviderConfig, SecretResolver, env_secrets, utc_now
from providers.errors import (
    AuthenticationFailed,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    Unavailable,
)
from providers.models import (
    ExecutionContext,
    HealthStatus,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    QuotaSignal,
    TokenUsage,
)
from providers.redaction import redact, safe_url, shorten

log = logging.getLogger(__name__)

# Vendor error text goes into exceptions and the ledger; keep it readable there.
MAX_MESSAGE_CHARS = 300
_REDACTED = "[redacted]"


class HttpProviderConfig(ProviderConfig):
    """Keys shared by the HTTP providers; `timeout_s` is the read/write/pool timeout."""

    # None means the same as `timeout_s`.
    connect_timeout_s: float | None = Field(default=None, gt=0)


def _timeout(total_s: float, connect_s: float | None) -> httpx.Timeout:
    return httpx.Timeout(total_s, connect=connect_s if connect_s is not None else total_s)


class LoopClients:
    """One `httpx.AsyncClient` per event loop, created lazily inside that loop.

    A client's pooled connections belong to the loop that opened them, and Prefect runs tasks on several
    threads with a loop each, so one shared client fails as soon as a second loop uses it. Each client is
    closed on its own loop: by `aclose`, or when that loop shuts down (see `_closed_at_loop_shutdown`).
    """

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._clients: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]] = {}
        # Threads with different loops call `get` concurrently.
        self._lock = threading.Lock()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            for dead in [other for other in self._clients if other.is_closed()]:
                # Its loop's shutdown closed the client already; nothing can be awaited there now.
                del self._clients[dead]
            entry = self._clients.get(loop)
            if entry is None or entry[0].is_closed:
                client = self._factory()
                entry = self._clients[loop] = (client, _closed_at_loop_shutdown(client))
            return entry[0]

    async def aclose(self) -> None:
        with self._lock:
            entries, self._clients = self._clients, {}
        current = asyncio.get_running_loop()
        for loop, (_, closer) in entries.items():
            if loop is current:
                await closer.aclose()
            elif loop.is_running():
                # Another thread's loop owns these connections, so they must be closed there.
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(closer.aclose(), loop))
            # An idle loop finalises the dropped closer when it next runs or shuts down.


def _closed_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """An async generator, parked at its yield, whose `finally` closes `client`.

    Stepping it once registers it with the running loop (asyncio's firstiter hook), and `asyncio.run` closes
    every such generator before closing the loop: the only hook asyncio offers to release sockets on a
    short-lived loop, such as a worker thread's. The loop holds it weakly, so the caller keeps it.
    """

    async def closer() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await client.aclose()

    generator = closer()
    with contextlib.suppress(StopIteration):
        generator.asend(None).send(None)  # runs synchronously up to the yield
    return generator


class HttpProvider(AIProvider):
    """Base for providers that speak JSON over HTTP; subclasses build requests and map vendor errors."""

    config: HttpProviderConfig

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        *,
        secrets: SecretResolver = env_secrets,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(provider_id, config, secrets=secrets, clock=clock)
        self._transport = transport
        self._clients = LoopClients(self._new_client)

    # --- what subclasses provide ----------------------------------------------------------------

    @abstractmethod
    def _headers(self, context: ExecutionContext | None) -> dict[str, str]:
        """Request headers including auth; raises AuthenticationFailed when the key is missing."""

    def _params(self) -> dict[str, str]:
        """Query parameters sent with every request."""
        return {}

    @abstractmethod
    def _probe_url(self) -> str:
        """A cheap authenticated GET that proves the endpoint and the key work."""

    def _quota_signals(self, headers: httpx.Headers, context: ExecutionContext) -> list[QuotaSignal]:
        """What the response headers say about rate limits; read on every response."""
        return []

    @abstractmethod
    def _status_error(
        self, response: httpx.Response, retry_after_s: float | None, context: ExecutionContext
    ) -> ProviderError:
        """The error for a non-2xx response, from its status and the vendor's error body."""

    # --- shared behaviour -----------------------------------------------------------------------

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            task_types=self.task_types(),
            models=self.model_names(),
            max_concurrency=self.config.max_concurrency,
        )

    async def aclose(self) -> None:
        await self._clients.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        cfg = self.config
        return httpx.AsyncClient(
            timeout=_timeout(cfg.timeout_s, cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency),
            transport=self._transport,
        )

    def _url(self, path: str) -> str:
        return (self.config.base_url or "").rstrip("/") + path

    def _api_key(self, context: ExecutionContext | None) -> str | None:
        """The key named by `api_key_env`; None when no variable is configured (local servers)."""
        env_name = self.config.api_key_env
        if env_name is None:
            return None
        key = self.secret(env_name)
        if not key:
            raise self._error(
                AuthenticationFailed,
                f"API key environment variable {env_name} is not set",
                context,
                error_type="missing_api_key",
            )
        return key

    def _redact(self, text: str) -> str:
        """Vendor text can echo what we sent: the key, whole or cut at the text's edge, becomes a marker."""
        return redact(text, self.known_secrets(), _REDACTED)

    def _clean(self, text: str) -> str:
        """Redact the key first, then shorten: shortening first could cut the key and let half of it through."""
        return shorten(" ".join(self._redact(text).split()), MAX_MESSAGE_CHARS)

    def _error(
        self, cls: type[ProviderError], message: str, context: ExecutionContext | None, **kwargs: Any
    ) -> ProviderError:
        subscription = context.subscription if context else None
        return cls(self._clean(message), provider_id=self.provider_id, subscription=subscription, **kwargs)

    async def _send(
        self, method: str, url: str, context: ExecutionContext | None = None, **kwargs: Any
    ) -> tuple[httpx.Response, float]:
        """Send one request and time it; the only place where httpx transport errors become provider errors."""
        headers = self._headers(context)
        if "files" in kwargs:  # a multipart upload (a batch's input file): httpx sets the boundary's content type
            headers.pop("content-type", None)
        if context is not None and context.timeout_s is not None:
            kwargs["timeout"] = _timeout(context.timeout_s, self.config.connect_timeout_s)
        started = self._clock()
        try:
            response = await self._clients.get().request(method, url, headers=headers, params=self._params(), **kwargs)
        except httpx.TimeoutException as e:
            raise self._error(
                ProviderTimeout, f"{method} {_bare(url)}: {_describe(e)}", context, error_type=_snake(e)
            ) from e
        except httpx.TransportError as e:
            # ConnectError (refused, DNS) and protocol/read errors alike: this endpoint cannot answer now.
            raise self._error(
                Unavailable, f"{method} {_bare(url)}: {_describe(e)}", context, error_type=_snake(e)
            ) from e
        latency_ms = (self._clock() - started) * 1000
        log.debug("%s %s -> %s in %.0f ms", method, _bare(url), response.status_code, latency_ms)
        return response, latency_ms

    def _checked_json(self, response: httpx.Response, context: ExecutionContext) -> dict[str, Any]:
        """Report the quota headers, raise the mapped error for a failure, else the JSON object."""
        signals = self._quota_signals(response.headers, context)
        for signal in signals:
            self.report_quota(signal)
        if not response.is_success:
            retry_after = parse_retry_after(response.headers)
            if retry_after is None and response.status_code == 429:
                # No header says how long: wait for the limits the headers report (anthropic-sdk-typescript#357).
                retry_after = retry_after_from_resets(signals)
            raise self._status_error(response, retry_after, context)
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise self._error(
                MalformedResponse,
                f"HTTP {response.status_code} body is not a JSON object: {shorten(self._redact(response.text), 100)!r}",
                context,
                error_type="invalid_json",
            )
        return data

    async def _probe(self) -> ProviderHealth:
        try:
            response, latency_ms = await self._send("GET", self._probe_url())
        except ProviderError as e:
            return ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail=str(e))
        status = response.status_code
        if response.is_success:
            health, detail = HealthStatus.HEALTHY, ""
        elif status in (401, 403):
            health, detail = HealthStatus.UNHEALTHY, "authentication"
        elif status == 429 or status < 500:
            # The server answers; it is busy or lacks this endpoint, which says little about completions.
            health, detail = HealthStatus.DEGRADED, f"probe returned HTTP {status}"
        else:
            health, detail = HealthStatus.UNHEALTHY, f"probe returned HTTP {status}"
        return ProviderHealth(status=health, checked_at=utc_now(), latency_ms=latency_ms, detail=detail)

    def _answer(
        self,
        data: dict[str, Any],
        context: ExecutionContext,
        *,
        latency_ms: float,
        text: str,
        usage: TokenUsage,
        finish_reason: object,
        metadata: dict[str, object],
    ) -> ProviderResponse:
        """The response for a parsed answer, priced by the model that answered."""
        answered = data.get("model")
        asked = context.model or self.config.model
        model = answered if isinstance(answered, str) and answered else (asked or "")
        return ProviderResponse(
            text=text,
            model=model,
            usage=usage,
            # Priced by the model that answered; the configured name only when nothing knows the answer's.
            cost_usd=self.cost_of(usage, model, asked),
            latency_ms=latency_ms,
            subscription=context.subscription,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            metadata={k: v for k, v in metadata.items() if isinstance(v, str)},
        )

    def _quota_signal(
        self,
        context: ExecutionContext,
        kind: str,
        *,
        limit: float | None,
        remaining: float | None,
        reset_at: datetime | None,
    ) -> QuotaSignal | None:
        """A signal from one limit's headers, or None when the headers say nothing usable."""
        if limit is not None and limit <= 0:
            # Azure has sent -1/0 for limits it does not report; neither number means anything then.
            limit = remaining = None
        if remaining is not None and remaining < 0:
            remaining = None
        if limit is None and remaining is None and reset_at is None:
            return None
        utilization = None
        if limit is not None and remaining is not None:
            utilization = min(1.0, max(0.0, 1 - remaining / limit))
        return QuotaSignal(
            provider_id=self.provider_id,
            subscription=context.subscription,
            limit_kind=kind,
            limit=limit,
            remaining=remaining,
            utilization=utilization,
            reset_at=reset_at,
            status="rejected" if remaining is not None and remaining <= 0 else "allowed",
        )

    def _spend_exhausted(
        self, message: str, context: ExecutionContext, error_type: str, reset_at: datetime | None = None
    ) -> ProviderError:
        """A spend cap or empty balance: tell routing the quota is gone, and never retry."""
        self.report_quota(
            QuotaSignal(
                provider_id=self.provider_id,
                subscription=context.subscription,
                limit_kind="spend",
                utilization=1.0,
                reset_at=reset_at,
                status="rejected",
            )
        )
        return self._error(QuotaExhausted, message, context, error_type=error_type, reset_at=reset_at)


# --- parsing helpers --------------------------------------------------------------------------------


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None


def token_count(data: object, key: str) -> int:
    """A non-negative integer field of a usage object, or 0 when absent or odd."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def header_float(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_retry_after(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    millis = header_float(headers, "retry-after-ms")
    if millis is not None and millis >= 0:
        return millis / 1000
    seconds = header_float(headers, "retry-after")
    if seconds is not None:
        return max(0.0, seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or utc_now())).total_seconds())


def retry_after_from_resets(signals: Sequence[QuotaSignal], now: datetime | None = None) -> float | None:
    """When a 429 names no wait: until the exhausted limits reset, else until the soonest limit resets."""
    exhausted = [s.reset_at for s in signals if s.reset_at and s.status == "rejected"]
    resets = [s.reset_at for s in signals if s.reset_at]
    if exhausted:
        when = max(exhausted)
    elif resets:
        when = min(resets)
    else:
        return None
    return max(0.0, (when - (now or utc_now())).total_seconds())


def _bare(url: str) -> str:
    """The URL without its user info and query, which are not ours to log (either can carry a credential)."""
    return safe_url(url) or url


def _snake(exc: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
