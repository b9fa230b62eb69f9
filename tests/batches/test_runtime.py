"""The batch runtime builds what one run needs: the adaptive strategy's scores are loaded only when the run may
use them (a scan of a week of attempts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batches import close_runtime, open_runtime, parse_spec
from ledger import AttemptRecord, Ledger, NewTask
from routing import parse_config


def _run(ledger: Ledger, name: str) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name=name,
        batch_hash=name,
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="critical")],
    )
    return run_id


def _past_calls(ledger: Ledger, run_id: str, provider_id: str, outcomes: list[str], ago_s: float) -> None:
    now = datetime.now(UTC)
    ledger.record_attempts(
        AttemptRecord(
            run_id=run_id,
            task_id=f"{provider_id}-{i}",
            provider_id=provider_id,
            task_type="code_review",
            attempt=1,
            outcome=outcome,
            started_at=now - timedelta(seconds=ago_s + i),
            finished_at=now - timedelta(seconds=ago_s + i),
        )
        for i, outcome in enumerate(outcomes)
    )


@pytest.mark.parametrize(
    ("strategy", "task_strategy", "loaded"),
    [("adaptive", None, True), ("priority_based", "adaptive", True), ("priority_based", None, False)],
)
def test_adaptive_scores_are_loaded_when_the_run_may_use_them(
    tmp_path: Path, sqlite_url: str, strategy: str, task_strategy: str | None, loaded: bool
) -> None:

    ledger = Ledger(url=sqlite_url)
    _past_calls(ledger, _run(ledger, "earlier"), "mock", ["success", "success", "unavailable"], ago_s=3600)
    task: dict[str, Any] = {"id": "t", "type": "code_review", "prompt": "p"}
    if task_strategy:
        task["strategy"] = task_strategy
    spec = parse_spec({"name": f"adaptive-{strategy}", "tasks": [task]}, "spec")
    config = parse_config({"providers": {"mock": {"type": "local_mock"}}}, "providers.yaml")
    runtime = open_runtime(spec, config, strategy, run_id=_run(ledger, "now"), ledger=ledger)
    try:
        assert (runtime.router.adaptive.get("mock", "code_review") is not None) is loaded
    finally:
        close_runtime(runtime.run.run_id)
