"""`switchboard providers`: what the providers file configures and, with `--check`, whether each provider answers
and whether each Claude subscription's login or key is accepted (the provider's own check; rendered here).

Never prints a key: keys appear by the name of the variable (or Secret block) holding them, with "set" or
"missing", and as a last guard every resolved key value is scrubbed from the output before it is written.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import App, Parameter
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, err_console, out_console
from flows import secret_resolver
from ledger import Ledger, LedgerUnavailable, open_existing_ledger, provider_overlays
from providers import (
    CREDENTIAL_VARS,
    MIN_SECRET_LEN,
    ClaudeCliConfig,
    ClaudeCliProvider,
    SubscriptionCheck,
    safe_url,
)
from routing import (
    InputError,
    ProviderRegistry,
    SwitchboardConfig,
    apply_overlay,
    load_config,
    provider_source,
)

if TYPE_CHECKING:
    from providers import AIProvider, Limits, ProviderConfig, SecretResolver

DEFAULT_CHECK_TIMEOUT_S = 20.0


providers_app = App(
    name="providers", help="The configured providers; `reset` clears a provider's blocks, windows and circuit."
)
app.command(providers_app)


@providers_app.default
def list_providers(
    *,
    providers: Annotated[
        Path | None, Parameter(help="Providers file (default: $SWITCHBOARD_PROVIDERS or built-in mocks).")
    ] = None,
    check: Annotated[bool, Parameter(negative="", help="Probe each provider's live health.")] = False,
    timeout: Annotated[float, Parameter(help="Seconds to wait for each health probe with --check.")] = (
        DEFAULT_CHECK_TIMEOUT_S
    ),
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
) -> int:
    """List the configured providers, their capabilities, subscriptions and limits.

    Exit 0; with --check, exit 1 when any enabled provider is unhealthy. Exit 2 on an invalid providers file.
    """
    try:
        config = with_api_overlay(load_config(providers))
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_INVALID

    secrets = secret_resolver()
    registry = ProviderRegistry.from_configs(config.providers, secrets=secrets)
    healths, described = asyncio.run(_inspect(config.providers, registry, secrets, timeout if check else None))
    for entry in described:  # file, builtin or api (added or changed through the HTTP API, which wins)
        entry["source"] = provider_source(config, entry["id"])
    report: dict[str, Any] = {"source": config.source, "strategy": config.strategy, "providers": described}
    if check:
        report["healthy"] = all(h["status"] != "unhealthy" for h in healths.values())

    scrub = _scrubber(config.providers.values(), secrets)
    if as_json:
        sys.stdout.write(scrub(json.dumps(report, default=str)) + "\n")
    else:
        _render(report, check, scrub)
    return EXIT_FAILED if check and not report["healthy"] else EXIT_OK


def with_api_overlay(config: SwitchboardConfig) -> SwitchboardConfig:
    """The providers file with the providers added, changed or removed through the HTTP API (kept in the ledger);
    the file alone when there is no ledger yet."""
    try:
        engine = open_existing_ledger()
    except LedgerUnavailable:  # LedgerNotFound too: nothing was ever recorded, so no overlay either
        return config
    try:
        return apply_overlay(config, provider_overlays(Ledger(engine)))
    finally:
        engine.dispose()


async def _inspect(
    configs: Mapping[str, ProviderConfig], registry: ProviderRegistry, secrets: SecretResolver, timeout_s: float | None
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Probe every enabled provider at once (when `timeout_s` is given), describe all, then close them all."""
    try:
        healths: dict[str, dict[str, Any]] = {}
        checks: dict[str, list[SubscriptionCheck]] = {}
        if timeout_s is not None:
            live = list(registry)
            clis = [p for p in live if isinstance(p, ClaudeCliProvider)]
            results, verdicts = await asyncio.gather(
                asyncio.gather(*(_check_one(p, timeout_s) for p in live)),
                asyncio.gather(*(p.check_subscriptions(timeout_s) for p in clis)),
            )
            healths = {p.provider_id: r for p, r in zip(live, results, strict=True)}
            checks = {p.provider_id: v for p, v in zip(clis, verdicts, strict=True)}
        described = [
            _describe(pid, cfg, registry, secrets, healths.get(pid), checks.get(pid)) for pid, cfg in configs.items()
        ]
        return healths, described
    finally:
        await registry.aclose()


