"""Routing with limits shared across processes (the ledger's database as the store), beside LiteLLM's Router.

    python bench/shared_limits.py            # PostgreSQL at $SWITCHBOARD_BENCH_POSTGRES_URL or 127.0.0.1:5432/test
    python bench/shared_limits.py --quick    # fewer calls

For 1 and 4 processes on PostgreSQL (and 1 on SQLite), each process routes over 10 mock providers with limits on
every provider and a run and a day budget (far above what it uses: every check runs in the shared store, none
refuses), the ledger on (each call waits for its attempt row's commit), through the runtime's shared store:
- routed calls per second, in total across the processes, with 64 calls in flight per provider;
- overhead per call: `route()` minus a direct call of the zero-latency mock, calls one after another, every
  process measuring at the same time (each call reserves through the shared store and settles after). Two
  figures: routing alone (`route(durable=False)`: the attempt row is still written, by the writer thread, but the
  call does not wait for its commit), which is what the target and LiteLLM's Router (no ledger) compare with,
  and with the wait for the row's commit (what a task pays before its dependents start);
- both on PostgreSQL also without the shared store (limits per process only), as the baseline of the same run;
LiteLLM's Router (10 `mock_response` deployments) is measured in the same run, in one process, as in
bench/routing.py. Prints a table and writes bench/results/shared_limits.json with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.routing import (  # noqa: E402
    PROVIDERS,
    REALISTIC_BUDGET,
    REALISTIC_LIMITS,
    litellm_available,
    litellm_figures,
    load_average,
    machine,
    timed,
)
from ledger import Ledger, LedgerWriter, LimitStore, NewTask  # noqa: E402
from providers import AITask, ExecutionContext, LocalMockConfig, LocalMockProvider  # noqa: E402
from routing import ProviderRegistry, Router, RunInfo, SharedLimits, SwitchboardConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "shared_limits.json"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _router(ledger: Ledger, owner: str, shared_on: bool = True) -> tuple[Router, LedgerWriter, SharedLimits | None]:
    registry = ProviderRegistry()
    for i in range(PROVIDERS):
        config = LocalMockConfig(latency_ms=0, priority=i + 1, max_concurrency=64, limits=REALISTIC_LIMITS)  # type: ignore[arg-type]
        registry.add_instance(LocalMockProvider(f"mock{i}", config))
    settings = SwitchboardConfig.model_validate(
        {"providers": {"_": {"type": "local_mock"}}, "budget": REALISTIC_BUDGET}
    )
    writer = LedgerWriter(ledger)
    shared = SharedLimits(LimitStore(ledger.engine, owner=owner)) if shared_on else None
    return Router(registry, settings, recorder=writer.submit, shared=shared), writer, shared


def _task(i: int) -> AITask:
    return AITask(id=f"t{i}", type="code_review", prompt=f"Review change number {i}")


async def _worker(url: str, go: Path, calls: int, overhead_calls: int, shared_on: bool) -> dict[str, Any]:
    ledger = Ledger(url=url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="bench-shared",
        batch_hash=uuid.uuid4().hex,
        team=None,
        strategy="least_loaded",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="normal")],
    )
    router, writer, shared = _router(ledger, f"bench-{os.getpid()}", shared_on)
    run = RunInfo(run_id=run_id, strategy="least_loaded")
    direct_provider = router.state("mock1").provider
    await router.route_many([_task(10**7 + i) for i in range(200)], run)  # warm up
    await timed(100, lambda i: direct_provider.execute_task(_task(i), ExecutionContext()))
    while not go.exists():
        await asyncio.sleep(0.002)
    start = time.time()
    results = await router.route_many([_task(i) for i in range(calls)], run)
    end = time.time()
    # Everyone measures the per-call overhead at the same time, once every process has finished its burst.
    barrier = go.with_name(go.name + ".overhead")
    barrier.touch(exist_ok=True)
    await asyncio.sleep(0.5)
    before = (shared.calls_from_leases, shared.transactions) if shared is not None else (0, 0)
    routed = await timed(overhead_calls, lambda i: router.route(_task(10**6 + i), run, durable=False))
    after = (shared.calls_from_leases, shared.transactions) if shared is not None else (0, 0)
    routed_durable = await timed(overhead_calls, lambda i: router.route(_task(2 * 10**6 + i), run))
    direct = await timed(overhead_calls, lambda i: direct_provider.execute_task(_task(i), ExecutionContext()))
    writer.close()
    await router.registry.aclose()
    if shared is not None:
        shared.close()
    rows = len(ledger.attempts(run_id))
    ledger.close()
    return {
        "start": start,
        "end": end,
        "completed": sum(r.status == "completed" for r in results),
        "routed_median_us": statistics.median(routed),
        "direct_median_us": statistics.median(direct),
        "overhead_us_median": statistics.median(routed) - statistics.median(direct),
        "overhead_durable_us_median": statistics.median(routed_durable) - statistics.median(direct),
        "ledger_rows": rows,
        "overhead_calls_from_leases": after[0] - before[0],
        "overhead_store_transactions": after[1] - before[1],
    }


def _fresh_postgres(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}", schema


def _drop_postgres(base: str, schema: str) -> None:
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _run_case(
    url: str, processes: int, calls: int, overhead_calls: int, tmp: Path, shared_on: bool = True
) -> dict[str, Any]:
    Ledger(url=url).close()  # the schema, before the workers start
    go = tmp / f"go-{uuid.uuid4().hex[:6]}"
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(go), str(calls), str(overhead_calls), str(int(shared_on))],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    time.sleep(3.0 + processes)  # imports and warm-up done in every worker
    go.touch()
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker failed ({proc.returncode})")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    completed = sum(o["completed"] for o in outs)
    return {
        "shared": shared_on,
        "processes": processes,
        "calls": calls * processes,
        "completed": completed,
        "seconds": wall,
        "calls_per_s": completed / wall,
        "overhead_us_median": statistics.median(o["overhead_us_median"] for o in outs),
        "overhead_us_by_process": [round(o["overhead_us_median"], 1) for o in outs],
        "overhead_durable_us_median": statistics.median(o["overhead_durable_us_median"] for o in outs),
        # Of the routing-overhead calls: how many a lease in use covered, and the store transactions they took.
        "overhead_calls": overhead_calls * processes,
        "overhead_calls_from_leases": sum(o["overhead_calls_from_leases"] for o in outs),
        "overhead_store_transactions": sum(o["overhead_store_transactions"] for o in outs),
        "ledger_rows": sum(o["ledger_rows"] for o in outs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=5, metavar=("URL", "GO", "CALLS", "OVERHEAD_CALLS", "SHARED"))
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of a price list from the internet
    if args.worker:
        url, go, calls, overhead_calls, shared_on = args.worker
        print(json.dumps(asyncio.run(_worker(url, Path(go), int(calls), int(overhead_calls), shared_on == "1"))))
        return
    calls, overhead_calls = (1000, 300) if args.quick else (4000, 1000)
    base = os.environ.get("SWITCHBOARD_BENCH_POSTGRES_URL", DEFAULT_PG)
    result: dict[str, Any] = {"machine": machine(), "load_before": load_average(), "cases": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sqlite = _run_case(f"sqlite:///{tmp / 'bench.db'}", 1, calls, overhead_calls, tmp)
        result["cases"].append({"database": "sqlite", **sqlite})
        # The same without the shared store: what the ledger alone costs on this machine at this moment.
        for processes, shared_on in ((1, False), (1, True), (4, False), (4, True)):
            url, schema = _fresh_postgres(base)
            try:
                case = _run_case(url, processes, calls, overhead_calls, tmp, shared_on)
            finally:
                _drop_postgres(base, schema)
            result["cases"].append({"database": "postgresql", **case})
    if litellm_available():
        result["litellm"] = asyncio.run(litellm_figures(overhead_calls, 200))
    result["load_after"] = load_average()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)


def _print(result: dict[str, Any]) -> None:
    lite = result.get("litellm") or {}
    print(f"{'case':<28} {'calls/s':>8} {'overhead/call':>14} {'+ commit wait':>14} {'store txns':>11}")
    for case in result["cases"]:
        name = f"{case['database']} x{case['processes']}" + ("" if case["shared"] else " (not shared)")
        txns = f"{case['overhead_store_transactions']}/{case['overhead_calls']}"
        print(
            f"{name:<28} {case['calls_per_s']:>8,.0f} {case['overhead_us_median']:>11,.0f} µs "
            f"{case['overhead_durable_us_median']:>11,.0f} µs {txns if case['shared'] else '':>11}"
        )
    if lite:
        print(f"{'LiteLLM Router x1':<28} {lite['calls_per_s']:>8,.0f} {lite['overhead_us_median']:>11,.0f} µs")
    print(f"load average before {result['load_before']}, after {result['load_after']}; saved {RESULTS}")


if __name__ == "__main__":
    main()
