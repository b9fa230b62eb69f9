"""Outcome benchmark: the standard synthetic week through the real routing engine, under every strategy.

    python bench/outcomes.py             # seed 1: writes bench/results/outcomes.json
    python bench/outcomes.py --seed 2    # another week from the same distributions: outcomes-seed2.json

The workload (planning/synthetic.py: task types, token sizes, arrivals, priorities, affinities, deadlines,
incidents) and the four providers (planning/synthetic_providers.py: a Claude Code subscription pool, the
Anthropic API, an OpenAI-compatible API, a local model) are described there; planning/outcomes.py says how each
figure is counted. Everything runs on virtual time: a week takes a few seconds per strategy, and the same seed
gives the same figures.

Prints one row per strategy with its cost and quota failures beside round robin's, and writes
{"strategies": {name: {cost_usd, task_success_rate, quota_failures, p50_task_s, p95_task_s, ...}}, ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planning import DEFAULT_TASKS, StrategyOutcome, fixed_usd, run_week, synthetic_week  # noqa: E402
from routing import STRATEGY_NAMES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BASELINE = "round_robin"


def results_path(seed: int) -> Path:
    return RESULTS / ("outcomes.json" if seed == 1 else f"outcomes-seed{seed}.json")


def measure(seed: int, tasks: int = DEFAULT_TASKS) -> dict[str, Any]:
    week = synthetic_week(seed, tasks)
    outcomes: dict[str, StrategyOutcome] = {}
    seconds: dict[str, float] = {}
    for name in STRATEGY_NAMES:
        started = time.perf_counter()
        outcomes[name] = run_week(week, name)
        seconds[name] = round(time.perf_counter() - started, 2)
    return {
        "seed": seed,
        "tasks": len(week.tasks),
        # Subscription fees for the week: paid whatever the strategy, so not in any strategy's cost_usd.
        "fixed_usd": round(fixed_usd(), 2),
        "incidents": [
            {"vendor": i.vendor, "start_s": round(i.start_s), "end_s": round(i.end_s), "outcome": i.outcome}
            for i in week.incidents
        ],
        "strategies": {name: o.figures() for name, o in outcomes.items()},
        "run_seconds": seconds,
    }


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else ("-" if value == 0 else "inf")


def table(result: dict[str, Any]) -> str:
    rows = result["strategies"]
    base = rows[BASELINE]
    head = (
        f"{'strategy':<18} {'cost $':>8} {'vs rr':>6} {'success':>8} {'quota f.':>8} {'vs rr':>6} "
        f"{'p50 s':>7} {'p95 s':>7} {'list $':>8}"
    )
    lines = [
        f"seed {result['seed']}: {result['tasks']} tasks; subscription fees ${result['fixed_usd']} a week, apart",
        head,
        "-" * len(head),
    ]
    for name, r in rows.items():
        lines.append(
            f"{name:<18} {r['cost_usd']:>8.2f} {_ratio(r['cost_usd'], base['cost_usd']):>6} "
            f"{r['task_success_rate']:>8.2%} {r['quota_failures']:>8} "
            f"{_ratio(r['quota_failures'], base['quota_failures']):>6} "
            f"{_fmt(r['p50_task_s']):>7} {_fmt(r['p95_task_s']):>7} {r['list_price_usd']:>8.2f}"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="which week to draw (default 1)")
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help="tasks in the week")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON")
    args = parser.parse_args()
    result = measure(args.seed, args.tasks)
    print(table(result))
    out = args.out or results_path(args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
