"""Report tables re-aggregated from the attempt cube (see `load.load_cube`): cost, performance, routing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analytics.load import TOKEN_COLUMNS
from analytics.outcomes import NOT_PROVIDER_FAILURES, SUCCESS, rate_or_none

SUM_COLUMNS = (
    "attempts",
    "successes",
    "not_provider_failures",
    "cost_usd",
    "list_price_usd",
    "tokens_input",
    "tokens_output",
    "tokens_cache_read",
    "tokens_cache_write",
)
NO_STRATEGY = "(none)"
# The dimensions a cost table can be sliced by, and the table names the report uses for them.
COST_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "by_provider": ("provider_id",),
    "by_subscription": ("provider_id", "subscription"),
    "by_model": ("provider_id", "model"),
    "by_task_type": ("task_type",),
    "by_team": ("team",),
    "by_day": ("day",),
}


def with_successes(cube: pd.DataFrame) -> pd.DataFrame:
    """The cube plus `successes` and `not_provider_failures` (attempts the provider is not judged on)."""
    out = cube.copy()
    out["successes"] = np.where(out["outcome"] == SUCCESS, out["attempts"], 0).astype("int64")
    excluded = out["outcome"].isin(sorted(NOT_PROVIDER_FAILURES))
    out["not_provider_failures"] = np.where(excluded, out["attempts"], 0).astype("int64")
    return out


def success_rate(frame: pd.DataFrame) -> pd.Series:
    """Successes over the attempts that count for the provider (`analytics.outcomes`), NaN when there are none."""
    return rate(frame["successes"], frame["attempts"] - frame["not_provider_failures"])


def rate(numerator: pd.Series | float, denominator: pd.Series | float) -> Any:
    """numerator / denominator with 0/0 as NaN (undefined rates are reported as null, never as 0 or inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(denominator, pd.Series):
            return numerator / denominator.where(denominator != 0)
        return float(numerator) / denominator if denominator else float("nan")


def cost_table(cube: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Attempts, successes, success rate, cost (and its share) and tokens per `keys` group, costliest first."""
    columns = [*keys, *SUM_COLUMNS, "success_rate", "cost_share"]
    if cube.empty:
        return pd.DataFrame(columns=columns)
    grouped = cube.groupby(list(keys), dropna=False, sort=True)[list(SUM_COLUMNS)].sum().reset_index()
    grouped["success_rate"] = success_rate(grouped)
    total = float(grouped["cost_usd"].sum())
    grouped["cost_share"] = grouped["cost_usd"] / total if total > 0 else 0.0
    if keys != ("day",):
        grouped = grouped.sort_values(["cost_usd", *keys], ascending=[False, *[True] * len(keys)], kind="stable")
    return grouped[columns].reset_index(drop=True)


def with_team_savings(by_team: pd.DataFrame, cache_by_team: pd.DataFrame) -> pd.DataFrame:
    """The by-team cost table plus what each team saved: `subscription_savings_usd` (its calls on subscription
    logins at list price, less what they were charged: nothing at the margin), `cache_hits` and
    `cache_savings_usd` (`load.load_cache_savings`), and `savings_usd`, the two savings together."""
    out = by_team.copy()
    cache = {
        _team_key(t): (int(h), float(s))
        for t, h, s in cache_by_team[["team", "cache_hits", "cache_savings_usd"]].itertuples(index=False)
    }
    found = [cache.get(_team_key(t), (0, 0.0)) for t in out["team"].tolist()]
    out["subscription_savings_usd"] = (out["list_price_usd"] - out["cost_usd"]).clip(lower=0.0).astype("float64")
    out["cache_hits"] = pd.Series([f[0] for f in found], index=out.index, dtype="int64")
    out["cache_savings_usd"] = pd.Series([f[1] for f in found], index=out.index, dtype="float64")
    out["savings_usd"] = out["subscription_savings_usd"] + out["cache_savings_usd"]
    return out


def _team_key(team: object) -> str | None:
    # The cube groups a missing team as NaN, the cache query as None: one key for "no team".
    return None if team is None or (isinstance(team, float) and np.isnan(team)) else str(team)


def cost_over_time(cube: pd.DataFrame) -> pd.DataFrame:
    """Cost and attempts per UTC day and provider (the cost chart's data)."""
    if cube.empty:
        return pd.DataFrame(columns=["day", "provider_id", "cost_usd", "attempts"])
    out = cube.groupby(["day", "provider_id"], sort=True)[["cost_usd", "attempts"]].sum().reset_index()
    return out


def totals(cube: pd.DataFrame, transitions: pd.DataFrame) -> dict[str, Any]:
    """Headline figures. Two success rates, both null when undefined:

    `attempt_success_rate` (also `success_rate`): successful attempts / attempts that count for the provider
    (`analytics.outcomes`); `task_success_rate`: tasks with a successful attempt / tasks with any attempt in the
    period. A task's attempts are counted once: attempts minus the moves whose earlier attempt is also inside
    the period (`load_transitions`' `inner`), since a task's attempts are numbered 1, 2, ... without gaps.
    """
    attempts = int(cube["attempts"].sum())
    successes = int(cube["successes"].sum())
    excluded = int(cube["not_provider_failures"].sum())
    moves = transitions.groupby("kind")["moves"].sum() if not transitions.empty else pd.Series(dtype="int64")
    inner = int(transitions["inner"].sum()) if not transitions.empty else 0
    if "kept_inner" in cube:  # pruned attempts, whose moves are no longer stored to pair (analytics.load)
        inner += int(cube["kept_inner"].sum())
    tasks = attempts - inner
    attempt_rate = rate_or_none(successes, attempts - excluded)
    return {
        "cost_usd": float(cube["cost_usd"].sum()),
        # The same calls at list price: above cost_usd by what subscription logins used (charged 0 at the margin).
        "list_price_usd": float(cube["list_price_usd" if "list_price_usd" in cube else "cost_usd"].sum()),
        "attempts": attempts,
        "successes": successes,
        "not_provider_failures": excluded,
        "success_rate": attempt_rate,
        "attempt_success_rate": attempt_rate,
        "tasks": tasks,
        "task_success_rate": rate_or_none(successes, tasks),
        **{c: int(cube[c].sum()) for c in TOKEN_COLUMNS},
        "failovers": int(moves.get("failover", 0)),
        "retries": int(moves.get("retry", 0)),
        "rotations": int(moves.get("rotation", 0)),
        "providers": int(cube["provider_id"].nunique()),
    }


def performance(
    cube: pd.DataFrame, latency: pd.DataFrame, transitions: pd.DataFrame, circuit: pd.DataFrame
) -> pd.DataFrame:
    """Per provider: success rate, latency percentiles (successful attempts), errors, moves away, circuit time.

    `errors` are the provider's failures; `not_provider_failures` (cancelled, bad_request, budget_exceeded)
    are shown apart and left out of `success_rate`. `failovers` counts moves from this provider to another
    after a failed attempt here; `retries` counts failed attempts here followed by another attempt here on the
    same subscription; `rotations` those followed by an attempt on another subscription of this provider.
    """
    columns = [
        "provider_id",
        "attempts",
        "successes",
        "success_rate",
        "errors",
        "not_provider_failures",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "failovers",
        "retries",
        "rotations",
        "failover_time_s",
        "circuit_opens",
        "circuit_open_s",
    ]
    if cube.empty:
        return pd.DataFrame(columns=columns)
    counts = ["attempts", "successes", "not_provider_failures"]
    out = cube.groupby("provider_id", sort=True)[counts].sum().reset_index()
    out["success_rate"] = success_rate(out)
    out["errors"] = out["attempts"] - out["successes"] - out["not_provider_failures"]
    out = out.merge(latency.drop(columns=["latency_n"]), on="provider_id", how="left")
    for kind, name in (("failover", "failovers"), ("retry", "retries"), ("rotation", "rotations")):
        moved = transitions[transitions["kind"] == kind].groupby("from_provider")["moves"].sum()
        out[name] = out["provider_id"].map(moved).fillna(0).astype("int64")
    lost = transitions[transitions["kind"] == "failover"].groupby("from_provider")["lost_ms"].sum() / 1000
    out["failover_time_s"] = out["provider_id"].map(lost).fillna(0.0)
    out = out.merge(circuit, on="provider_id", how="left")
    out["circuit_opens"] = out["circuit_opens"].fillna(0).astype("int64")
    out["circuit_open_s"] = out["circuit_open_s"].fillna(0.0)
    return out[columns]


def error_mix(cube: pd.DataFrame) -> pd.DataFrame:
    """Failed attempts per provider and outcome, with their share of the provider's attempts and failed attempts.

    `counts_against_provider` is false for the caller's and the router's own outcomes (`analytics.outcomes`).
    """
    columns = ["provider_id", "outcome", "counts_against_provider", "attempts", "share_of_attempts"]
    columns.append("share_of_errors")
    if cube.empty:
        return pd.DataFrame(columns=columns)
    per_provider = cube.groupby("provider_id")["attempts"].sum()
    failed = cube[cube["outcome"] != "success"]
    out = failed.groupby(["provider_id", "outcome"], sort=True)["attempts"].sum().reset_index()
    errors = out.groupby("provider_id")["attempts"].transform("sum")
    out["share_of_attempts"] = out["attempts"] / out["provider_id"].map(per_provider)
    out["share_of_errors"] = out["attempts"] / errors
    out["counts_against_provider"] = ~out["outcome"].isin(sorted(NOT_PROVIDER_FAILURES))
    return out.sort_values(["provider_id", "attempts", "outcome"], ascending=[True, False, True], kind="stable")[
        columns
    ].reset_index(drop=True)


def routing_efficiency(cube: pd.DataFrame, transitions: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: routing decisions (a task's first attempt), share decided right the first time, time lost.

    A first-choice success is a task whose first attempt (on the first provider of its routing order)
    succeeded; `failover_time_s`/`retry_time_s` sum the failed attempts' latency before each move.
    """
    columns = ["strategy", "decisions", "first_choice_successes", "first_choice_rate", "failovers", "retries"]
    columns += ["failover_time_s", "retry_time_s"]
    if cube.empty:
        return pd.DataFrame(columns=columns)
    # Attempts recorded without a strategy still count, under one visible label rather than a dropped NaN key.
    first = cube.assign(
        strategy=cube["strategy"].fillna(NO_STRATEGY),
        first_ok=np.where(cube["outcome"] == "success", cube["first_attempts"], 0),
    )
    out = (
        first.groupby("strategy", sort=True)[["first_attempts", "first_ok"]]
        .sum()
        .reset_index()
        .rename(columns={"first_attempts": "decisions", "first_ok": "first_choice_successes"})
    )
    out["first_choice_rate"] = rate(out["first_choice_successes"], out["decisions"])
    moves = transitions.assign(strategy=transitions["strategy"].fillna(NO_STRATEGY))
    for kind, count, seconds in (("failover", "failovers", "failover_time_s"), ("retry", "retries", "retry_time_s")):
        part = moves[moves["kind"] == kind].groupby("strategy")[["moves", "lost_ms"]].sum()
        out[count] = out["strategy"].map(part["moves"]).fillna(0).astype("int64")
        out[seconds] = out["strategy"].map(part["lost_ms"]).fillna(0.0) / 1000
    return out[columns]
