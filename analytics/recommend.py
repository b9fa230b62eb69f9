"""Recommendations: cheaper providers per task type, subscriptions near their limits, providers to drop or grow.

Every recommendation carries the numbers it rests on, so a reader can check it against the tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.format import duration, usd
from analytics.outcomes import CAPACITY_OUTCOMES
from analytics.tables import rate, success_rate
from providers import Price

TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True, slots=True)
class RecommendPolicy:
    """The tolerances recommendations use; the report states them next to each recommendation."""

    # A cheaper provider qualifies when its success rate on the task type is at most this much lower (absolute).
    success_tolerance: float = 0.02
    # Fewer attempts than this on a (provider, task type) or provider are too few to judge (attempts that count
    # for the provider: not cancelled, bad_request or budget_exceeded).
    min_attempts: int = 20
    # Savings below this over the period are not worth a config change.
    min_saving_usd: float = 0.01
    # Utilisation (current or peak) at or above this is "near the limit".
    near_limit: float = 0.8
    # Providers below this success rate are candidates to drop.
    drop_below: float = 0.8
    # Providers whose failures are mostly capacity errors above this share of attempts need more capacity.
    capacity_error_share: float = 0.02


@dataclass(frozen=True, slots=True)
class Recommendation:
    kind: str  # cheaper_provider | near_limit | drop_provider | add_capacity
    subject: str
    message: str
    saving_usd: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "saving_usd": self.saving_usd,
            "details": self.details,
        }


def effective_prices(cube: pd.DataFrame, prices: Mapping[str, Price]) -> dict[str, dict[str, float]]:
    """Per-kind prices per provider: the configured ones, else the ledger's observed cost per million tokens."""
    out = {p: price.per_kind() for p, price in prices.items()}
    if cube.empty:
        return out
    columns = [f"tokens_{k}" for k in TOKEN_KINDS]
    sums = cube.groupby("provider_id")[["cost_usd", *columns]].sum()
    for provider, row in sums.iterrows():
        if provider in out:
            continue
        tokens = float(row[columns].sum())
        blended = float(row["cost_usd"]) / tokens * 1e6 if tokens else 0.0
        out[str(provider)] = dict.fromkeys(TOKEN_KINDS, blended)
    return out


def cheaper_providers(cube: pd.DataFrame, prices: Mapping[str, Price], policy: RecommendPolicy) -> list[Recommendation]:
    """Task types another provider serves as reliably (within the tolerance) for less, and the saving.

    The saving re-prices the current provider's actual token volumes for the task type over the period at
    the other provider's prices: sum over token kinds of volume * (price here - price there) / 1e6.
    """
    if cube.empty:
        return []
    per_kind = effective_prices(cube, prices)
    columns = [f"tokens_{k}" for k in TOKEN_KINDS]
    counts = ["attempts", "successes", "not_provider_failures", "cost_usd", *columns]
    stats = cube.groupby(["task_type", "provider_id"])[counts].sum()
    stats["success_rate"] = success_rate(stats)
    stats = stats[stats["attempts"] - stats["not_provider_failures"] >= policy.min_attempts]
    out: list[Recommendation] = []
    for task_type, group in stats.groupby(level="task_type", sort=True):
        rows = group.droplevel("task_type")
        for current, here in rows.iterrows():
            best: tuple[float, str] | None = None
            for other, there in rows.iterrows():
                if other == current or there["success_rate"] < here["success_rate"] - policy.success_tolerance:
                    continue
                saving = (
                    sum(float(here[f"tokens_{k}"]) * (per_kind[current][k] - per_kind[other][k]) for k in TOKEN_KINDS)
                    / 1e6
                )
                if saving >= policy.min_saving_usd and (best is None or saving > best[0]):
                    best = (saving, str(other))
            if best is None:
                continue
            saving, other = best
            there = rows.loc[other]
            out.append(
                Recommendation(
                    kind="cheaper_provider",
                    subject=f"{task_type}: {current} -> {other}",
                    message=(
                        f"Route {task_type} to {other} instead of {current}: success "
                        f"{there['success_rate']:.1%} vs {here['success_rate']:.1%} (tolerance "
                        f"{policy.success_tolerance:.0%} points); saves {usd(saving)} over the period on "
                        f"{int(here['tokens_input']):,} input and {int(here['tokens_output']):,} output tokens."
                    ),
                    saving_usd=saving,
                    details={
                        "task_type": task_type,
                        "from_provider": current,
                        "to_provider": other,
                        "from_success_rate": float(here["success_rate"]),
                        "to_success_rate": float(there["success_rate"]),
                        "tolerance": policy.success_tolerance,
                        "tokens": {k: int(here[f"tokens_{k}"]) for k in TOKEN_KINDS},
                        "from_prices": per_kind[str(current)],
                        "to_prices": per_kind[other],
                        "current_cost_usd": float(here["cost_usd"]),
                    },
                )
            )
    return sorted(out, key=lambda r: -(r.saving_usd or 0.0))


