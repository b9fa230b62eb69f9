"""Batch flow benchmark against Prefect's own floor and the ideal, on a Prefect server that is already up.

    python bench/batch.py            # starts a private Prefect server (its start-up time is reported apart)
    python bench/batch.py --quick    # one run per figure instead of three

DAGs are layers of fan-out and fan-in (1 -> W -> W -> ... -> 1). For each size (50, 1,000 tasks):
- `noop`: the same DAG built from no-op Prefect tasks (one per node, wait_for its dependencies): Prefect's floor;
- `switchboard 0 ms`: `process_batch` with zero-latency mock providers;
- `switchboard 200 ms`: `process_batch` with 200 ms mock providers, against the ideal
  max(critical path x 200 ms, N x 200 ms / C), C = the providers' total concurrency.
Each figure is the median of a few runs; the flow's wall time includes Prefect's fixed per-flow cost.
Writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "batch.json"
PROVIDERS = 4
CONCURRENCY = 128  # per provider, so C = PROVIDERS x CONCURRENCY
DRAIN_S = 20.0


def dag(size: int, width: int) -> tuple[dict[str, Any], int]:
    """A spec of `size` tasks: a root, layers of `width`, each task depending on two of the layer above, a sink."""
    layers: list[list[str]] = [["root"]]
    tasks = [{"id": "root", "type": "code_analysis", "prompt": "map the repository"}]
    remaining = size - 2
    level = 0
    while remaining > 0:
        level += 1
        count = min(width, remaining)
        above = layers[-1]
        names = [f"l{level}-{i}" for i in range(count)]
        for i, name in enumerate(names):
            deps = sorted({above[i % len(above)], above[(i + 1) % len(above)]})
            tasks.append({"id": name, "type": "code_review", "prompt": f"review part {name}", "depends_on": deps})
        layers.append(names)
        remaining -= count
    tasks.append({"id": "sink", "type": "summarization", "prompt": "summarize", "depends_on": layers[-1]})
    return {"name": f"bench-{size}", "tasks": tasks}, len(layers) + 1


def providers_file(tmp: Path, latency_ms: int) -> Path:
    lines = ["version: 1", "strategy: least_loaded", "runner: {max_workers: 32, chunk_threshold: 200}", "providers:"]
    for i in range(PROVIDERS):
        mock = f"type: local_mock, priority: {i + 1}, latency_ms: {latency_ms}, max_concurrency: {CONCURRENCY}"
        lines.append(f"  mock{i}: {{{mock}}}")
    path = tmp / f"providers-{latency_ms}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


NOOP_SCRIPT = """
import json, sys, time
from prefect import flow, task, allow_failure
from prefect.task_runners import ThreadPoolTaskRunner
from flows import in_process_heartbeat

spec = json.loads(sys.argv[1])

@task(persist_result=False)
def noop(name):
    return name

@flow(task_runner=ThreadPoolTaskRunner(max_workers=32), persist_result=False)
def noop_dag():
    futures = {}
    for t in spec["tasks"]:
        futures[t["id"]] = noop.submit(t["id"], wait_for=[allow_failure(futures[d]) for d in t.get("depends_on", [])])
    for f in futures.values():
        f.wait()

runs = int(sys.argv[2])
times = []
# Like for like: Switchboard's runs skip the sync flow's heartbeat join the same way (flows/heartbeat.py).
with in_process_heartbeat():
    noop_dag()  # warm up
    for _ in range(runs):
        start = time.perf_counter(); noop_dag(); times.append(time.perf_counter() - start)
print(json.dumps(times))
"""

SWITCHBOARD_SCRIPT = """
import json, sys, tempfile, time
from pathlib import Path
from flows import choose_chunked, run_batch_flow
from routing import load_config

spec_doc, providers, runs, mode = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = load_config(providers)
folder = Path(tempfile.mkdtemp(prefix="sb-bench-specs-"))
times, statuses = [], []
for i in range(runs + 1):
    # As `switchboard run` does: the flow is handed the spec file's path.
    spec = folder / f"spec-{i}.json"
    spec.write_text(json.dumps({**spec_doc, "name": spec_doc["name"] + f"-{i}"}))
    start = time.perf_counter()
    result = run_batch_flow(config, spec=str(spec), providers=providers, fresh=True, mode=mode)
    elapsed = time.perf_counter() - start
    statuses.append(result["status"])
    if i:  # the first run warms imports, clients and the server's caches
        times.append(elapsed)
