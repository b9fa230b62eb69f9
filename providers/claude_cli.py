"""`claude_cli`: the Claude Code CLI in headless mode (`claude -p`), one child process per task.

Several subscriptions can stand behind one provider: each is a `CLAUDE_CONFIG_DIR` (its own login) or an
env var holding an API key. `claude_cli_pool` rotates between them and takes out the ones that hit a limit;
`claude_cli_parse` reads the CLI's JSON. This module owns the process: argv, environment, timeout, and
killing the whole process group so no agent (or a tool it started) outlives its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers.base import AIProvider, Limits, ProviderConfig, SecretResolver, env_secrets, utc_now
from providers.claude_cli_parse import (
    cost_from,
    error_for_result,
    error_without_result,
    model_from,
    parse_output,
    result_failed,
    usage_from,
)
from providers.claude_cli_pool import Subscription, SubscriptionPool, SubscriptionStatus
from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    Cancelled,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.models import (
    AITask,
    ExecutionContext,
    HealthStatus,
    Price,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    QuotaSignal,
)
from providers.prompt import render_prompt

__all__ = ["ClaudeCliConfig", "ClaudeCliProvider", "SubscriptionConfig", "SubscriptionStatus"]

log = logging.getLogger(__name__)

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN); longer prompts go through stdin.
_MAX_PROMPT_ARG_BYTES = 100_000
# After SIGTERM, how long the CLI gets to exit before the group gets SIGKILL.
_KILL_GRACE_S = 1.0
_VERSION_TIMEOUT_S = 10.0
# Variables that would override a config dir's own login (PROVIDERS.md 1.5: they take precedence over it).
_CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
_KEY_SHAPED = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
_MIN_SECRET_LEN = 8


class SubscriptionConfig(BaseModel):
    """One account behind the provider: a config dir with its own login, or an API key in an env var."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    config_dir: str | None = None
    api_key_env: str | None = None
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _one_credential_source(self) -> SubscriptionConfig:
        if (self.config_dir is None) == (self.api_key_env is None):
            raise ValueError(f"subscription {self.name!r}: set exactly one of config_dir and api_key_env")
        return self


