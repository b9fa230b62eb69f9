"""bench/batch.py's Switchboard figures for two checkouts, interleaved on one Prefect server.

    python bench/batch_compare.py --before ../old-checkout [--after .] [--rounds 4] [--latency 0,200]

A change to the batch path is judged against the commit before it; run one after the other, the two sets of
figures see different machine load (on these shared 2-core machines a 50-task flow takes 0.6 s or 3 s from one
run to the next). Here both checkouts run the same specs against one Prefect server, alternately and in
alternating order, each from its own directory (so each imports its own code), each with its own ledger. The
medians of every run of each (shape, latency, checkout) are compared. Writes bench/results/batch-compare.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import batch  # noqa: E402  (bench/batch.py: the specs, providers files and flow script compared)

RESULTS = ROOT / "bench" / "results" / "batch-compare.json"
SHAPES = [("wide", 50, 8), ("deep", 50, 4), ("wide", 1000, 200), ("deep", 1000, 50)]
DRAIN_S = 12.0


def run_side(checkout: Path, env: dict[str, str], spec: dict[str, Any], providers: Path, runs: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", batch.SWITCHBOARD_SCRIPT, json.dumps(spec), str(providers), str(runs), "auto"],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout,  # `python -c` puts the working directory first on sys.path: this checkout's packages
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{checkout}: {done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not all(s == "completed" for s in out["statuses"]):
        raise RuntimeError(f"{checkout}: a run did not complete: {out['statuses']}")
    return list(out["times"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the older checkout (a git worktree)")
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side per round")
    parser.add_argument("--latency", default="0,200", help="mock latencies in ms, comma-separated")
    parser.add_argument("--shape", action="append", help="only these cases (e.g. wide1000); repeatable; default all")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    shapes = [s for s in SHAPES if not args.shape or f"{s[0]}{s[1]}" in args.shape]
    if not shapes:
        parser.error(f"--shape: none of {args.shape} is one of {', '.join(f'{s[0]}{s[1]}' for s in SHAPES)}")
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, path in sides.items():
        if not (path / "batches").is_dir() and not (path / "flows").is_dir():
            parser.error(f"--{name} {path}: not a Switchboard checkout (no batches/ or flows/ folder)")
    latencies = [int(x) for x in args.latency.split(",")]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sb-batch-compare-") as tmp_name:
        tmp = Path(tmp_name)
        port = batch.free_port()
        env = batch.prefect_env(tmp, port)
        server = batch.start_prefect_server(env, port)
        try:
            batch.wait_healthy(port, time.perf_counter())
            for round_number in range(args.rounds):
                order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
                for shape, size, width in shapes:
                    spec, _ = batch.dag(size, width)
                    for latency in latencies:
                        providers = batch.providers_file(tmp, latency)
                        for side in order:
                            side_env = {
                                **env,
                                "SWITCHBOARD_HOME": str(tmp / f"home-{side}"),
                                "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp / f'ledger-{side}.db'}",
                            }
                            time.sleep(DRAIN_S)  # Prefect ingests the last flow's events behind it (PREFECT.md)
                            got = run_side(sides[side], side_env, spec, providers, args.runs)
                            key = f"{shape}{size}-{latency}ms-{side}"
                            times.setdefault(key, []).extend(got)
                            print(f"round {round_number + 1}: {key} {[round(t, 3) for t in got]}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    rows = []
    for shape, size, _ in shapes:
        for latency in latencies:
            before = statistics.median(times[f"{shape}{size}-{latency}ms-before"])
            after = statistics.median(times[f"{shape}{size}-{latency}ms-after"])
            rows.append(
                {
                    "shape": shape,
                    "tasks": size,
                    "latency_ms": latency,
                    "before_s": before,
                    "after_s": after,
                    "ratio": after / before,
                    "samples": len(times[f"{shape}{size}-{latency}ms-after"]),
                }
            )
    print(f"\n{'case':<18} {'before s':>9} {'after s':>9} {'after/before':>13}")
    for r in rows:
        case = f"{r['shape']} {r['tasks']} {r['latency_ms']} ms"
        print(f"{case:<18} {r['before_s']:>9.3f} {r['after_s']:>9.3f} {r['ratio']:>13.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "before": str(sides["before"]),
        "after": str(sides["after"]),
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "rows": rows,
        "times": times,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