chunked = choose_chunked(mode, len(spec_doc["tasks"]), config)
print(json.dumps({"times": times, "statuses": statuses, "mode": "chunked" if chunked else "per_node"}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_json(args: list[str], env: dict[str, str]) -> Any:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # Wide DAGs (few levels) stress fan-out; deep ones (many levels) the hand-over from task to task.
    shapes = [("wide", 50, 8), ("deep", 50, 4), ("wide", 1000, 200), ("deep", 1000, 50)]
    runs = 1 if args.quick else args.runs

    with tempfile.TemporaryDirectory(prefix="sb-batch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = {
            **prefect_env(tmp, port),
            "SWITCHBOARD_HOME": str(tmp / "home"),
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
        }
        server = start_prefect_server(env, port)
        started = time.perf_counter()
        try:
            startup = wait_healthy(port, started)
            rows = []
            for shape, size, width in shapes:
                spec, depth = dag(size, width)
                # Prefect's server ingests task-run events behind the flows (PREFECT.md): a flow started right
                # after a big one runs several times slower. Each measurement starts on a drained server.
                time.sleep(DRAIN_S)
                noop = statistics.median(run_json(["-c", NOOP_SCRIPT, json.dumps(spec), str(runs)], env))
                for latency in (0, 200):
                    time.sleep(DRAIN_S)
                    path = providers_file(tmp, latency)
                    out = run_json(["-c", SWITCHBOARD_SCRIPT, json.dumps(spec), str(path), str(runs), "auto"], env)
                    assert all(s == "completed" for s in out["statuses"]), out
                    median = statistics.median(out["times"])
                    ideal = max(depth * 0.2, size * 0.2 / (PROVIDERS * CONCURRENCY)) if latency else None
                    rows.append(
                        {
                            "shape": shape,
                            "tasks": size,
                            "depth": depth,
                            "latency_ms": latency,
                            "mode": out["mode"],
                            "seconds": median,
                            "tasks_per_s": size / median,
                            "noop_floor_s": noop,
                            "vs_noop": median / noop,
                            "ideal_s": ideal,
                            "vs_ideal": median / ideal if ideal else None,
                        }
                    )
                    print_row(rows[-1])
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "prefect_server_startup_s": startup,
        "providers": PROVIDERS,
        "concurrency_per_provider": CONCURRENCY,
        "runs_per_figure": runs,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nPrefect server start-up: {startup:.1f} s (not included above); saved {args.out}")


def prefect_env(tmp: Path, port: int) -> dict[str, str]:
    """This environment pointed at a private Prefect server on `port`, its home under `tmp`, quiet logs."""
    return {
        **os.environ,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def start_prefect_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """A Prefect server on 127.0.0.1:`port` in its own session (stop it with terminate())."""
    return subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_healthy(port: int, started: float) -> float:
    import httpx

    while time.perf_counter() - started < 120:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1, trust_env=False).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the Prefect server did not start within 120 s")


def print_row(row: dict[str, Any]) -> None:
    if not hasattr(print_row, "header"):
        columns = (
            "shape",
            "tasks",
            "depth",
            "mock",
            "mode",
            "seconds",
            "tasks/s",
            "noop s",
            "x noop",
            "ideal s",
            "x ideal",
        )
        print(" ".join(f"{c:>8}" for c in columns))
        print_row.header = True  # type: ignore[attr-defined]
    ideal = f"{row['ideal_s']:.2f}" if row["ideal_s"] else "-"
    vs_ideal = f"{row['vs_ideal']:.2f}" if row["vs_ideal"] else "-"
    print(
        f"{row['shape']:>8} {row['tasks']:>8} {row['depth']:>8} {str(row['latency_ms']) + 'ms':>8} "
        f"{row['mode']:>8} {row['seconds']:>8.2f} "
        f"{row['tasks_per_s']:>8.0f} {row['noop_floor_s']:>8.2f} {row['vs_noop']:>8.2f} {ideal:>8} {vs_ideal:>8}"
    )


if __name__ == "__main__":
    main()
