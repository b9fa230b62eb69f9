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
    rate_limit_info,
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
from providers.pricing import CLAUDE_SONNET, claude_family_price
from providers.processes import stop_group
from providers.prompt import render_prompt
from providers.redaction import redact, shorten, tail

__all__ = ["CREDENTIAL_VARS", "ClaudeCliConfig", "ClaudeCliProvider", "SubscriptionConfig", "SubscriptionStatus"]

log = logging.getLogger(__name__)

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN); longer prompts go through stdin.
_MAX_PROMPT_ARG_BYTES = 100_000
# After SIGTERM, how long the CLI gets to exit before the group gets SIGKILL.
_KILL_GRACE_S = 1.0
_VERSION_TIMEOUT_S = 10.0
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
_READ_CHUNK = 1 << 16


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
        await asyncio.gather(*(stop_group(p, _KILL_GRACE_S) for p in list(self._children)), return_exceptions=True)

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
        # stream-json prints one message per line as the run goes: act on rate-limit events at once, not after
        # a long agent run, so rotation and routing move away while this run is still going.
        streaming = self.config.output_format == "stream-json"
        on_line = (lambda line: self._on_stream_line(sub, line)) if streaming else None
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
        on_line: Callable[[str], None] | None = None,
    ) -> tuple[int, str, str]:
        """Run the CLI to completion, handing `on_line` each stdout line as it arrives; on timeout or
        cancellation kill its whole process group."""
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
            out, err = await asyncio.wait_for(
                _communicate(proc, stdin.encode() if stdin is not None else None, on_line), timeout
            )
        except TimeoutError as exc:
            await stop_group(proc, _KILL_GRACE_S)
            raise ProviderTimeout(
                f"no result within {timeout:g}s; the CLI was killed",
                provider_id=self.provider_id,
                error_type="timeout",
                subscription=subscription,
            ) from exc
        except asyncio.CancelledError:
            await stop_group(proc, _KILL_GRACE_S)
            raise
        finally:
            self._children.discard(proc)
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

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

    def _on_stream_line(self, sub: Subscription, line: str) -> None:
        info = rate_limit_info(line)
        if info is not None:
            self._on_rate_limit(sub, info)

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

    # --- helpers ------------------------------------------------------------------------------

    def _executable(self) -> str | None:
        return shutil.which(os.path.expanduser(self.config.executable))

    @classmethod
    def _family_price(cls, model: str) -> Price | None:
        return claude_family_price(model)

    def _redact(self, text: str) -> str:
        """Remove any credential value we know of (whole, or cut at the text's edge), and anything shaped like
        an Anthropic key."""
        values = self._known_secrets | {os.environ.get(n) for n in CREDENTIAL_VARS if os.environ.get(n)}
        return _KEY_SHAPED.sub("sk-ant-***", redact(text, values, "***"))


async def _communicate(
    proc: asyncio.subprocess.Process, stdin: bytes | None, on_line: Callable[[str], None] | None
) -> tuple[bytes, bytes]:
    """`proc.communicate()`, but each complete stdout line also goes to `on_line` the moment it arrives."""

    async def feed() -> None:
        if stdin is None or proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a CLI that exits early stops reading
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()

    async def read_stdout() -> bytes:
        assert proc.stdout is not None
        whole, pending = bytearray(), bytearray()
        while chunk := await proc.stdout.read(_READ_CHUNK):
            whole += chunk
            if on_line is None:
                continue
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = bytearray(rest)
            for line in lines:
                on_line(line.decode(errors="replace"))
        return bytes(whole)

    async def read_stderr() -> bytes:
        assert proc.stderr is not None
        return await proc.stderr.read()

    out, err, _ = await asyncio.gather(read_stdout(), read_stderr(), feed())
    await proc.wait()
    return out, err


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
