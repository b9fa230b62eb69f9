"""The fault suite's invariants can fail: a ledger recording a call made while a provider's circuit was open or
its quota exhausted is caught, and one whose calls kept out of those windows passes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger import RESET_EVENT, AttemptRecord, Ledger, NewTask, TaskStatus
from routing import CIRCUIT_HALF_OPEN, CIRCUIT_OPENED, QUOTA_BLOCKED, QUOTA_RESET
from tests.faults.invariants import check_invariants


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")


def _run(ledger: Ledger) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="inv", batch_hash="h", team=None, strategy=None,
        tasks=[NewTask(task_id="t", task_type="x", priority="normal")], fresh=True,
    )  # fmt: skip
    return run_id


def _called(ledger: Ledger, run_id: str, *, provider: str = "p", subscription: str | None = None) -> None:
    """`t` completed by one call to `provider` starting now."""
    time.sleep(0.002)  # strictly after the events recorded before it
    now = datetime.now(UTC)
    attempt = AttemptRecord(
        run_id=run_id, task_id="t", provider_id=provider, task_type="x", attempt=1, outcome="success",
        started_at=now, finished_at=now, output="ok", subscription=subscription,
    )  # fmt: skip
    ledger.finish_task(run_id, "t", status=TaskStatus.COMPLETED, output="ok", attempts=[attempt])


def _blocked(ledger: Ledger, *, for_s: float = 3600.0, subscription: str | None = None) -> None:
    reset_at = (datetime.now(UTC) + timedelta(seconds=for_s)).isoformat()
    ledger.record_provider_event("p", QUOTA_BLOCKED, {"reason": "quota_exhausted", "reset_at": reset_at}, subscription)


def test_a_call_while_the_quota_is_exhausted_is_caught(ledger: Ledger) -> None:
    run_id = _run(ledger)
    _blocked(ledger)
    _called(ledger, run_id)
    with pytest.raises(AssertionError, match=r"called p .* while p's quota was exhausted"):
        check_invariants(ledger, run_id, provider_calls=1)


def test_a_block_of_an_earlier_run_still_counts(ledger: Ledger) -> None:
    _blocked(ledger)
    run_id = _run(ledger)
    _called(ledger, run_id)
    with pytest.raises(AssertionError, match="quota was exhausted"):
        check_invariants(ledger, run_id)


def test_a_provider_wide_block_covers_its_subscriptions_and_a_subscriptions_only_itself(ledger: Ledger) -> None:
    run_id = _run(ledger)
    _blocked(ledger, subscription="s1")
    _called(ledger, run_id, subscription="s2")
    check_invariants(ledger, run_id)  # s2 was not out
    run_id = _run(ledger)
    _blocked(ledger)
    _called(ledger, run_id, subscription="s2")
    with pytest.raises(AssertionError, match="quota was exhausted"):
        check_invariants(ledger, run_id)


@pytest.mark.parametrize(
    "ended_by",
    ["reset time passed", QUOTA_RESET, RESET_EVENT],
)
def test_calls_after_the_block_ended_pass(ledger: Ledger, ended_by: str) -> None:
    run_id = _run(ledger)
    if ended_by == "reset time passed":
        _blocked(ledger, for_s=0.05)
        time.sleep(0.1)
    else:
        _blocked(ledger)
        ledger.record_provider_event("p", ended_by, {"previous": "quota_exhausted"})
    _called(ledger, run_id)
    check_invariants(ledger, run_id, provider_calls=1)


def test_a_call_while_the_circuit_is_open_is_caught_and_one_after_half_open_passes(ledger: Ledger) -> None:
    run_id = _run(ledger)
    ledger.record_provider_event("p", CIRCUIT_OPENED, {})
    _called(ledger, run_id)
    with pytest.raises(AssertionError, match="while its circuit was open"):
        check_invariants(ledger, run_id)
    run_id = _run(ledger)
    ledger.record_provider_event("p", CIRCUIT_HALF_OPEN, {})
    _called(ledger, run_id)
    check_invariants(ledger, run_id)
