"""The providers file: which providers exist and how routing treats them (DESIGN.md "Providers config")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from ledger import CACHE_PROVIDER
from providers import ProviderConfig, name_problem
from routing.circuit import CircuitSettings
from routing.documents import load_document
from routing.errors import ConfigError, describe_validation_error
from routing.failover import FailoverSettings
from routing.registry import provider_class

PROVIDERS_ENV = "SWITCHBOARD_PROVIDERS"
StrategyName = Literal[
    "round_robin",
    "least_loaded",
    "fastest_response",
    "priority_based",
    "capability_based",
    "cost_based",
    "adaptive",
]
STRATEGY_NAMES: tuple[str, ...] = get_args(StrategyName)
BUILTIN_SOURCE = "<built-in default providers>"
# Names no provider may take: `/api/v1/providers/usage` is the usage report, not a provider; `cache` is what the
# ledger names as the answerer of a task served from the response cache.
RESERVED_PROVIDER_IDS = frozenset({"usage", CACHE_PROVIDER})
PROVIDER_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cost_usd_per_run: float | None = Field(default=None, gt=0)
    max_cost_usd_per_day: float | None = Field(default=None, gt=0)


class TeamSettings(BaseModel):
    """One team's settings (the seed's per-organisation settings); a task's `team` (or its batch's) is charged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Shared by every process and run of the team, per UTC day on the shared store's clock.
    max_cost_usd_per_day: float | None = Field(default=None, gt=0)
    # The providers the team's tasks may use (None: every one); those it prefers, tried first in this order while
    # they can take the task (a provider near its limit still goes after the others, as for every task).
    allowed_providers: list[str] | None = None
    prefer: list[str] = []


class RunnerSettings(BaseModel):
    """How the batch flow executes its tasks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # thread: Prefect's ThreadPoolTaskRunner; dask: prefect-dask's DaskTaskRunner (needs a Prefect server).
    kind: Literal["thread", "dask"] = "thread"
    # Prefect's thread pool is unbounded by default; provider calls are I/O bound, so a modest cap suffices.
    max_workers: int = Field(default=16, gt=0)
    # Dask: an existing scheduler's address, else a LocalCluster of `dask_workers` processes.
    dask_address: str | None = None
    dask_workers: int = Field(default=2, gt=0)
    # Batches with more tasks than this run in chunked mode (one Prefect task per DAG level, tasks routed
    # concurrently inside it); smaller ones get one Prefect task per node. `switchboard run --mode` overrides.
    chunk_threshold: int = Field(default=200, gt=0)
    # Chunked mode groups consecutive DAG levels into Prefect tasks of at least this many batch tasks. Inside a
    # chunk each task starts as soon as its dependencies finish; between chunks there is a barrier (the next
    # starts when all of the previous one has) and a Prefect hand-off, about 0.2 s measured: so, large chunks.
    chunk_size: int = Field(default=2000, gt=0)


class AlertSettings(BaseModel):
    """Thresholds that raise Prefect events and a line in the usage report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_cost_usd: float | None = Field(default=None, gt=0)
    # Fraction 0..1 of failed attempts over the report window.
    error_rate: float | None = Field(default=None, gt=0, le=1)
    # Alert when a subscription or provider limit is forecast to run out within this many hours.
    quota_forecast_hours: float | None = Field(default=None, gt=0)


class ApiToken(BaseModel):
    """A bearer token of the HTTP API, by the name of the env var (or Prefect Secret block) holding it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)  # who: recorded with admin changes, never the token
    scope: Literal["read", "admin"] = "read"
    token_env: str = Field(min_length=1)


class ApiSettings(BaseModel):
    """`switchboard serve`'s settings (`api:` in the providers file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: list[ApiToken] = []
    # Requests with a larger body are refused (413) before they are read.
    max_body_bytes: int = Field(default=1_000_000, gt=0)


