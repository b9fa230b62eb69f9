"""Routing engine benchmark against LiteLLM's Router, in one run on the same 10-provider setup.

    python bench/routing.py            # needs the bench extra (litellm) for the comparison
    python bench/routing.py --quick    # fewer iterations

Measures, for Switchboard and for LiteLLM's Router (10 deployments, `mock_response`, no network):
- selection time per decision for every strategy (median, p99): Switchboard's whole planning step
  (capability, circuit, health, quota and budget filters plus the strategy's order), LiteLLM's deployment
  pick (`Router.select`); ours twice: plain, and with a realistic config (limits on every provider, a run
  and a day budget, quota windows already holding a few thousand calls);
- routing overhead per call: `route()` with the SQLite ledger on (each call waits for its attempt row's
  commit) minus a direct call of the zero-latency mock; for LiteLLM `Router.acompletion` minus a direct
  `litellm.acompletion`, both with `mock_response`;
- routed calls per second with many tasks in flight: against zero-latency mocks (the engine's own cost),
  and against mocks answering after 10 ms (calls really in flight, queued on per-provider slots);
- time from a failure being known to the next provider's call starting;
- restoring quota windows from 20,000 recorded attempts (what every run start does).
Prints a table and writes bench/results/routing.json, with the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger import AttemptRecord, Ledger, LedgerWriter, NewTask  # noqa: E402
from providers import AITask, ExecutionContext, LocalMockConfig, LocalMockProvider  # noqa: E402
from routing import (  # noqa: E402
    STRATEGY_NAMES,
    ProviderRegistry,
    Router,
    RunInfo,
    SwitchboardConfig,
    restore_router_state,
)

RESULTS = ROOT / "bench" / "results" / "routing.json"
PROVIDERS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_us: list[float]) -> dict[str, float]:
    return {"median_us": statistics.median(values_us), "p99_us": percentile(values_us, 0.99)}


# --- Switchboard ------------------------------------------------------------------------------------


IN_FLIGHT_LATENCY_MS = 10.0
# Per-provider limits and budgets far above what the benchmark uses: every check runs, none refuses.
REALISTIC_LIMITS = {"requests_per_minute": 10**7, "tokens_per_hour": 10**10, "cost_usd_per_day": 10.0**7}
REALISTIC_BUDGET = {"max_cost_usd_per_run": 10.0**7, "max_cost_usd_per_day": 10.0**7}


def switchboard_router(
    ledger: Ledger | None,
    *,
    failing_first: bool = False,
    concurrency: int = 64,
    latency_ms: float = 0.0,
    realistic: bool = False,
) -> tuple[Router, LedgerWriter | None]:
    registry = ProviderRegistry()
    for i in range(PROVIDERS):
        config = LocalMockConfig(
            latency_ms=latency_ms,
            priority=i + 1,
            max_concurrency=concurrency,
            capabilities=None if i % 2 else ["code_review", "bug_fix", "summarization"],
            failure_rate=1.0 if failing_first and i == 0 else 0.0,
            limits=REALISTIC_LIMITS if realistic else {},  # type: ignore[arg-type]
        )
        registry.add_instance(LocalMockProvider(f"mock{i}", config))
    settings = SwitchboardConfig.model_validate(
        # A threshold the benchmark never reaches, so every call of the failover measurement fails over.
        {
            "providers": {"_": {"type": "local_mock"}},
            "circuit": {"failure_threshold": 10**9, "min_calls": 10, "window": 20, "error_rate_threshold": 1.0},
            **({"budget": REALISTIC_BUDGET} if realistic else {}),
        }
    )
    writer = LedgerWriter(ledger) if ledger else None
    return Router(registry, settings, recorder=writer.submit if writer else None), writer


def task(i: int) -> AITask:
    return AITask(id=f"t{i}", type="code_review" if i % 3 else "summarization", prompt=f"Review change number {i}")


async def measure_selection(n: int, *, realistic: bool = False) -> dict[str, dict[str, float]]:
    router, _ = switchboard_router(None, realistic=realistic)
    run = RunInfo()
    if realistic:
        # Quota windows and budgets holding a few thousand calls, as in a long run.
        await router.route_many([task(10**7 + i) for i in range(3000)], run)
    out: dict[str, dict[str, float]] = {}
    for name in STRATEGY_NAMES:
        tasks = [task(i) for i in range(n)]
        for t in tasks[:500]:
            router._plan(t, run, name, False)
        samples = []
        gc.collect()
        for t in tasks:
            start = time.perf_counter_ns()
            router._plan(t, run, name, False)
            samples.append((time.perf_counter_ns() - start) / 1000)
        out[name] = summary(samples)
    return out


async def timed(calls: int, make: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        await make(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def new_ledger(tmp: Path, name: str) -> tuple[Ledger, str]:
    ledger = Ledger(url=f"sqlite:///{tmp / name}")
    run_id, _ = ledger.start_or_resume_run(
        batch_name="bench",
        batch_hash=name,
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="normal")],
    )
    return ledger, run_id


async def measure_overhead(tmp: Path, calls: int) -> dict[str, float]:
    ledger, run_id = new_ledger(tmp, "overhead.db")
    router, writer = switchboard_router(ledger)
    direct_provider = router.state("mock1").provider
    run = RunInfo(run_id=run_id)
    await timed(200, lambda i: router.route(task(10**6 + i), run))  # warm up
    await timed(200, lambda i: direct_provider.execute_task(task(i), ExecutionContext()))
    routed = await timed(calls, lambda i: router.route(task(i), run))
    direct = await timed(calls, lambda i: direct_provider.execute_task(task(i), ExecutionContext()))
    assert writer is not None
    writer.close()
    rows = len(ledger.attempts(run_id))
    return {
        "routed_median_us": statistics.median(routed),
        "direct_median_us": statistics.median(direct),
        "overhead_us_median": statistics.median(routed) - statistics.median(direct),
        "overhead_us_p99": percentile(routed, 0.99) - percentile(direct, 0.99),
        "ledger_rows": rows,
    }


async def measure_throughput(
    tmp: Path, calls: int, *, latency_ms: float = 0.0, concurrency: int = 64, name: str = "throughput.db"
) -> dict[str, float]:
    ledger, run_id = new_ledger(tmp, name)
    router, writer = switchboard_router(ledger, latency_ms=latency_ms, concurrency=concurrency)
    run = RunInfo(run_id=run_id, strategy="least_loaded")
    await router.route_many([task(10**6 + i) for i in range(500)], run)
    start = time.perf_counter()
    results = await router.route_many([task(i) for i in range(calls)], run)
    elapsed = time.perf_counter() - start
    assert writer is not None
    writer.close()
    completed = sum(r.status == "completed" for r in results)
    return {
        "calls": calls,
        "mock_latency_ms": latency_ms,
        "max_in_flight": PROVIDERS * concurrency,
        "seconds": elapsed,
        "calls_per_s": completed / elapsed,
        "completed": completed,
    }


async def measure_failover(tmp: Path, calls: int) -> dict[str, float]:
    ledger, run_id = new_ledger(tmp, "failover.db")
    router, writer = switchboard_router(ledger, failing_first=True)
    results = [await router.route(task(i), RunInfo(run_id=run_id)) for i in range(calls)]
    assert writer is not None
    writer.close()
    gaps = [
        (r.attempts[1].started_at - r.attempts[0].finished_at).total_seconds() * 1e6
        for r in results
        if len(r.attempts) == 2
    ]
    return {"failovers": len(gaps), **summary(gaps)}


def measure_restore(tmp: Path, attempts: int) -> dict[str, float]:
    """Rebuild quota windows from `attempts` recorded attempts, out of time order, as a run start does."""
    ledger, run_id = new_ledger(tmp, "restore.db")
    now = datetime.now(UTC)
    ledger.record_attempts(
        AttemptRecord(
            run_id=run_id,
            task_id="t",
            provider_id=f"mock{i % PROVIDERS}",
            task_type="code_review",
            attempt=i + 1,
            outcome="success",
            cost_usd=0.001,
            started_at=now - timedelta(seconds=(i * 7919) % 86_000),
            finished_at=now,
        )
        for i in range(attempts)
    )
    router, _ = switchboard_router(None, realistic=True)
    start = time.perf_counter()
    restore_router_state(router, ledger, run_id)
    return {"attempts": attempts, "ms": (time.perf_counter() - start) * 1000}


# --- LiteLLM ----------------------------------------------------------------------------------------


def litellm_available() -> bool:
    try:
        import litellm  # noqa: F401
    except ImportError:
        return False
    return True


def litellm_router(strategy: str = "simple-shuffle") -> Any:
    from litellm import Router as LiteRouter

    model_list = [
        {
            "model_name": "bench",
            "litellm_params": {"model": f"openai/gpt-4o-mini-{i}", "api_key": "sk-bench", "mock_response": "ok"},
            "model_info": {"id": f"dep-{i}"},
        }
        for i in range(PROVIDERS)
    ]
    return LiteRouter(model_list=model_list, routing_strategy=strategy, num_retries=0)


async def litellm_pick(router: Any, messages: list[dict[str, str]]) -> Any:
    """One deployment pick, through `Router.select` where this LiteLLM has it (the older name is deprecated)."""
    select = getattr(router, "select", None)
    if select is not None:
        return await select("bench", {}, messages=messages)
    return await router.async_get_available_deployment(model="bench", request_kwargs={}, messages=messages)


async def litellm_figures(calls: int, selection_n: int) -> dict[str, Any]:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    # Its cost-based strategy logs a traceback per mocked call (no model_info on mock responses); not ours to fix.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    messages = [{"role": "user", "content": "Review change number 1"}]
    router = litellm_router()

    async def direct(i: int) -> Any:
        return await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=messages, mock_response="ok", api_key="sk-bench"
        )

    async def routed(i: int, delay_s: float | None = None) -> Any:
        extra = {"mock_delay": delay_s} if delay_s else {}
        return await router.acompletion(model="bench", messages=messages, mock_response="ok", **extra)

    await timed(100, routed)
    await timed(100, direct)
    routed_us = await timed(calls, routed)
    direct_us = await timed(calls, direct)

    selection: dict[str, dict[str, Any]] = {}
    for strategy in (
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "cost-based-routing",
        "usage-based-routing-v2",
    ):
        try:
            picker = litellm_router(strategy)
            for _ in range(100):
                await litellm_pick(picker, messages)
            samples = []
            for _ in range(selection_n):
                start = time.perf_counter_ns()
                await litellm_pick(picker, messages)
                samples.append((time.perf_counter_ns() - start) / 1000)
            selection[strategy] = summary(samples)
        except Exception as exc:  # a strategy this litellm version lacks
            selection[strategy] = {"error": f"{type(exc).__name__}: {str(exc)[:100]}"}

    many = max(calls, 2000)
    start = time.perf_counter()
    await asyncio.gather(*(routed(i) for i in range(many)))
    elapsed = time.perf_counter() - start
    in_flight = 2000
    start = time.perf_counter()
    await asyncio.gather(*(routed(i, IN_FLIGHT_LATENCY_MS / 1000) for i in range(in_flight)))
    in_flight_elapsed = time.perf_counter() - start
    picks = [f["p99_us"] for f in selection.values() if "p99_us" in f]
    return {
        "version": getattr(litellm, "__version__", None) or _dist_version("litellm"),
        "routed_median_us": statistics.median(routed_us),
        "direct_median_us": statistics.median(direct_us),
        "overhead_us_median": statistics.median(routed_us) - statistics.median(direct_us),
        "selection": selection,
        "selection_us_p99": max(picks) if picks else None,
        "calls_per_s": many / elapsed,
        "calls_per_s_in_flight": in_flight / in_flight_elapsed,
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# --- report -----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def print_table(result: dict[str, Any]) -> None:
    sb, lt = result["switchboard"], result.get("litellm")
    print(f"\nSelection time per decision, {PROVIDERS} providers (µs)")
    print(f"{'strategy':<26}{'plain median':>14}{'p99':>8}{'realistic median':>18}{'p99':>8}")
    for name, fig in sb["selection"].items():
        real = sb["selection_realistic"][name]
        print(
            f"{'switchboard ' + name:<26}{fig['median_us']:>14.1f}{fig['p99_us']:>8.1f}"
            f"{real['median_us']:>18.1f}{real['p99_us']:>8.1f}"
        )
    if lt:
        for name, fig in lt["selection"].items():
            if "median_us" in fig:
                print(f"{'litellm ' + name:<26}{fig['median_us']:>14.1f}{fig['p99_us']:>8.1f}")
            else:
                print(f"{'litellm ' + name:<26}  {fig.get('error', '')[:60]}")
    print("\nPer call and throughput")
    print(f"{'figure':<52}{'switchboard':>14}{'litellm':>14}{'ratio':>10}")

    def row(label: str, ours: float, theirs: float | None, fmt: str = "{:.1f}", higher_better: bool = False) -> None:
        # The ratio says how many times better we are: their/our time, or our/their rate.
        ratio = f"{(ours / theirs if higher_better else theirs / ours):.1f}x" if theirs and ours else "-"
        print(f"{label:<52}{fmt.format(ours):>14}{(fmt.format(theirs) if theirs else '-'):>14}{ratio:>10}")

    row("selection p99, worst strategy, plain config, µs", sb["selection_us_p99"], lt and lt["selection_us_p99"])
    row("selection p99, worst strategy, realistic config, µs", sb["selection_realistic_us_p99"], None)
    row("routing overhead per call, median µs", sb["overhead_us_median"], lt and lt["overhead_us_median"])
    row("routed calls/s, zero-latency mock", sb["calls_per_s"], lt and lt["calls_per_s"], "{:.0f}", True)
    inflight = sb["throughput_in_flight"]
    row(
        f"routed calls/s, {IN_FLIGHT_LATENCY_MS:g} ms mock, up to {inflight['max_in_flight']} in flight",
        sb["calls_per_s_in_flight"],
        lt and lt["calls_per_s_in_flight"],
        "{:.0f}",
        True,
    )
    fo = sb["failover"]
    print(f"{'failure known -> next call, median µs':<52}{fo['median_us']:>14.1f}   (p99 {fo['p99_us']:.1f})")
    rs = sb["restore"]
    print(f"{'restore windows from ' + format(rs['attempts'], ',') + ' attempts, ms':<52}{rs['ms']:>14.1f}")
    if lt:
        ratio = lt["overhead_us_median"] / sb["overhead_us_median"]
        print(f"\nratio (LiteLLM overhead / ours): {ratio:.1f}x (target >= 5x)")
    print(f"load average before / after: {result['load_average']['before']} / {result['load_average']['after']}")


async def main_async(quick: bool) -> dict[str, Any]:
    calls = 500 if quick else 3000
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        selection = await measure_selection(2000 if quick else 20000)
        realistic = await measure_selection(2000 if quick else 20000, realistic=True)
        overhead = await measure_overhead(tmp, calls)
        throughput = await measure_throughput(tmp, 2000 if quick else 10000)
        in_flight = await measure_throughput(
            tmp, 2000 if quick else 10000, latency_ms=IN_FLIGHT_LATENCY_MS, concurrency=32, name="in_flight.db"
        )
        failover = await measure_failover(tmp, 300 if quick else 2000)
        restore = measure_restore(tmp, 20_000)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "providers": PROVIDERS,
        "switchboard": {
            "selection": selection,
            "selection_us_p99": max(f["p99_us"] for f in selection.values()),
            "selection_realistic": realistic,
            "selection_realistic_us_p99": max(f["p99_us"] for f in realistic.values()),
            "overhead_us_median": overhead["overhead_us_median"],
            "overhead": overhead,
            "calls_per_s": throughput["calls_per_s"],
            "throughput": throughput,
            "calls_per_s_in_flight": in_flight["calls_per_s"],
            "throughput_in_flight": in_flight,
            "failover": failover,
            "restore": restore,
        },
    }
    if litellm_available():
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        result["litellm"] = await litellm_figures(calls, 2000 if quick else 10000)
        result["ratio_overhead_litellm_over_switchboard"] = (
            result["litellm"]["overhead_us_median"] / result["switchboard"]["overhead_us_median"]
        )
    else:
        print("litellm is not installed (pip install -e '.[bench]'): LiteLLM figures skipped", file=sys.stderr)
    result["load_average"] = {"before": load_before, "after": load_average()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # LiteLLM must not reach the internet: local cost map, no telemetry.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    result = asyncio.run(main_async(args.quick))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
