"""Benchmark: the usage report over 1,000,000 generated ledger attempts, on SQLite (and PostgreSQL if configured).

    .venv/bin/python bench/report.py [--rows 1000000] [--runs 5] [--keep DIR]

Generates a ledger (30 days, 7 provider subscriptions, 10 task types, 5 teams, 3 strategies, about 5% failed
attempts with retries and failovers, 4,000 circuit events), migrated exactly as the app makes it (so with the
schema's own indexes, migration 0003's included), then builds the full report (all tables, recommendations,
alerts and the CSV/PNG/HTML/JSON folder) `--runs` times per case, each in a fresh child process, and reports the
median time and the peak resident memory (ru_maxrss of the child: numpy and pandas allocate outside
tracemalloc's view). With SWITCHBOARD_TEST_POSTGRES_URL set it repeats the cases on PostgreSQL in a dedicated
database (`switchboard_bench`), so it never touches the tests' tables. Results go to bench/results/report.json,
rewritten after every case so a failure later on loses nothing measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics import AlertThresholds, QuotaLimit, ReportSettings, ReportWindow  # noqa: E402
from providers import Price  # noqa: E402

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
WINDOW = ReportWindow(UNTIL - timedelta(days=DAYS), UNTIL)
TARGET_S, TARGET_MB = 10.0, 1536.0
POSTGRES_ENV = "SWITCHBOARD_TEST_POSTGRES_URL"
BENCH_DB = "switchboard_bench"

# provider, subscription, model, success rate, median latency ms, USD per Mtok in/out
PROVIDERS = [
    ("claude_primary", "team-a", "claude-sonnet-4-5", 0.95, 4000.0, 3.0, 15.0),
    ("claude_primary", "team-b", "claude-sonnet-4-5", 0.95, 4200.0, 3.0, 15.0),
    ("claude_backup", None, "claude-sonnet-4-5", 0.93, 4500.0, 3.0, 15.0),
    ("anthropic", None, "claude-haiku-4-5", 0.97, 1500.0, 1.0, 5.0),
    ("openai", None, "gpt-4o-mini", 0.96, 1200.0, 0.15, 0.6),
    ("vllm_local", None, "qwen2.5-coder", 0.85, 900.0, 0.05, 0.05),
    ("mock", None, "mock-1", 0.99, 40.0, 0.5, 1.5),
]
TASK_TYPES = [f"type_{i}" for i in range(10)]
TEAMS = ["platform", "search", "payments", "mobile", "data"]
STRATEGIES = ["priority_based", "cost_based", "adaptive"]
ERRORS = ["rate_limited", "overloaded", "timeout", "unavailable", "quota_exhausted"]
COLUMNS = [
    "run_id",
    "task_id",
    "provider_id",
    "subscription",
    "model",
    "task_type",
    "team",
    "strategy",
    "attempt",
    "outcome",
    "error_type",
    "tokens_input",
    "tokens_output",
    "tokens_cache_read",
    "tokens_cache_write",
    "tokens_reasoning",
    "cost_usd",
    "latency_ms",
    "started_at",
    "finished_at",
    "idempotency_key",
]


def settings() -> ReportSettings:
    limits = (
        QuotaLimit("claude_primary", "team-a", "requests_per_hour", "requests", 3600, 1000),
        QuotaLimit("claude_primary", "team-b", "requests_per_hour", "requests", 3600, 1000),
        QuotaLimit("claude_primary", "team-a", "tokens_per_day", "tokens", 86400, 50_000_000),
        QuotaLimit("openai", None, "requests_per_minute", "requests", 60, 60),
        QuotaLimit("anthropic", None, "cost_usd_per_day", "cost", 86400, 100.0),
    )
    prices = {p: Price(input=i, output=o) for p, _s, _m, _r, _l, i, o in PROVIDERS}
    return ReportSettings(
        limits=limits,
        prices=prices,
        thresholds=AlertThresholds(daily_cost_usd=500, error_rate=0.05, quota_forecast_hours=6),
    )


def generate(rows: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Attempt rows (tuples in COLUMNS order) and provider events, vectorised with numpy."""
    rng = np.random.default_rng(seed)
    n_tasks = int(rows / 1.1)
    span_us = DAYS * 86400 * 1_000_000
    start_us = np.sort(rng.integers(0, span_us - 600_000_000, n_tasks))
    first = rng.choice(len(PROVIDERS), n_tasks, p=[0.2, 0.15, 0.05, 0.2, 0.2, 0.1, 0.1])
    ok_p = np.array([p[3] for p in PROVIDERS])
    # Each task: attempt 1 on its first-choice provider; a failure leads to a retry (same) or failover.
    tasks = np.arange(n_tasks)
    provider, attempt, task_of, t_us = [first], [np.ones(n_tasks, np.int32)], [tasks], [start_us]
    outcome_ok = [rng.random(n_tasks) < ok_p[first]]
    alive, current, clock, total = ~outcome_ok[0], first, start_us.copy(), n_tasks
    for number in (2, 3):
        idx = np.flatnonzero(alive)
        if total + idx.size > rows:
            idx = idx[: rows - total]
        retry = rng.random(idx.size) < 0.3
        moved = np.where(
            retry, current[idx], (current[idx] + 1 + rng.integers(0, len(PROVIDERS) - 1, idx.size)) % len(PROVIDERS)
        )
        clock[idx] += rng.integers(50_000, 5_000_000, idx.size)
        ok = rng.random(idx.size) < ok_p[moved]
        provider.append(moved), attempt.append(np.full(idx.size, number, np.int32)), task_of.append(idx)
        t_us.append(clock[idx].copy()), outcome_ok.append(ok)
        total += idx.size
        next_current = current.copy()
        next_current[idx] = moved
        current = next_current
        alive = np.zeros(n_tasks, bool)
        alive[idx[~ok]] = True
    provider_a, attempt_a, task_a = np.concatenate(provider), np.concatenate(attempt), np.concatenate(task_of)
    t_a, ok_a = np.concatenate(t_us), np.concatenate(outcome_ok)
    filler = rows - provider_a.size  # top up with single successful attempts of extra tasks
    if filler > 0:
        extra = np.arange(n_tasks, n_tasks + filler)
        provider_a = np.concatenate([provider_a, rng.choice(len(PROVIDERS), filler)])
        attempt_a = np.concatenate([attempt_a, np.ones(filler, np.int32)])
        task_a = np.concatenate([task_a, extra])
        t_a = np.concatenate([t_a, rng.integers(0, span_us - 600_000_000, filler)])
        ok_a = np.concatenate([ok_a, np.ones(filler, bool)])
    n = provider_a.size
    med = np.array([p[4] for p in PROVIDERS])
    latency = np.round(med[provider_a] * rng.lognormal(0.0, 0.5, n), 1)
    latency[~ok_a] = np.round(latency[~ok_a] * 0.3, 1)
    tin = rng.integers(200, 8000, n)
    tout = np.where(ok_a, rng.integers(50, 2000, n), 0)
    cread = np.where(rng.random(n) < 0.3, rng.integers(0, 4000, n), 0)
    pin = np.array([p[5] for p in PROVIDERS])[provider_a]
    pout = np.array([p[6] for p in PROVIDERS])[provider_a]
    cost = (tin * pin + tout * pout + cread * pin) / 1e6
    base = np.datetime64(WINDOW.since.replace(tzinfo=None), "us")
    started = np.datetime_as_string(base + t_a.astype("timedelta64[us]"), unit="us")
    finished = np.datetime_as_string(
        base + (t_a + (latency * 1000).astype(np.int64)).astype("timedelta64[us]"), unit="us"
    )
    task_type = rng.integers(0, len(TASK_TYPES), n_tasks + max(filler, 0))[task_a]
    run = task_a // 100
    team = (run % len(TEAMS)).astype(int)
    strategy = (run % len(STRATEGIES)).astype(int)
    errors = rng.integers(0, len(ERRORS), n)
    out = []
    for i in range(n):
        p = PROVIDERS[provider_a[i]]
        run_id, task_id, number = f"r{run[i]:07d}", f"t{task_a[i]}", int(attempt_a[i])
        ok = bool(ok_a[i])
        out.append(
            (
                run_id, task_id, p[0], p[1], p[2], TASK_TYPES[task_type[i]], TEAMS[team[i]], STRATEGIES[strategy[i]],
                number, "success" if ok else ERRORS[errors[i]], None if ok else "simulated",
                int(tin[i]), int(tout[i]), int(cread[i]), 0, 0, float(cost[i]), float(latency[i]),
                started[i].replace("T", " "), finished[i].replace("T", " "), f"{run_id}:{task_id}:{number}",
            )
        )  # fmt: skip
    events = []
    for k in range(2000):
        p = PROVIDERS[k % len(PROVIDERS)][0]
        at = WINDOW.since + timedelta(seconds=float(rng.integers(0, DAYS * 86400 - 600)))
        events.append((p, None, "circuit.opened", at, '{"from": "closed", "to": "open"}'))
        closed = at + timedelta(seconds=float(rng.integers(5, 300)))
        events.append((p, None, "circuit.closed", closed, '{"from": "half_open", "to": "closed"}'))
    return out, events


