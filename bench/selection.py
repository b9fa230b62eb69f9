"""Micro-benchmark: the cost of one routing decision's ordering step, per strategy, over 10 candidates.

Run `python bench/selection.py` to print a table and write bench/results/selection.json; other scripts
import `measure_selection`. The target is a p99 well under 50 µs per decision.
"""

from __future__ import annotations

import gc
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from routing import STRATEGIES, Candidate, make_strategy

TASK_TYPE = "code_review"
RESULTS = Path(__file__).parent / "results" / "selection.json"


def _candidates(count: int = 10, seed: int = 42) -> list[Candidate]:
    """A realistic mix: varied priorities, loads, latencies (one unmeasured), costs and scores."""
    rng = random.Random(seed)
    return [
        Candidate(
            provider_id=f"provider_{i}",
            priority=rng.randint(1, 5),
            in_flight=rng.randint(0, 8),
            max_concurrency=rng.choice((4, 8, 16)),
            latency_ms=None if i == count - 1 else rng.uniform(200, 20_000),
            est_cost_usd=rng.uniform(0, 0.2),
            capability_match=rng.choice((0.5, 1.0)),
            adaptive_score=None if i == count - 1 else rng.random(),
            index=i,
        )
        for i in range(count)
    ]


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure_selection(n: int = 20000) -> dict[str, dict[str, float]]:
    """Time `order()` of every strategy over 10 candidates, `n` decisions each; µs per decision."""
    candidates = _candidates()
    clock = time.perf_counter_ns
    results: dict[str, dict[str, float]] = {}
    for name in STRATEGIES:
        strategy = make_strategy(name)
        order = strategy.order
        for _ in range(min(1000, n)):  # warm caches and the round-robin counter
            order(candidates, TASK_TYPE)
        samples = [0] * n
        # GC stays on: a real decision pays for collections too, and p99 should show it.
        gc.collect()
        for i in range(n):
            start = clock()
            order(candidates, TASK_TYPE)
            samples[i] = clock() - start
        samples.sort()
        results[name] = {
            "median_us": _percentile(samples, 0.5) / 1000,
            "p99_us": _percentile(samples, 0.99) / 1000,
            "max_us": samples[-1] / 1000,
        }
    return results


def _table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'strategy':<18} {'median µs':>10} {'p99 µs':>10}", "-" * 40]
    lines += [f"{name:<18} {r['median_us']:>10.2f} {r['p99_us']:>10.2f}" for name, r in results.items()]
    return "\n".join(lines)


def main() -> None:
    results = measure_selection()
    print(_table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
