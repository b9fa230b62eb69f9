"""Providers as the API returns them: configuration without secrets (keys by the name of their variable, with
`set` or `missing`; URLs without user info or query), capabilities and, from the router, live status."""

from __future__ import annotations

from api.models import ProviderOut, SubscriptionOut
from providers import ClaudeCliConfig, Limits, ProviderConfig, SecretResolver, safe_url
from routing import ProviderLiveView


def _limits(limits: Limits) -> dict[str, float]:
    return {k: v for k, v in limits.model_dump().items() if v is not None}


def _key_state(env_name: str | None, secrets: SecretResolver) -> str | None:
    if env_name is None:
        return None
    return "set" if secrets(env_name) else "missing"


def describe_provider(
    provider_id: str,
    cfg: ProviderConfig,
    *,
    source: str,
    secrets: SecretResolver,
    status: ProviderLiveView | None = None,
) -> ProviderOut:
    subscriptions = []
    if isinstance(cfg, ClaudeCliConfig):
        subscriptions = [
            SubscriptionOut(
                name=s.name,
                kind="config_dir" if s.config_dir else "api_key_env",
                config_dir=s.config_dir,
                api_key_env=s.api_key_env,
                api_key=_key_state(s.api_key_env, secrets),  # type: ignore[arg-type]
                limits=_limits(s.limits),
            )
            for s in cfg.subscriptions
        ]
    return ProviderOut(
        id=provider_id,
        type=cfg.type,
        source=source,  # type: ignore[arg-type]
        enabled=cfg.enabled,
        priority=cfg.priority,
        capabilities=sorted(cfg.capabilities) if cfg.capabilities is not None else None,
        model=cfg.model,
        base_url=safe_url(cfg.base_url),
        api_key_env=cfg.api_key_env,
        api_key=_key_state(cfg.api_key_env, secrets),  # type: ignore[arg-type]
        limits=_limits(cfg.limits),
        max_concurrency=cfg.max_concurrency,
        timeout_s=cfg.timeout_s,
        subscriptions=subscriptions,
        status=status,
    )


__all__ = ["describe_provider"]