def fill_sqlite(path: Path, rows: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
    from ledger import create_ledger_engine

    create_ledger_engine(f"sqlite:///{path}").dispose()  # the migrated schema, exactly as the app makes it
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    marks = ", ".join("?" * len(COLUMNS))
    with db:
        db.executemany(f"INSERT INTO provider_usage ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        db.executemany(
            "INSERT INTO provider_events (provider_id, subscription, kind, detail, at) VALUES (?, ?, ?, ?, ?)",
            [(p, s, k, detail, at.strftime("%Y-%m-%d %H:%M:%S.%f")) for p, s, k, at, detail in events],
        )
    db.execute("ANALYZE")
    db.close()


def fill_postgres(url: str, rows: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> str:
    """A fresh `switchboard_bench` database beside the given one, migrated, loaded with COPY; returns its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    from ledger import create_ledger_engine

    base = make_url(url)
    libpq = base.set(drivername="postgresql")
    with psycopg.connect(libpq.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    bench_url = base.set(database=BENCH_DB).render_as_string(hide_password=False)
    create_ledger_engine(bench_url).dispose()
    with psycopg.connect(libpq.set(database=BENCH_DB).render_as_string(hide_password=False)) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # the generated timestamps are UTC wall times
        with conn.cursor().copy(f"COPY provider_usage ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        event_columns = "provider_id, subscription, kind, at, detail"
        with conn.cursor().copy(f"COPY provider_events ({event_columns}) FROM STDIN") as copy:
            for row in events:
                copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE")
    return bench_url


def child(url: str, since: str, out: str) -> None:
    """One measured report in this fresh process; prints one JSON line."""
    from analytics import build_report, write_report
    from ledger import create_ledger_engine

    engine = create_ledger_engine(url)
    window = ReportWindow(datetime.fromisoformat(since), UNTIL)
    t0 = time.perf_counter()
    report = build_report(engine, window, settings=settings())
    t1 = time.perf_counter()
    write_report(report, out)
    t2 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "build_s": t1 - t0,
                "write_s": t2 - t1,
                "report_s": t2 - t0,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "attempts": report.totals["attempts"],
            }
        )
    )


def measure(url: str, since: datetime, runs: int, out: Path) -> dict[str, Any]:
    samples = []
    for i in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", url, since.isoformat(), str(out / f"run{i}")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        # Wall time of the whole child: interpreter start, imports, engine, report, exit.
        samples.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - t})
    keys = [k for k in samples[0] if k != "attempts"]
    result: dict[str, Any] = {k: round(statistics.median(s[k] for s in samples), 3) for k in keys}
    result["max_peak_rss_mb"] = round(max(s["peak_rss_mb"] for s in samples), 1)
    result["runs"] = [{k: round(v, 3) for k, v in s.items()} for s in samples]
    result["attempts"] = samples[0]["attempts"]
    return result


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


SCENARIOS = {"all 30 days": WINDOW.since, "last day (the daily schedule)": UNTIL - timedelta(days=1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="measured reports per case (median taken)")
    parser.add_argument("--keep", type=Path, help="keep the generated SQLite ledger and report folders here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    db = work / "ledger.db"
    postgres = os.environ.get(POSTGRES_ENV)
    # Generating in a child keeps this process small: Linux carries a parent's peak RSS into the children it
    # forks (exec keeps the old high-water mark), which would hide the report's own peak.
    filled = subprocess.run(
        [sys.executable, __file__, "--fill", str(args.rows), str(db), postgres or ""],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    print(filled.stderr.strip(), flush=True)
    bench_url = filled.stdout.strip() or None
    document: dict[str, Any] = {
        "benchmark": "usage report (build + CSV/PNG/HTML/JSON) over generated ledger attempts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"load_average_before": load_before},
        "rows": args.rows,
        "ledger": ledger_facts(db),
        "runs_per_case": args.runs,
        "targets": {"sqlite_process_s": TARGET_S, "peak_rss_mb": TARGET_MB},
        "results": {},
    }
    cases = [(f"sqlite · {name}", f"sqlite:///{db}", since) for name, since in SCENARIOS.items()]
    if bench_url:
        cases += [(f"postgresql · {name}", bench_url, since) for name, since in SCENARIOS.items()]
    for label, url, since in cases:
        print(f"measuring {label} ...", flush=True)
        document["results"][label] = measure(url, since, args.runs, work)
        save(document)
    document["machine"]["load_average_after"] = os.getloadavg()
    save(document)
    print_table(document["results"])
    print(f"saved {RESULTS.relative_to(ROOT)}")


RESULTS = ROOT / "bench" / "results" / "report.json"


def save(document: dict[str, Any]) -> None:
    """Write the results so far (called after every case)."""
    document["meets_targets"] = all(
        r["process_s"] < TARGET_S and r["max_peak_rss_mb"] < TARGET_MB
        for k, r in document["results"].items()
        if k.startswith("sqlite ·")
    )
    RESULTS.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def ledger_facts(db: Path) -> dict[str, Any]:
    """What the generated ledger holds: attempts, the failed share, circuit events and the schema's indexes."""
    with sqlite3.connect(db) as conn:
        attempts, failed = conn.execute("SELECT count(*), sum(outcome != 'success') FROM provider_usage").fetchone()
        events = conn.execute("SELECT count(*) FROM provider_events").fetchone()[0]
        indexes = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'provider_usage' "
                "AND sql IS NOT NULL ORDER BY name"
            )
        ]
    return {
        "attempts": attempts,
        "failed_share": round(failed / attempts, 4) if attempts else 0.0,
        "circuit_events": events,
        "provider_usage_indexes": indexes,
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    header = f"{'case':<46} {'build s':>8} {'report s':>9} {'process s':>10} {'cpu s':>7} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<46} {r['build_s']:>8.2f} {r['report_s']:>9.2f} {r['process_s']:>10.2f} "
            f"{r['cpu_s']:>7.2f} {r['max_peak_rss_mb']:>8.0f}"
        )
    print("report s = build + write the folder (median); process s adds interpreter start and imports.")


def fill(rows: int, db: Path, postgres: str) -> None:
    """Generate the ledger into SQLite (and PostgreSQL); prints the PostgreSQL bench URL on stdout."""
    t = time.perf_counter()
    attempts, events = generate(rows)
    db.unlink(missing_ok=True)
    fill_sqlite(db, attempts, events)
    seconds = time.perf_counter() - t
    print(f"generated {len(attempts):,} attempts into SQLite in {seconds:.1f} s ({db})", file=sys.stderr)
    if postgres:
        t = time.perf_counter()
        print(fill_postgres(postgres, attempts, events))
        print(f"loaded PostgreSQL database {BENCH_DB} in {time.perf_counter() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "--fill":
        fill(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        main()