async def _check_one(provider: AIProvider, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        health = await asyncio.wait_for(provider.health(use_cache=False), timeout_s)
    except TimeoutError:
        return {
            "status": "unhealthy",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "detail": f"no answer within {timeout_s:g}s",
        }
    except Exception as exc:  # a provider bug must not hide the other providers' results
        return {"status": "unhealthy", "latency_ms": None, "detail": f"health check failed: {type(exc).__name__}"}
    # Only the provider's own timing: ours would include other probes sharing the event loop.
    return {
        "status": health.status.value,
        "latency_ms": None if health.latency_ms is None else round(health.latency_ms, 1),
        "detail": health.detail,
        "checked_at": health.checked_at.isoformat(),
    }


def _describe(
    provider_id: str,
    cfg: ProviderConfig,
    registry: ProviderRegistry,
    secrets: SecretResolver,
    health: dict[str, Any] | None,
    checks: list[SubscriptionCheck] | None = None,
) -> dict[str, Any]:
    live = registry.get(provider_id) if provider_id in registry else None
    entry: dict[str, Any] = {
        "id": provider_id,
        "type": cfg.type,
        "enabled": cfg.enabled,
        "priority": cfg.priority,
        "capabilities": sorted(cfg.capabilities) if cfg.capabilities is not None else "all",
        "model": cfg.model,
        "base_url": safe_url(cfg.base_url),
        "api_key_env": cfg.api_key_env,
        "api_key": _key_state(cfg.api_key_env, secrets),
        "limits": _limits(cfg.limits),
        "max_concurrency": cfg.max_concurrency,
        "timeout_s": cfg.timeout_s,
        "available": live.capabilities().available if live is not None else None,
    }
    if isinstance(cfg, ClaudeCliConfig):
        entry["executable"] = cfg.executable
        cli = live if isinstance(live, ClaudeCliProvider) else None
        entry["subscriptions"] = _subscriptions(cfg, cli, secrets, {c.name: c for c in checks or []})
    if health is not None:
        entry["health"] = health
    return entry


def _subscriptions(
    cfg: ClaudeCliConfig, live: ClaudeCliProvider | None, secrets: SecretResolver, checks: dict[str, SubscriptionCheck]
) -> list[dict[str, Any]]:
    states = {s.name: s for s in live.subscription_status()} if live is not None else {}
    configured = {s.name: s for s in cfg.subscriptions}
    names = list(states) or list(configured)
    out = []
    for name in names:
        status, sub = states.get(name), configured.get(name)
        config_dir = sub.config_dir if sub else None
        key_env = sub.api_key_env if sub else (status.api_key_env if status else None)
        item: dict[str, Any] = {
            "name": name,
            "kind": status.kind if status else ("config_dir" if config_dir else "api_key_env"),
            "config_dir": config_dir,
            "api_key_env": key_env,
            "limits": _limits(sub.limits) if sub else {},
            "state": status.state if status else None,
        }
        if config_dir:
            # A login lives in the dir; a missing dir means nobody ran `/login` with it yet.
            item["config_dir_exists"] = os.path.isdir(os.path.expanduser(config_dir))
        if key_env:
            item["api_key"] = _key_state(key_env, secrets)
        if status and status.reset_at:
            item["reset_at"] = status.reset_at.isoformat()
            item["out_reason"] = status.out_reason
        check = checks.get(name)
        if check is not None:
            item["check"] = check.model_dump(mode="json", exclude={"name", "kind"})
        out.append(item)
    return out


def _limits(limits: Limits) -> dict[str, Any]:
    return {k: v for k, v in limits.model_dump().items() if v is not None}


def _key_state(env_name: str | None, secrets: SecretResolver) -> str | None:
    if env_name is None:
        return None
    return "set" if secrets(env_name) else "missing"


def _scrubber(configs: Iterable[ProviderConfig], secrets: SecretResolver) -> Callable[[str], str]:
    """Replace every key value this command could have seen; the output must never carry one."""
    # Credentials the Claude CLI reads from the environment are scrubbed too, whatever the config names.
    names = set(CREDENTIAL_VARS)
    for cfg in configs:
        names.add(cfg.api_key_env)
        if isinstance(cfg, ClaudeCliConfig):
            names.update(s.api_key_env for s in cfg.subscriptions)
    values = {secrets(n) or "" for n in names if n} | {os.environ.get(n) or "" for n in CREDENTIAL_VARS}
    values = sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
            # JSON output escapes some characters; scrub the escaped spelling too.
            text = text.replace(json.dumps(value)[1:-1], "***")
        return text

    return scrub


def _render(report: dict[str, Any], check: bool, scrub: Callable[[str], str]) -> None:
    """One block per provider, a label and a value per line: readable at 80 columns and in a pipe, where a
    table of nine columns cut every cell to "…". Long values wrap under their label; nothing is cut."""
    title = f"providers · {report['source']} · strategy {report['strategy']}"
    out_console.print(escape(scrub(title)), highlight=False)
    for p in report["providers"]:
        heading = f"[bold]{escape(p['id'])}[/] {escape(p['type'])} · priority {p['priority']}"
        if p["source"] == "api":
            heading += " · [cyan]from the API[/]"
        if not p["enabled"]:
            heading += " · disabled"
        if p["available"] is False:
            heading += " · [red]not installed[/]"
        out_console.print()
        out_console.print(heading, highlight=False)
        out_console.print(Padding(_details(p, check, scrub), (0, 0, 0, 2)), highlight=False)
    if check:
        out_console.print()
        verdict = "all providers answer" if report["healthy"] else "[red]some providers are unhealthy[/]"
        out_console.print(verdict)


def _details(p: dict[str, Any], check: bool, scrub: Callable[[str], str]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(overflow="fold")

    def row(label: str, value: str, markup: str = "") -> None:
        grid.add_row(label, markup + escape(scrub(value)))

    row("capabilities", p["capabilities"] if p["capabilities"] == "all" else ", ".join(p["capabilities"]))
    row("model", p["model"] or "-")
    row("limits", _limits_text(p["limits"]))
    if check:
        h = p.get("health") or {}
        latency = h.get("latency_ms")
        parts = ["-" if latency is None else f"{latency:.0f} ms", h.get("detail") or ""]
        row("health", " · ".join(x for x in parts if x), markup=_health_text(h.get("status")) + " · ")
    if p["api_key_env"]:
        row("key", f"{p['api_key_env']}: {p['api_key']}")
    for s in p.get("subscriptions") or []:
        where = f"config_dir {s['config_dir']}" if s["config_dir"] else f"api_key_env {s['api_key_env']}"
        extra = [f"limits {_limits_text(s['limits'])}", s["state"] or "-"]
        if s.get("config_dir_exists") is False:
            extra.append("dir missing: log in with CLAUDE_CONFIG_DIR=<dir> claude, then /login")
        if s.get("api_key"):
            extra.append(f"key {s['api_key']}")
        if s.get("reset_at"):
            extra.append(f"out until {s['reset_at']} ({s.get('out_reason')})")
        if s.get("check"):
            extra.append(_check_text(s["check"]))
        row("subscription", f"{s['name']}: {where} · " + " · ".join(extra))
    return grid


def _check_text(check: dict[str, Any]) -> str:
    """`login refused (asked the API): ...`, `login accepted (asked the API)`, `not logged in (no request)`."""
    words = {
        "accepted": "accepted",
        "refused": "refused",
        "limited": "accepted, at its usage limit",
        "rate_limited": "accepted, rate limited",
        "not_logged_in": "not logged in",
        "missing_key": "key missing",
        "unknown": "could not tell",
    }
    how = "asked the API" if check["asked_api"] else "no request"
    text = f"check: {words.get(check['verdict'], check['verdict'])} ({how})"
    if check.get("reset_at"):
        text += f", resets {check['reset_at']}"
    if check["verdict"] in ("refused", "unknown", "missing_key") and check.get("detail"):
        text += f": {check['detail']}"
    return text


def _limits_text(limits: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in limits.items()) or "-"


def _health_text(status: str | None) -> str:
    style = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}.get(status or "")
    return f"[{style}]{status}[/]" if style else (status or "-")


__all__ = ["list_providers"]
