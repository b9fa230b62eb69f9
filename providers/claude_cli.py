"""`claude_cli`: the Claude Code CLI in headless mode (`claude -p`), one child process per task.

Several subscriptions can stand behind one provider: each is a `CLAUDE_CONFIG_DIR` (its own login) or an
env var holding an API key. `claude_cli_pool` rotates between them and takes out the ones that hit a limit;
`claude_cli_parse` reads the CLI's JSON; `claude_cli_retry` judges the CLI's own retries as they happen (a
refused credential or a long rate limit stops it at once); `claude_cli_process` reads the child line by line and
kills its whole process group so no agent (or a tool it started) outlives its task; `claude_cli_check` asks each
subscription whether its login or key is accepted. This module owns the call: argv, environment, timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers.base import AIProvider, Limits, ProviderConfig, SecretResolver, env_secrets, utc_now
from providers.claude_cli_check import PROBE_ARGS, PROBE_PROMPT, SubscriptionCheck, logged_in, verdict_for
from providers.claude_cli_parse import (
    api_retry,
    cost_from,
    error_for_result,
    error_without_result,
    model_from,
    parse_output,
    rate_limit_info,
    result_failed,
    usage_from,
)
from providers.claude_cli_pool import Subscription, SubscriptionPool, SubscriptionStatus
from providers.claude_cli_process import communicate, kill_group
from providers.claude_cli_retry import RetryWatch
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
    CREDENTIALS_CHANGED,
    AITask,
    CostEstimate,
    ExecutionContext,
    HealthStatus,
    Price,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    QuotaSignal,
)
from providers.pricing import CLAUDE_SONNET, claude_family_price
from providers.prompt import render_prompt
from providers.redaction import redact, shorten, tail

__all__ = [
    "CREDENTIAL_VARS",
    "ClaudeCliConfig",
    "ClaudeCliProvider",
    "SubscriptionCheck",
    "SubscriptionConfig",
    "SubscriptionStatus",
]

log = logging.getLogger(__name__)

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN); longer prompts go through stdin.
_MAX_PROMPT_ARG_BYTES = 100_000
_VERSION_TIMEOUT_S = 10.0
# Where a config dir's login lives (Linux; on macOS the Keychain holds it and a change is not seen).
CREDENTIALS_FILE = ".credentials.json"
# What the CLI authenticates with before a config dir's own login, first match wins (PROVIDERS.md 1.5): a cloud
# provider (the switches and their Claude-specific credentials), then these API-billed variables, then an OAuth
# token. A child that gets one of them bills whatever it names, not the subscription it was sent to.
_CLOUD_VARS = (
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "AWS_BEARER_TOKEN_BEDROCK",
    "ANTHROPIC_FOUNDRY_API_KEY",
)
_API_KEY_VARS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")
_LOGIN_VARS = ("CLAUDE_CODE_OAUTH_TOKEN",)
CREDENTIAL_VARS = _CLOUD_VARS + _API_KEY_VARS + _LOGIN_VARS
_KEY_SHAPED = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
# Health details quote at most this much of the CLI's output.
_DETAIL_CHARS = 200


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
    # Seconds of its own retry delays the CLI may spend on an overloaded or failing API (529, 5xx, a short 429)
    # before it is stopped and the call counted `overloaded`; its own loop would wait minutes.
    overload_retry_budget_s: float = Field(default=5.0, ge=0)
    # How long a subscription whose credential the API refused (401/403) stays out before one trial call; it is
    # back sooner when its credentials change (a new `.credentials.json`, another key value).
    auth_reprobe_s: float = Field(default=300.0, gt=0)
    # Empty: one implicit "default" subscription: this machine's Claude Code login (or the key in `api_key_env`,
    # if set). Its child never inherits ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN: a key exported for the
    # `anthropic` provider would otherwise silently bill the API instead of the subscription.
    subscriptions: list[SubscriptionConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_subscriptions(self) -> ClaudeCliConfig:
        names = [s.name for s in self.subscriptions]
        if len(set(names)) != len(names):
            raise ValueError("subscription names must be unique")
        if self.subscriptions and self.api_key_env is not None:
            raise ValueError("with subscriptions, set api_key_env on each subscription, not on the provider")
        return self


class ClaudeCliProvider(AIProvider):
    type_name: ClassVar[str] = "claude_cli"
    config_model: ClassVar[type[ProviderConfig]] = ClaudeCliConfig
    # Used only when the CLI reports no `total_cost_usd` (very old versions): the model's family, else Sonnet.
    default_prices: ClassVar[dict[str, Price]] = {"*": CLAUDE_SONNET}

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
        self._pool = SubscriptionPool(
            provider_id,
            self._subscriptions(),
            clock=clock,
            wall_clock=wall_clock,
            auth_reprobe_s=self.config.auth_reprobe_s,
            fingerprint=self._credential_fingerprint,
        )
        # Every subscription a login (none billed to a key): a call here is charged nothing at the margin.
        self._logins_only = all(sub.kind != "api_key_env" for sub in self._pool.subscriptions)

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
            models=self.model_names(),
            max_concurrency=self.config.max_concurrency,
            supports_workdir=True,
            available=self._executable() is not None,
            exhausted_until=self._pool.exhausted_until(),
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
            code, stdout, stderr = await self._run([exe, "--version"], None, self._probe_env(), _VERSION_TIMEOUT_S)
        except ProviderError as exc:
            return ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail=str(exc))
        latency_ms = (time.perf_counter() - started) * 1000
        self._refresh_credentials()  # health checks run every health_ttl_s: a fixed login comes back by then
        if code != 0:
            detail = f"`--version` exited with {code}: {tail(self._redact(stderr.strip()), _DETAIL_CHARS)}"
            return ProviderHealth(
                status=HealthStatus.UNHEALTHY, checked_at=utc_now(), latency_ms=latency_ms, detail=detail
            )
        until = self._pool.exhausted_until()
        if until is not None:
            # The CLI works, but no subscription can take a call before `until`.
            why = ", ".join(f"{s.name} {s.out_reason or s.state}" for s in self._pool.status())
            detail = f"no subscription can take a call until {until.isoformat()} ({why})"
            return ProviderHealth(
                status=HealthStatus.DEGRADED, checked_at=utc_now(), latency_ms=latency_ms, detail=detail
            )
        return ProviderHealth(
            status=HealthStatus.HEALTHY,
            checked_at=utc_now(),
            latency_ms=latency_ms,
            detail=shorten(self._redact(stdout.strip()), _DETAIL_CHARS),
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
        estimate = super().estimate_cost(task)  # at list price: what the pool's limits count
        affinity = task.affinity or _str_or_none(task.metadata.get("session_id"))
        self._refresh_credentials()
        sub = self._pool.acquire(
            forced=context.subscription,
            affinity=affinity,
            tokens=estimate.tokens_input + estimate.tokens_output,
            cost=estimate.cost_usd,
        )
        try:
            response = await self._execute_on(sub, exe, task, cwd, context)
        except ProviderError as exc:
            self._until_reprobe(exc)
            self._pool.failed(sub, exc)
            self._signal_if_exhausted()
            raise
        except asyncio.CancelledError:
            self._pool.cancelled(sub)
            raise
        self._pool.succeeded(sub, affinity)
        self._signal_if_exhausted()  # this call's requests and tokens may have used up the last client-side limit
        return response

    async def aclose(self) -> None:
        self._closing = True
        await asyncio.gather(*(kill_group(p) for p in list(self._children)), return_exceptions=True)

    def estimate_cost(self, task: AITask) -> CostEstimate:
        """What a call is charged: nothing when every subscription is a login (paid for by its fixed fee), else the
        list price (a subscription billed to an API key may serve it)."""
        estimate = super().estimate_cost(task)
        if self._logins_only:
            return estimate.model_copy(update={"cost_usd": 0.0, "list_price_usd": estimate.cost_usd})
        return estimate

    def subscription_status(self) -> list[SubscriptionStatus]:
        """Each subscription's state, reset time and usage counters (no secret values)."""
        return self._pool.status()

    async def check_subscriptions(self, timeout_s: float | None = None) -> list[SubscriptionCheck]:
        """Whether each subscription's login or key is accepted, without a request where the CLI can tell
        (claude_cli_check); one subscription's failure is its verdict, never an exception."""
        exe = self._executable()
        timeout = timeout_s or self.config.timeout_s
        return list(await asyncio.gather(*(self._check(sub, exe, timeout) for sub in self._pool.subscriptions)))

    async def _check(self, sub: Subscription, exe: str | None, timeout_s: float) -> SubscriptionCheck:
        def verdict(v: Any, asked: bool, detail: str, reset_at: datetime | None = None) -> SubscriptionCheck:
            detail = shorten(self._redact(detail), _DETAIL_CHARS)
            return SubscriptionCheck(name=sub.name, kind=sub.kind, verdict=v, asked_api=asked, detail=detail,
                                     reset_at=reset_at)  # fmt: skip

        if exe is None:
            return verdict("unknown", False, f"executable {self.config.executable!r} not found")
        try:
            env = self._child_env(sub)
        except AuthenticationFailed as exc:
            return verdict("missing_key", False, exc.message)
        try:
            _, status, _ = await self._run([exe, "auth", "status", "--json"], None, env, _VERSION_TIMEOUT_S)
        except ProviderError:
            status = ""
        if logged_in(status) is False:
            return verdict("not_logged_in", False, "`claude auth status`: no login in this config dir or env")
        # One minimal request, stopped at the first retry the CLI announces (no budget, no wait worth it).
        watch = RetryWatch(
            provider_id=self.provider_id,
            subscription=sub.name,
            budget_s=0.0,
            retry_max_s=0.0,
            auth_reprobe_s=self.config.auth_reprobe_s,
            wall_clock=self._wall_clock,
        )
        model = ["--model", self.config.model] if self.config.model else []
        argv = [exe, "-p", "--output-format", "stream-json", "--verbose", *model, *PROBE_ARGS, "--", PROBE_PROMPT]
        error: ProviderError | None
        try:
            code, stdout, stderr = await self._run(
                argv, None, env, timeout_s, subscription=sub.name, on_line=lambda line: _judge_retry(line, watch)
            )
            error = self._probe_error(sub, code, stdout, stderr)
        except ProviderError as exc:
            error = exc
        kind, reset_at = verdict_for(error)
        return verdict(kind, True, str(error) if error is not None else "the API answered", reset_at)

    def _probe_error(self, sub: Subscription, code: int, stdout: str, stderr: str) -> ProviderError | None:
        """The error a finished probe run stands for, or None when it answered (no pool or quota bookkeeping)."""
        parsed = parse_output(stdout)
        kw: dict[str, Any] = {
            "provider_id": self.provider_id,
            "subscription": sub.name,
            "now": self._wall_clock(),
            "redact": self._redact,
        }
        if parsed.result is None:
            return error_without_result(parsed, stdout, stderr, code, **kw)
        return error_for_result(parsed.result, **kw) if result_failed(parsed.result) else None

    # --- one call -----------------------------------------------------------------------------

    async def _execute_on(
        self, sub: Subscription, exe: str, task: AITask, cwd: str | None, context: ExecutionContext
    ) -> ProviderResponse:
        env = self._child_env(sub)
        prompt = render_prompt(task)
        via_stdin = len(prompt.encode()) > _MAX_PROMPT_ARG_BYTES
        argv = self._argv(exe, None if via_stdin else prompt, context.model)
        timeout = context.timeout_s or self.config.timeout_s
        # stream-json prints one message per line as the run goes: act on rate-limit events at once, not after
        # a long agent run, so rotation and routing move away while this run is still going.
        streaming = self.config.output_format == "stream-json"
        # The CLI's own retries are judged as they are announced (claude_cli_retry); json output announces none.
        watch = RetryWatch(
            provider_id=self.provider_id,
            subscription=sub.name,
            budget_s=self.config.overload_retry_budget_s,
            retry_max_s=context.retry_max_s,
            auth_reprobe_s=self.config.auth_reprobe_s,
            wall_clock=self._wall_clock,
        )
        on_line = (lambda line: self._on_stream_line(sub, line, watch)) if streaming else None
        started = time.perf_counter()
        code, stdout, stderr = await self._run(
            argv, cwd, env, timeout, stdin=prompt if via_stdin else None, subscription=sub.name, on_line=on_line
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if self._closing:
            # aclose() killed it: an interruption, not a provider failure.
            raise Cancelled(
                "the provider was closed while the CLI ran", provider_id=self.provider_id, subscription=sub.name
            )
        return self._response(sub, code, stdout, stderr, latency_ms, rate_limits_seen=streaming)

    def _argv(self, exe: str, prompt: str | None, model: str | None = None) -> list[str]:
        cfg = self.config
        argv = [exe, "-p", "--output-format", cfg.output_format]
        if cfg.output_format == "stream-json":
            argv.append("--verbose")  # the CLI refuses stream-json in -p mode without it
        if model or cfg.model:
            argv += ["--model", model or cfg.model]  # type: ignore[list-item]
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
        """The child's environment: only the credential its subscription names reaches it."""
        env = os.environ.copy()
        # No child sees another subscription's key.
        for other in self._pool.subscriptions:
            if other.api_key_env and other is not sub:
                env.pop(other.api_key_env, None)
        if sub.kind == "default":
            # This machine's own login (or OAuth token, or cloud provider set up for Claude Code). An API key
            # exported for other tools must not take over: in -p mode the CLI always bills a key it finds.
            for name in _API_KEY_VARS:
                env.pop(name, None)
            return env
        # A config dir or a named key: anything earlier in the CLI's precedence would be used instead.
        for name in CREDENTIAL_VARS:
            env.pop(name, None)
        if sub.kind == "config_dir":
            env["CLAUDE_CONFIG_DIR"] = sub.config_dir or ""
            return env
        key = self.secret(sub.api_key_env)
        if not key:
            raise AuthenticationFailed(
                f"environment variable {sub.api_key_env} is not set",
                provider_id=self.provider_id,
                error_type="missing_api_key",
                subscription=sub.name,
            )
        env["ANTHROPIC_API_KEY"] = key
        self._known_secrets.add(key)
        return env

    def _probe_env(self) -> dict[str, str]:
        """`--version` needs no credentials, so it gets none."""
        names = {*CREDENTIAL_VARS, *(s.api_key_env for s in self._pool.subscriptions if s.api_key_env)}
        return {k: v for k, v in os.environ.items() if k not in names}

    async def _run(
        self,
        argv: list[str],
        cwd: str | None,
        env: dict[str, str],
        timeout: float,
        *,
        stdin: str | None = None,
        subscription: str | None = None,
        on_line: Callable[[str], ProviderError | None] | None = None,
    ) -> tuple[int, str, str]:
        """Run the CLI to completion, handing `on_line` each stdout line as it arrives; on timeout or
        cancellation kill its whole process group. An error `on_line` returns stops the CLI and is raised."""
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
            finished = await asyncio.wait_for(
                communicate(proc, stdin.encode() if stdin is not None else None, on_line), timeout
            )
        except TimeoutError as exc:
            await kill_group(proc)
            raise ProviderTimeout(
                f"no result within {timeout:g}s; the CLI was killed",
                provider_id=self.provider_id,
                error_type="timeout",
                subscription=subscription,
            ) from exc
        except asyncio.CancelledError:
            await kill_group(proc)
            raise
        finally:
            self._children.discard(proc)
        if finished.stopped_by is not None and not self._closing:
            log.info("%s: %s", self.provider_id, self._redact(str(finished.stopped_by)))
            raise finished.stopped_by
        return finished.returncode, finished.stdout.decode(errors="replace"), finished.stderr.decode(errors="replace")

    def _response(
        self, sub: Subscription, code: int, stdout: str, stderr: str, latency_ms: float, *, rate_limits_seen: bool
    ) -> ProviderResponse:
        parsed = parse_output(stdout)
        now = self._wall_clock()
        if not rate_limits_seen:
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
            cost = self.cost_of(usage, model, self.config.model)
        # The pool's limits count what the call used, at list price (a login's `cost_usd_per_day` caps its usage).
        self._pool.record_usage(sub, usage.total, cost)
        charged, list_price = _charged(sub, cost)
        if result_failed(result):
            error = error_for_result(result, usage=usage, cost_usd=charged, model=model, **kw)
            error.list_price_usd = list_price
            raise error
        text = result.get("result")
        if not isinstance(text, str):
            raise MalformedResponse(
                "result object has no text", provider_id=self.provider_id, error_type="no_text", subscription=sub.name
            )
        return ProviderResponse(
            text=text,
            model=model,
            usage=usage,
            cost_usd=charged,
            list_price_usd=list_price,
            latency_ms=latency_ms,
            subscription=sub.name,
            finish_reason=_str_or_none(result.get("stop_reason")) or _str_or_none(result.get("terminal_reason")),
            metadata={
                "session_id": result.get("session_id"),
                "num_turns": result.get("num_turns"),
                "duration_ms": result.get("duration_ms"),
            },
        )

    def _on_stream_line(self, sub: Subscription, line: str, watch: RetryWatch) -> ProviderError | None:
        """Act on a rate-limit event at once; judge an announced retry (an error stops the CLI)."""
        retry = api_retry(line)
        if retry is not None:
            return watch.verdict(retry)
        info = rate_limit_info(line)
        if info is not None:
            self._on_rate_limit(sub, info)
        return None

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
            self._signal_if_exhausted()
        else:
            self._pool.clear_warning(sub, kind)

    def _signal_if_exhausted(self) -> None:
        """When no subscription can take a call, tell routing so, for the provider as a whole.

        Each subscription's own errors and signals only steer rotation inside this provider; this one signal
        (no subscription) makes routing stop sending tasks here until the first subscription is back, instead
        of spending an attempt per task to learn that nothing can run.
        """
        until = self._pool.exhausted_until()
        if until is None:
            return
        self.report_quota(
            QuotaSignal(
                provider_id=self.provider_id,
                subscription=None,
                limit_kind="subscriptions",
                utilization=1.0,
                reset_at=until,
                status="rejected",
            )
        )

    # --- credentials --------------------------------------------------------------------------

    def _until_reprobe(self, error: ProviderError) -> None:
        """A refused credential of one subscription stays out until its re-probe time: say when on the error,
        so the pool and routing keep it out for the same period."""
        if isinstance(error, AuthenticationFailed) and error.subscription is not None and error.reset_at is None:
            error.retry_after_s = self.config.auth_reprobe_s
            error.reset_at = self._wall_clock() + timedelta(seconds=self.config.auth_reprobe_s)

    def _refresh_credentials(self) -> None:
        """Put subscriptions whose refused credentials changed back in rotation, and tell routing so."""
        for sub in self._pool.refresh_credentials():
            self.report_quota(
                QuotaSignal(
                    provider_id=self.provider_id,
                    subscription=sub.name,
                    limit_kind=CREDENTIALS_CHANGED,
                    status="allowed",
                )
            )

    def _credential_fingerprint(self, sub: Subscription) -> str:
        """Changes when the subscription's credential does; holds no secret (a key is hashed)."""
        if sub.kind == "config_dir":
            try:
                st = os.stat(os.path.join(sub.config_dir or "", CREDENTIALS_FILE))
            except OSError:
                return "absent"
            return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
        if sub.api_key_env:
            return hashlib.sha256((self.secret(sub.api_key_env) or "").encode()).hexdigest()
        return "machine login"  # this machine's own login: no change can be seen from here

    # --- helpers ------------------------------------------------------------------------------

    def _executable(self) -> str | None:
        return shutil.which(os.path.expanduser(self.config.executable))

    @classmethod
    def _family_price(cls, model: str) -> Price | None:
        return claude_family_price(model)

    def known_secrets(self) -> list[str | None]:
        """The keys of its subscriptions seen so far, and the credentials the CLI reads from the environment."""
        return [*self._known_secrets, *(os.environ.get(n) for n in CREDENTIAL_VARS), *super().known_secrets()]

    def _redact(self, text: str) -> str:
        """Remove any credential value we know of (whole, or cut at the text's edge), and anything shaped like
        an Anthropic key."""
        return _KEY_SHAPED.sub("sk-ant-***", redact(text, self.known_secrets(), "***"))


def _judge_retry(line: str, watch: RetryWatch) -> ProviderError | None:
    retry = api_retry(line)
    return watch.verdict(retry) if retry is not None else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _charged(sub: Subscription, cost: float) -> tuple[float, float | None]:
    """(charged, list price when it differs) of a call that cost `cost` at list price on `sub`: a login's calls are
    paid for by its subscription's fixed fee, so they are charged nothing at the margin; a key's are billed."""
    if sub.kind == "api_key_env":
        return cost, None
    return 0.0, cost
