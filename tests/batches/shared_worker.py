"""One routing process of the shared-limits tests: runs a spec's tasks through the batch core (the runtime
`switchboard run` builds: providers, router with the shared store, group-committing ledger writer) once a go
file appears, and prints one JSON line: each task's status and reason.

    python -m tests.batches.shared_worker LEDGER_URL SPEC PROVIDERS GO_FILE
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from batches import end_run, open_runtime, resolve_inputs, run_nodes, run_summary, start_run
from ledger import open_ledger


def main(url: str, spec_path: str, providers: str, go: str) -> None:
    spec, config, strategy = resolve_inputs(spec_path, providers, None)
    ledger = open_ledger(url)
    run_id, _ = start_run(ledger, spec, strategy, fresh=True)
    runtime = open_runtime(spec, config, strategy, run_id=run_id, ledger=ledger)
    while not Path(go).exists():
        time.sleep(0.005)
    results = run_nodes(runtime, [t.id for t in spec.tasks])
    runtime.close()
    end_run(ledger, run_id)
    totals = run_summary(ledger, run_id).totals
    tasks = [[r.task_id, str(r.status), r.error] for r in results]
    print(json.dumps({"run_id": run_id, "tasks": tasks, "quota_failures": totals.quota_failures}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
