"""What `switchboard init` proposes from what it detected, each provider with a sensible priority, limits and
prices and a comment saying why, written as a commented providers file; and the probe of each one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from configtools.detect import Detected
from providers import HealthStatus, ProviderConfig, env_secrets
from routing import ProviderRegistry, provider_class

_LOCAL_NAMES = {"ollama": "Ollama", "vllm": "vLLM"}


@dataclass
class Proposal:
    name: str
    settings: dict[str, Any]  # type first
    why: list[str]  # the comment above it in the file
    summary: str  # one line for the prompt
    models: tuple[str, ...] = ()  # the models a local server offers, to choose from

    @property
    def type(self) -> str:
        return str(self.settings["type"])


def propose(found: Detected, env: Mapping[str, str], *, mock: bool = False) -> list[Proposal]:
    """Providers for what `found` holds, best first: Claude subscriptions (already paid for), the API keys,
    then local models as the free last resort. Priorities follow that order."""
    proposals: list[Proposal] = []
    if found.claude_path and found.logins:
        version = f" {found.claude_version}" if found.claude_version else ""
        subscriptions = [{"name": login.name, "config_dir": login.config_dir} for login in found.logins]
        proposals.append(
            Proposal(
                "claude",
                {"type": "claude_cli", "subscriptions": subscriptions},
                [
                    f"Claude Code{version} ({found.claude_path}) with the login(s) found: one subscription each.",
                    "Calls rotate across them; one at its usage limit hands the task to the next.",
                ],
                f"Claude Code{version}, subscriptions " + ", ".join(s["name"] for s in subscriptions),
            )
        )
    elif found.claude_path:
        found.notes.append(
            "`claude` is installed but no config dir holds a login: log in once "
            "(CLAUDE_CONFIG_DIR=~/.claude-team-a claude, then /login) and run init again"
        )
    keys = set(found.key_variables)
    if "ANTHROPIC_API_KEY" in keys:
        proposals.append(
            Proposal(
                "anthropic",
                {
                    "type": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "api_key_env": "ANTHROPIC_API_KEY",
                    "limits": {"requests_per_minute": 50},
                },
                [
                    "The Anthropic API with the key in $ANTHROPIC_API_KEY (its value is not written here).",
                    "50 requests a minute is Anthropic's first usage tier: raise it to yours. Shipped prices apply.",
                ],
                "Anthropic API, claude-sonnet-4-5, $ANTHROPIC_API_KEY",
            )
        )
    if "OPENAI_API_KEY" in keys:
        proposals.append(
            Proposal(
                "openai",
                {
                    "type": "openai_compatible",
                    "base_url": "https://api.openai.com/v1",
                    "model": "gpt-4o-mini",
                    "api_key_env": "OPENAI_API_KEY",
                    "limits": {"requests_per_minute": 500},
                },
                ["OpenAI with the key in $OPENAI_API_KEY; 500 requests a minute is its first tier for gpt-4o-mini."],
                "OpenAI, gpt-4o-mini, $OPENAI_API_KEY",
            )
        )
    if "OPENROUTER_API_KEY" in keys:
        proposals.append(
            Proposal(
                "openrouter",
                {
                    "type": "openai_compatible",
                    "base_url": "https://openrouter.ai/api/v1",
                    "model": "anthropic/claude-sonnet-4.5",
                    "api_key_env": "OPENROUTER_API_KEY",
                    "prices": {"*": {"input": 3.0, "output": 15.0}},
                },
                ["OpenRouter with the key in $OPENROUTER_API_KEY; prices in USD per million tokens for its model."],
                "OpenRouter, anthropic/claude-sonnet-4.5, $OPENROUTER_API_KEY",
            )
        )
    if "AZURE_OPENAI_API_KEY" in keys:
        endpoint, deployment = env.get("AZURE_OPENAI_ENDPOINT"), env.get("AZURE_OPENAI_DEPLOYMENT")
        if endpoint and deployment:
            proposals.append(
                Proposal(
                    "azure",
                    {
                        "type": "openai_compatible",
                        "base_url": f"{endpoint.rstrip('/')}/openai/deployments/{deployment}",
                        "model": "gpt-4o",
                        "azure_api_version": "2024-10-21",
                        "api_key_env": "AZURE_OPENAI_API_KEY",
                    },
                    ["Azure OpenAI: $AZURE_OPENAI_ENDPOINT's deployment $AZURE_OPENAI_DEPLOYMENT; `model` prices it."],
                    f"Azure OpenAI, deployment {deployment}, $AZURE_OPENAI_API_KEY",
                )
            )
        else:
            found.notes.append(
                "AZURE_OPENAI_API_KEY is set, but not AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT: "
                "set them and run init again (or see docs/providers.md, Azure)"
            )
    for server in found.local:
        model = server.models[0] if server.models else "llama3.1"
        proposals.append(
            Proposal(
                server.kind,
                {
                    "type": "openai_compatible",
                    "base_url": server.base_url,
                    "model": model,
                    "max_concurrency": 2,
                    "prices": {"*": {"input": 0.0, "output": 0.0}},
                },
                [
                    f"{_LOCAL_NAMES[server.kind]} on this machine ({len(server.models)} model(s)); free, so the "
                    "last resort; two calls at a time.",
                ],
                f"{_LOCAL_NAMES[server.kind]} at {server.base_url}",
                server.models,
            )
        )
    if mock or not proposals:
        proposals.append(
            Proposal(
                "mock",
                {"type": "local_mock", "latency_ms": 50},
                ["A local stand-in that answers every task at no cost: for trying Switchboard out."],
                "local_mock, answers locally at no cost",
            )
        )
    for priority, proposal in enumerate(proposals, start=1):
        proposal.settings = {"type": proposal.settings["type"], "priority": priority, **proposal.settings}
    return proposals


def render_providers_file(proposals: list[Proposal], *, strategy: str = "priority_based") -> str:
    """The providers file: commented, ordered as proposed, no key values (only the names of their env vars)."""
    lines = [
        f"# Switchboard providers file, written by `switchboard init` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "# Lower priority numbers are tried first; a failing provider hands the task to the next.",
        "# Keys are named by env var (api_key_env); their values are never written here.",
        "# Check it with `switchboard config validate`; the keys every provider takes: README, Providers file.",
        "version: 1",
        f"strategy: {strategy}   # or capability_based, cost_based, fastest_response, adaptive, ...",
        "# budget: {max_cost_usd_per_run: 5.0, max_cost_usd_per_day: 50.0}   # uncomment to cap spending",
        "# cache: {enabled: true, ttl_s: 86400}   # uncomment to answer a team's repeated tasks from the ledger, free",
        "providers:",
    ]
    for proposal in proposals:
        lines += [f"  # {why}" for why in proposal.why]
        entry = {proposal.name: proposal.settings}
        body = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=110)
        lines += ["  " + line for line in body.splitlines()]
        if _offers_batch_api(proposal.settings):
            lines.append(f"    {BATCH_HINT}")
    return "\n".join(lines) + "\n"


# The vendors' batch APIs (Anthropic Message Batches, OpenAI Batch) answer within 24 h at half price.
BATCH_HINT = (
    "# batch: {enabled: true}   # uncomment: tasks with a `deadline` (or a `deferrable` batch) may wait for the "
    "vendor's batch API at half price"
)


def _offers_batch_api(settings: dict[str, Any]) -> bool:
    """The vendor's own API (not a local server or a gateway that speaks the same chat format)."""
    if settings.get("type") == "anthropic":
        return True
    return settings.get("type") == "openai_compatible" and "api.openai.com" in str(settings.get("base_url", ""))


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    status: str
    detail: str


def probe(proposals: list[Proposal]) -> list[ProbeResult]:
    """One health check per provider (an HTTP GET of the models list, or `claude --version`): nothing billed."""
    configs: dict[str, ProviderConfig] = {
        p.name: provider_class(p.type).config_model.model_validate(p.settings) for p in proposals
    }
    return asyncio.run(_probe(configs))


async def _probe(configs: dict[str, ProviderConfig]) -> list[ProbeResult]:
    registry = ProviderRegistry.from_configs(configs, secrets=env_secrets)
    try:
        checks = await asyncio.gather(*(p.health(use_cache=False) for p in registry))
        return [
            ProbeResult(p.provider_id, h.status != HealthStatus.UNHEALTHY, str(h.status), h.detail)
            for p, h in zip(registry, checks, strict=True)
        ]
    finally:
        await registry.aclose()


__all__ = ["ProbeResult", "Proposal", "probe", "propose", "render_providers_file"]