class ClaudeCliConfig(ProviderConfig):
    type: Literal["claude_cli"] = "claude_cli"
    executable: str = "claude"
    output_format: Literal["stream-json", "json"] = "stream-json"
    max_turns: int | None = Field(default=None, gt=0)
    append_system_prompt: str | None = None
    allowed_tools: list[str] | None = None
    # Empty: one implicit "default" subscription using this process's environment (and `api_key_env`, if set).
    subscriptions: list[SubscriptionConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_subscriptions(self) -> ClaudeCliConfig:
        names = [s.name for s in self.subscriptions]
        if len(set(names)) != len(names):
            raise ValueError("subscription names must be unique")
        if self.subscriptions and self.api_key_env is not None:
            raise ValueError("with subscriptions, set api_key_env on each subscription, not on the provider")
        return self


# USD per million tokens, used only when the CLI reports no `total_cost_usd` (very old versions).
# Cache reads are 0.1x and 5-minute cache writes 1.25x the input price.
_SONNET = Price(input=3.0, output=15.0, cache_read=0.30, cache_write=3.75)
_FAMILY_PRICES: tuple[tuple[str, Price], ...] = (
    ("opus-4-1", Price(input=15.0, output=75.0, cache_read=1.50, cache_write=18.75)),
    ("opus-4-2", Price(input=15.0, output=75.0, cache_read=1.50, cache_write=18.75)),
    ("opus", Price(input=5.0, output=25.0, cache_read=0.50, cache_write=6.25)),
    ("haiku", Price(input=1.0, output=5.0, cache_read=0.10, cache_write=1.25)),
    ("sonnet", _SONNET),
)


class ClaudeCliProvider(AIProvider):
    type_name: ClassVar[str] = "claude_cli"
    config_model: ClassVar[type[ProviderConfig]] = ClaudeCliConfig
    default_prices: ClassVar[dict[str, Price]] = {"*": _SONNET}

    config: ClaudeCliConfig

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        *,
        secrets: SecretResolver = env_secrets,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(provider_id, config, secrets=secrets, clock=clock)
        self._wall_clock = wall_clock
        self._children: set[asyncio.subprocess.Process] = set()
        self._closing = False
        # Key values handed to children, so error text quoting them can be scrubbed without asking the resolver again.
        self._known_secrets: set[str] = set()
        self._pool = SubscriptionPool(provider_id, self._subscriptions(), clock=clock, wall_clock=wall_clock)

    def _subscriptions(self) -> list[Subscription]:
        cfg = self.config
        if not cfg.subscriptions:
            kind = "api_key_env" if cfg.api_key_env else "default"
            return [SubscriptionPool.make("default", kind, Limits(), self._clock, api_key_env=cfg.api_key_env)]
        return [
            SubscriptionPool.make(
                s.name,
                "config_dir" if s.config_dir else "api_key_env",
                s.limits,
                self._clock,
                config_dir=os.path.expanduser(s.config_dir) if s.config_dir else None,
                api_key_env=s.api_key_env,
            )
            for s in cfg.subscriptions
        ]

    # --- the contract -------------------------------------------------------------------------

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            task_types=self.task_types(),
            models=(self.config.model,) if self.config.model else (),
            max_concurrency=self.config.max_concurrency,
            supports_workdir=True,
            available=self._executable() is not None,
        )

    async def _probe(self) -> ProviderHealth:
        exe = self._executable()
        if exe is None:
            return ProviderHealth(
                status=HealthStatus.UNHEALTHY,
                checked_at=utc_now(),
                detail=f"executable {self.config.executable!r} not found",
            )
        started = time.perf_counter()
        try:
            code, stdout, stderr = await self._run([exe, "--version"], None, os.environ.copy(), _VERSION_TIMEOUT_S)
        except ProviderError as exc:
            return ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail=str(exc))
        latency_ms = (time.perf_counter() - started) * 1000
        if code != 0:
            detail = f"`--version` exited with {code}: {self._redact(stderr.strip()[-200:])}"
            return ProviderHealth(
                status=HealthStatus.UNHEALTHY, checked_at=utc_now(), latency_ms=latency_ms, detail=detail
            )
        reset = self._pool.earliest_reset()
        if reset is not None:
            # The CLI works but no subscription can take a call until `reset`.
            detail = f"every subscription is out until {reset.isoformat()}"
            return ProviderHealth(
                status=HealthStatus.DEGRADED, checked_at=utc_now(), latency_ms=latency_ms, detail=detail
            )
        return ProviderHealth(
            status=HealthStatus.HEALTHY, checked_at=utc_now(), latency_ms=latency_ms, detail=stdout.strip()[:200]
        )

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        exe = self._executable()
        if exe is None:
            raise Unavailable(
                f"executable {self.config.executable!r} not found", provider_id=self.provider_id, error_type="not_found"
            )
        cwd = os.path.expanduser(task.workdir) if task.workdir else None
        if cwd is not None and not os.path.isdir(cwd):
            raise BadRequest(f"workdir {cwd!r} is not a directory", provider_id=self.provider_id, error_type="workdir")
        estimate = self.estimate_cost(task)
        affinity = task.affinity or _str_or_none(task.metadata.get("session_id"))
        sub = self._pool.acquire(
            forced=context.subscription,
            affinity=affinity,
            tokens=estimate.tokens_input + estimate.tokens_output,
            cost=estimate.cost_usd,
        )
        try:
            response = await self._execute_on(sub, exe, task, cwd, context)
        except ProviderError as exc:
            self._pool.failed(sub, exc)
            raise
        except asyncio.CancelledError:
            self._pool.cancelled(sub)
            raise
        self._pool.succeeded(sub, affinity)
        return response

    async def aclose(self) -> None:
        self._closing = True
        await asyncio.gather(*(_kill_group(p) for p in list(self._children)), return_exceptions=True)

    def subscription_status(self) -> list[SubscriptionStatus]:
        """Each subscription's state, reset time and usage counters (no secret values)."""
        return self._pool.status()

    # --- one call -----------------------------------------------------------------------------

    async def _execute_on(
        self, sub: Subscription, exe: str, task: AITask, cwd: str | None, context: ExecutionContext
    ) -> ProviderResponse:
        env = self._child_env(sub)
        prompt = render_prompt(task)
        via_stdin = len(prompt.encode()) > _MAX_PROMPT_ARG_BYTES
        argv = self._argv(exe, None if via_stdin else prompt)
        timeout = context.timeout_s or self.config.timeout_s
        started = time.perf_counter()
        code, stdout, stderr = await self._run(
            argv, cwd, env, timeout, stdin=prompt if via_stdin else None, subscription=sub.name
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if self._closing:
            # aclose() killed it: an interruption, not a provider failure.
            raise Cancelled(
                "the provider was closed while the CLI ran", provider_id=self.provider_id, subscription=sub.name
            )
        return self._response(sub, code, stdout, stderr, latency_ms)

    def _argv(self, exe: str, prompt: str | None) -> list[str]:
        cfg = self.config
        argv = [exe, "-p", "--output-format", cfg.output_format]
        if cfg.output_format == "stream-json":
            argv.append("--verbose")  # the CLI refuses stream-json in -p mode without it
        if cfg.model:
            argv += ["--model", cfg.model]
        if cfg.max_turns is not None:
            argv += ["--max-turns", str(cfg.max_turns)]
        if cfg.append_system_prompt:
            argv += ["--append-system-prompt", cfg.append_system_prompt]
        if cfg.allowed_tools:
            argv += ["--allowedTools", ",".join(cfg.allowed_tools)]
        if prompt is not None:
            # "--" so a prompt starting with "-" is not read as a flag (the official SDK does the same).
            argv += ["--", prompt]
        return argv

    def _child_env(self, sub: Subscription) -> dict[str, str]:
        env = os.environ.copy()
        # No child sees another subscription's key.
        for other in self._pool.subscriptions:
            if other.api_key_env and other is not sub:
                env.pop(other.api_key_env, None)
        if sub.kind == "config_dir":
            for name in _CREDENTIAL_VARS:
                env.pop(name, None)
            env["CLAUDE_CONFIG_DIR"] = sub.config_dir or ""
        elif sub.kind == "api_key_env":
            key = self.secret(sub.api_key_env)
            if not key:
                raise AuthenticationFailed(
                    f"environment variable {sub.api_key_env} is not set",
                    provider_id=self.provider_id,
                    error_type="missing_api_key",
                    subscription=sub.name,
                )
            env.pop("ANTHROPIC_AUTH_TOKEN", None)  # it would win over the key we pass
            env["ANTHROPIC_API_KEY"] = key
            self._known_secrets.add(key)
        return env

    async def _run(
        self,
        argv: list[str],
        cwd: str | None,
        env: dict[str, str],
        timeout: float,
        *,
        stdin: str | None = None,
        subscription: str | None = None,
    ) -> tuple[int, str, str]:
        """Run the CLI to completion; on timeout or cancellation kill its whole process group."""
        log.debug("running %s (%d args) in %s", argv[0], len(argv), cwd or ".")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group, so killing it reaches tools it spawned
            )
        except OSError as exc:
            raise Unavailable(
                f"could not start {argv[0]!r}: {exc.strerror or type(exc).__name__}",
                provider_id=self.provider_id,
                error_type="spawn_failed",
                subscription=subscription,
            ) from exc
        self._children.add(proc)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
        except TimeoutError as exc:
            await _kill_group(proc)
            raise ProviderTimeout(
                f"no result within {timeout:g}s; the CLI was killed",
                provider_id=self.provider_id,
                error_type="timeout",
                subscription=subscription,
            ) from exc
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        finally:
            self._children.discard(proc)
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    def _response(self, sub: Subscription, code: int, stdout: str, stderr: str, latency_ms: float) -> ProviderResponse:
        parsed = parse_output(stdout)
        now = self._wall_clock()
        for info in parsed.rate_limits:
            self._on_rate_limit(sub, info)
        kw: dict[str, Any] = {
            "provider_id": self.provider_id,
            "subscription": sub.name,
            "now": now,
            "redact": self._redact,
        }
        result = parsed.result
        if result is None:
            raise error_without_result(parsed, stdout, stderr, code, **kw)
        usage = usage_from(result)
        model = model_from(result) or parsed.model or self.config.model or "claude"
        cost = cost_from(result)
        if cost is None:
            cost = self._price(model).cost(usage)
        self._pool.record_usage(sub, usage.total, cost)
        if result_failed(result):
            raise error_for_result(result, usage=usage, cost_usd=cost, model=model, **kw)
        text = result.get("result")
        if not isinstance(text, str):
            raise MalformedResponse(
                "result object has no text", provider_id=self.provider_id, error_type="no_text", subscription=sub.name
            )
        return ProviderResponse(
            text=text,
            model=model,
            usage=usage,
            cost_usd=cost,
            latency_ms=latency_ms,
            subscription=sub.name,
            finish_reason=_str_or_none(result.get("stop_reason")) or _str_or_none(result.get("terminal_reason")),
            metadata={
                "session_id": result.get("session_id"),
                "num_turns": result.get("num_turns"),
                "duration_ms": result.get("duration_ms"),
            },
        )

    def _on_rate_limit(self, sub: Subscription, info: dict[str, Any]) -> None:
        """Pass a `rate_limit_event` on to routing and act on it for rotation."""
        status = str(info.get("status") or "allowed")
        kind = str(info.get("rateLimitType") or "unknown")
        resets = info.get("resetsAt")
        reset_at = datetime.fromtimestamp(resets, UTC) if isinstance(resets, int | float) else None
        utilization = info.get("utilization")
        utilization = float(utilization) if isinstance(utilization, int | float) else None
        if utilization is not None:
            sub.quota_utilization[kind] = utilization
        self.report_quota(
            QuotaSignal(
                provider_id=self.provider_id,
                subscription=sub.name,
                limit_kind=kind,
                utilization=utilization,
                reset_at=reset_at,
                status=status,
            )
        )
        if status == "allowed_warning":
            self._pool.warn(sub, kind, reset_at)
        elif status == "rejected":
            self._pool.mark_out(sub, reset_at or self._wall_clock(), "rate_limit_rejected")
        else:
            self._pool.clear_warning(sub, kind)

    # --- helpers ------------------------------------------------------------------------------

    def _executable(self) -> str | None:
        return shutil.which(os.path.expanduser(self.config.executable))

    def _price(self, model: str) -> Price:
        """The configured price if any, else the price of the model's family (model ids carry dates)."""
        if model in self.config.prices or "*" in self.config.prices:
            return self.price_for(model)
        lowered = model.lower()
        return next((price for family, price in _FAMILY_PRICES if family in lowered), _SONNET)

    def _redact(self, text: str) -> str:
        """Remove any credential value we know of, and anything shaped like an Anthropic key."""
        values = self._known_secrets | {os.environ.get(n) or "" for n in _CREDENTIAL_VARS}
        for value in sorted(values, key=len, reverse=True):  # longest first, so a key containing another goes whole
            if value and len(value) >= _MIN_SECRET_LEN:
                text = text.replace(value, "***")
        return _KEY_SHAPED.sub("sk-ant-***", text)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    _signal_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
    except TimeoutError:
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()
    # Grandchildren that ignored SIGTERM are still in the group even though the CLI itself has exited.
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    # The group id is the child's pid because it was started with start_new_session=True.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