def near_limits(quota: pd.DataFrame, policy: RecommendPolicy) -> list[Recommendation]:
    """One recommendation per subscription whose current or peak use of any limit reaches `near_limit`."""
    if quota.empty:
        return []
    hot = quota[(quota["utilisation"] >= policy.near_limit) | (quota["peak_utilisation"] >= policy.near_limit)]
    out = []
    worst = hot.assign(top=hot[["utilisation", "peak_utilisation"]].max(axis=1)).sort_values("top", ascending=False)
    for (provider, subscription), group in worst.groupby(["provider_id", "subscription"], dropna=False, sort=True):
        row = group.iloc[0]
        who = provider if pd.isna(subscription) else f"{provider}/{subscription}"
        forecast = row["forecast_exhaustion_h"]
        when = "" if math.isnan(forecast) else f"; at the current rate it runs out in {duration(forecast)}"
        out.append(
            Recommendation(
                kind="near_limit",
                subject=who,
                message=(
                    f"{who} is near its {row['limit']} limit: {row['utilisation']:.0%} used now, peak "
                    f"{row['peak_utilisation']:.0%}{when}. Add a subscription or raise the limit."
                ),
                details={
                    "limit": row["limit"],
                    "utilisation": float(row["utilisation"]),
                    "peak_utilisation": float(row["peak_utilisation"]),
                    "threshold": policy.near_limit,
                },
            )
        )
    return out


def provider_changes(
    performance: pd.DataFrame, errors: pd.DataFrame, events: pd.DataFrame, policy: RecommendPolicy
) -> list[Recommendation]:
    """Providers to drop (low success rate) and providers to add capacity to (reliable but out of room)."""
    out: list[Recommendation] = []
    if performance.empty:
        return out
    capacity = errors[errors["outcome"].isin(CAPACITY_OUTCOMES)].groupby("provider_id")["attempts"].sum()
    blocked = (
        events[(events["kind"] == "quota.blocked") & ~events["before"]].groupby("provider_id").size()
        if not events.empty
        else pd.Series(dtype="int64")
    )
    for row in performance.itertuples(index=False):
        # Judged on the attempts that count for the provider (analytics.outcomes), like every success rate.
        counted = int(row.attempts - row.not_provider_failures)
        if counted < policy.min_attempts or counted == 0:
            continue
        full = int(capacity.get(row.provider_id, 0))
        other_errors = row.errors - full
        # Judge reliability without the capacity errors: those say "no room", which more capacity fixes.
        reliable = rate(counted - other_errors, counted)
        if row.success_rate < policy.drop_below and reliable < policy.drop_below:
            out.append(
                Recommendation(
                    kind="drop_provider",
                    subject=row.provider_id,
                    message=(
                        f"Drop {row.provider_id} or lower its priority: {row.success_rate:.1%} of "
                        f"{counted:,} attempts succeeded (threshold {policy.drop_below:.0%})."
                    ),
                    details={"success_rate": float(row.success_rate), "attempts": counted},
                )
            )
        elif reliable >= policy.drop_below and (
            full / counted >= policy.capacity_error_share or int(blocked.get(row.provider_id, 0)) > 0
        ):
            out.append(
                Recommendation(
                    kind="add_capacity",
                    subject=row.provider_id,
                    message=(
                        f"Add capacity to {row.provider_id}: it was out of room for {full:,} of {counted:,} "
                        f"attempts ({full / counted:.1%}, rate limited or quota exhausted) and blocked "
                        f"{int(blocked.get(row.provider_id, 0))} times; counting those as served, its success "
                        f"rate would be {reliable:.1%}."
                    ),
                    details={"capacity_errors": full, "attempts": counted, "success_rate_without": reliable},
                )
            )
    return out
