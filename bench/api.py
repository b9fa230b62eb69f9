"""HTTP API benchmark: `POST /api/v1/tasks` on a zero-latency mock, beside the LiteLLM proxy (a `mock_response`
model) measured in the same run, each with 50 concurrent clients.

    python bench/api.py              # 3 rounds of 2,000 requests each, per server
    python bench/api.py --quick      # 1 round of 500

Both servers run on 127.0.0.1 as their users would start them (`switchboard serve`, `litellm --config`), one at a
time. Switchboard's figure includes what its single-call path does per task: register it in the day's run,
route it (capability, circuit, quota, the shared limits store, budget), call the mock, commit the attempt and the
outcome to the ledger (SQLite), answer with the text, attempts and decision. LiteLLM's proxy answers its mock
without a database. Reported: requests/s and client-side p50/p99 latency (median over rounds).
Writes bench/results/api.json. Needs the `bench` extra with the proxy: pip install -e ".[bench]" "litellm[proxy]".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "api.json"
CLIENTS = 50
TOKEN = "bench-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}) before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"nothing answered {url} within {timeout:.0f} s")


async def load(url: str, body: dict[str, Any], headers: dict[str, str], requests: int) -> dict[str, float]:
    """`requests` POSTs from CLIENTS concurrent clients; requests/s and latency percentiles (ms)."""
    latencies: list[float] = []
    failures = 0
    left = requests
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal left, failures
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                except httpx.TransportError:  # counted, not fatal: the table says how many
                    failures += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                failures += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "failures": failures,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def measure(name: str, url: str, body: dict[str, Any], headers: dict[str, str], rounds: int, n: int) -> dict[str, Any]:
    asyncio.run(load(url, body, headers, min(200, n)))  # warm-up: connections, imports, caches
    runs = [asyncio.run(load(url, body, headers, n)) for _ in range(rounds)]
    figures = {key: statistics.median(r[key] for r in runs) for key in ("requests_per_s", "p50_ms", "p99_ms")}
    return {"name": name, **figures, "failures": sum(r["failures"] for r in runs), "rounds": runs}


def run_switchboard(work: Path, rounds: int, n: int) -> dict[str, Any]:
    providers = work / "providers.yaml"
    providers.write_text(
        "version: 1\nproviders:\n  mock: {type: local_mock, latency_ms: 0, max_concurrency: 256}\n", encoding="utf-8"
    )
    port = free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_API_TOKEN": TOKEN,
        "SWITCHBOARD_HOME": str(work / "home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{work / 'ledger.db'}",
        "SWITCHBOARD_PREFECT": "ephemeral",
    }
    command = [str(Path(sys.executable).parent / "switchboard"), "serve", "--port", str(port)]
    log = (work / "switchboard.log").open("w")
    server = subprocess.Popen([*command, "--providers", str(providers)], env=env, stdout=log, stderr=log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        body = {"type": "code_review", "prompt": "Review this change"}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return measure("switchboard POST /tasks", f"http://127.0.0.1:{port}/api/v1/tasks", body, headers, rounds, n)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        shown = (work / "switchboard.log").read_text()[-3000:]
        if shown.strip():
            print("switchboard serve said:\n" + shown, file=sys.stderr)


def run_litellm(work: Path, rounds: int, n: int) -> dict[str, Any] | None:
    litellm = shutil.which("litellm", path=str(Path(sys.executable).parent))
    if litellm is None:
        print("litellm is not installed (pip install 'litellm[proxy]'): its column is left out", file=sys.stderr)
        return None
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: mock\n"
        "    litellm_params: {model: openai/mock, api_key: not-used, mock_response: 'Code review: looks fine.'}\n",
        encoding="utf-8",
    )
    port = free_port()
    # No network: LiteLLM would fetch its model price map from GitHub at start. A master key, as Switchboard's
    # token: both check a bearer token on every request (LiteLLM refuses to start without one).
    master = "sk-" + TOKEN
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master}
    command = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/liveliness", server)
        body = {"model": "mock", "messages": [{"role": "user", "content": "Review this change"}]}
        url = f"http://127.0.0.1:{port}/chat/completions"
        headers = {"Authorization": f"Bearer {master}"}
        return measure("litellm proxy (mock_response)", url, body, headers, rounds, n)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds, n = (1, 500) if args.quick else (3, 2000)
    with tempfile.TemporaryDirectory(prefix="sb-bench-api-") as tmp:
        work = Path(tmp)
        results = [r for r in (run_switchboard(work, rounds, n), run_litellm(work, rounds, n)) if r is not None]
    print(f"{'server':34} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'failures':>9}")
    for r in results:
        print(f"{r['name']:34} {r['requests_per_s']:9.0f} {r['p50_ms']:9.1f} {r['p99_ms']:9.1f} {r['failures']:9d}")
    if len(results) == 2:
        sb, peer = results
        print(
            f"switchboard / litellm: {sb['requests_per_s'] / peer['requests_per_s']:.2f}x requests/s, "
            f"{sb['p50_ms'] / peer['p50_ms']:.2f}x p50"
        )
    document = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "clients": CLIENTS,
        "requests_per_round": n,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
