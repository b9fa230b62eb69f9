"""The outcome comparison reproduced through `switchboard simulate`, on a recorded ledger.

    python bench/outcomes_replay.py            # seed 1: writes bench/results/outcomes-replay.json
    python bench/outcomes_replay.py --seed 2   # outcomes-replay-seed2.json

Records the standard synthetic week (planning/synthetic.py) as round robin routed it into a fresh SQLite ledger,
as a batch run would have (the attempts with their virtual times, each task's final state and decision), writes
the standard providers file (planning/synthetic_providers.py) as YAML, and runs `switchboard simulate --format
json` over that week once per strategy. Prints, per strategy, what simulate predicts (cost, task success, quota
failures) and its cost beside the prediction for round robin, next to the outcome benchmark's own ratio for the
same seed (bench/outcomes.py, which routes the week live with every call's real luck and concurrency). Simulate
replays one task at a time and draws calls the recording does not have from each provider's recorded behaviour
per task type (planning/replay.py), so its figures differ from the live ones; the comparison between strategies
is what it should reproduce.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger import Ledger, NewTask  # noqa: E402
from planning import DEFAULT_TASKS, PROVIDERS_DOC, TaskRun, route_week, synthetic_week  # noqa: E402
from routing import STRATEGY_NAMES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RECORDED_WITH = "round_robin"


def results_path(seed: int) -> Path:
    return RESULTS / ("outcomes-replay.json" if seed == 1 else f"outcomes-replay-seed{seed}.json")


def record(runs: list[TaskRun], url: str, seed: int) -> tuple[str, str]:
    """Write the routed week into the ledger at `url`; the window (ISO since, until) that holds it."""
    ledger = Ledger(url=url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name=f"synthetic-week-{seed}",
        batch_hash=f"synthetic-week-{seed}",
        team=None,
        strategy=RECORDED_WITH,
        tasks=[
            NewTask(task_id=r.spec.id, task_type=r.spec.type, priority=r.spec.priority, team=r.spec.team) for r in runs
        ],
    )
    for r in runs:
        completed = r.result.status == "completed"
        ledger.finish_task(
            run_id,
            r.spec.id,
            status="completed" if completed else "failed",
            provider_id=r.result.provider_id if completed else None,
            decision=r.result.decision,
            attempts=[a.model_copy(update={"run_id": run_id}) for a in r.result.attempts],
        )
    ledger.close()
    starts = [a.started_at for r in runs for a in r.result.attempts]
    return min(starts).isoformat(), (max(starts) + timedelta(hours=1)).isoformat()


def simulate_cli(url: str, providers: Path, since: str, until: str, strategy: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "cli", "simulate", "--providers", str(providers), "--since", since]
    argv += ["--until", until, "--strategy", strategy, "--format", "json"]
    env = {**os.environ, "SWITCHBOARD_DATABASE_URL": url}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"switchboard simulate failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def measure(seed: int, tasks: int = DEFAULT_TASKS) -> dict[str, Any]:
    week = synthetic_week(seed, tasks)
    runs = route_week(week, RECORDED_WITH)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'week.db'}"
        since, until = record(runs, url, seed)
        providers = Path(tmp) / "providers.yaml"
        providers.write_text(yaml.safe_dump(PROVIDERS_DOC, sort_keys=False))
        predicted = {}
        for name in STRATEGY_NAMES:
            figures = simulate_cli(url, providers, since, until, name)["predicted"]
            predicted[name] = {k: figures[k] for k in ("cost_usd", "task_success_rate", "quota_failures")}
    return {"seed": seed, "tasks": len(runs), "recorded_with": RECORDED_WITH, "predicted": predicted}


def print_table(result: dict[str, Any], live: dict[str, Any] | None) -> None:
    predicted = result["predicted"]
    base = predicted[RECORDED_WITH]["cost_usd"]
    live_base = live["strategies"][RECORDED_WITH]["cost_usd"] if live else None
    print(f"seed {result['seed']}: {result['tasks']} tasks recorded under {RECORDED_WITH}, replayed by simulate")
    print(f"{'strategy':<18} {'cost $':>8} {'vs rr':>7} {'success':>8} {'quota f.':>8} {'live vs rr':>10}")
    for name, figures in predicted.items():
        live_ratio = f"{live['strategies'][name]['cost_usd'] / live_base:.2f}x" if live and live_base else "-"
        print(
            f"{name:<18} {figures['cost_usd']:>8.2f} {figures['cost_usd'] / base:>6.2f}x "
            f"{figures['task_success_rate']:>8.2%} {figures['quota_failures']:>8} {live_ratio:>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = measure(args.seed)
    live_path = RESULTS / ("outcomes.json" if args.seed == 1 else f"outcomes-seed{args.seed}.json")
    live = json.loads(live_path.read_text()) if live_path.exists() else None
    if live is not None:
        result["live_cost_vs_rr"] = {
            name: s["cost_usd"] / live["strategies"][RECORDED_WITH]["cost_usd"]
            for name, s in live["strategies"].items()
        }
    path = results_path(args.seed)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result, live)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