class CacheSettings(BaseModel):
    """The response cache (routing.cache): an identical task of the same team answered within `ttl_s` is served
    from the ledger at no cost. Opt-in: a cached answer is only right where the same prompt wants the same answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    ttl_s: float = Field(default=86400.0, gt=0)


class SwitchboardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    strategy: str = "priority_based"
    budget: Budget = Budget()
    teams: dict[str, TeamSettings] = {}
    switch_threshold: float = Field(default=0.9, gt=0, le=1)
    reserve_for_critical: float = Field(default=0.1, ge=0, lt=1)
    circuit: CircuitSettings = CircuitSettings()
    failover: FailoverSettings = FailoverSettings()
    runner: RunnerSettings = RunnerSettings()
    alerts: AlertSettings = AlertSettings()
    api: ApiSettings = ApiSettings()
    cache: CacheSettings = CacheSettings()
    providers: dict[str, SerializeAsAny[ProviderConfig]] = Field(min_length=1)
    # Where this config came from, for messages; not part of the file.
    source: str = Field(default=BUILTIN_SOURCE, exclude=True)
    # Providers whose settings come from the HTTP API's overlay (routing.overlay), not from `source`.
    from_api: frozenset[str] = Field(default=frozenset(), exclude=True)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        return check_strategy(value)


def _team_problems(config: SwitchboardConfig) -> list[str]:
    """Teams that name a provider the file does not configure (a typo would silently route elsewhere)."""
    problems = []
    known = ", ".join(config.providers)
    for name, team in config.teams.items():
        for key, ids in (("allowed_providers", team.allowed_providers or []), ("prefer", team.prefer)):
            for index, provider_id in enumerate(ids):
                if provider_id not in config.providers:
                    problems.append(
                        f"teams.{name}.{key}[{index}]: no provider {provider_id!r} is configured (configured: {known})"
                    )
        if team.allowed_providers is not None:
            for index, provider_id in enumerate(team.prefer):
                if provider_id in config.providers and provider_id not in team.allowed_providers:
                    problems.append(
                        f"teams.{name}.prefer[{index}]: {provider_id!r} is not in the team's allowed_providers"
                    )
    return problems


def check_strategy(name: str) -> str:
    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    return name


DEFAULT_CONFIG_DOC: dict[str, Any] = {
    "version": 1,
    "strategy": "priority_based",
    "providers": {
        "mock_primary": {"type": "local_mock", "priority": 1, "latency_ms": 40, "failure_rate": 0.1},
        "mock_backup": {"type": "local_mock", "priority": 2, "latency_ms": 80},
    },
}


def load_config(path: str | Path | None = None) -> SwitchboardConfig:
    """The providers file at `path`, else at $SWITCHBOARD_PROVIDERS, else two built-in mock providers."""
    chosen = path or os.environ.get(PROVIDERS_ENV)
    if not chosen:
        return parse_config(DEFAULT_CONFIG_DOC, BUILTIN_SOURCE)
    file = Path(chosen).expanduser()
    return parse_config(load_document(file, ConfigError), str(file))


def parse_config(doc: dict[str, Any], source: str) -> SwitchboardConfig:
    """Validate a providers document; every problem is reported, each naming its provider and field."""
    problems: list[str] = []
    raw_providers = doc.get("providers")
    providers: dict[str, ProviderConfig] = {}
    if isinstance(raw_providers, dict):
        for provider_id, raw in raw_providers.items():
            parsed = _parse_provider(str(provider_id), raw, problems)
            if parsed is not None:
                providers[str(provider_id)] = parsed
    elif raw_providers is not None:
        problems.append("providers: must be a mapping of provider name to its settings")
    try:
        config = SwitchboardConfig.model_validate({**doc, "providers": providers or raw_providers, "source": source})
    except ValidationError as exc:
        problems += [p for p in describe_validation_error(exc) if not p.startswith("providers.")]
        if not problems:
            problems = describe_validation_error(exc)
        config = None
    if config is not None:
        problems += _team_problems(config)
    if config is not None and not any(p.enabled for p in config.providers.values()):
        problems.append("providers: every provider is disabled (enabled: false); enable at least one")
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def parse_provider(provider_id: str, raw: Any, source: str) -> ProviderConfig:
    """One provider's settings, validated as in a providers file; ConfigError lists every problem."""
    problems: list[str] = []
    parsed = _parse_provider(provider_id, raw, problems)
    if parsed is None or problems:
        raise ConfigError(source, problems)
    return parsed


def _parse_provider(provider_id: str, raw: Any, problems: list[str]) -> ProviderConfig | None:
    where = f"providers.{provider_id}"
    if provider_id in RESERVED_PROVIDER_IDS:
        what = (
            "the ledger's name for answers served from the response cache"
            if provider_id == CACHE_PROVIDER
            else f"the API's /providers/{provider_id} route"
        )
        problems.append(f"{where}: {provider_id!r} is a reserved name ({what})")
        return None
    bad_name = name_problem(provider_id)
    if bad_name is not None:  # the name is stored with every attempt and printed: shown escaped, refused
        problems.append(f"providers.{provider_id!r}: the provider's name {bad_name}")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of settings")
        return None
    type_name = raw.get("type")
    if not type_name:
        problems.append(f"{where}.type: missing (one of the provider types, e.g. local_mock)")
        return None
    try:
        model = provider_class(str(type_name)).config_model
    except (KeyError, TypeError, ImportError) as exc:
        problems.append(f"{where}.type: {exc.args[0] if exc.args else exc}")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, prefix=where))
        return None
