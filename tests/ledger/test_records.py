"""The records that cross the ledger's boundary keep the JSON shapes the CLI contract prints."""

from __future__ import annotations

import json

import pytest

from ledger import RouteDecision, TaskStatus

FULL = {
    "strategy": "priority_based",
    "candidates": ["flaky", "steady"],
    "skipped": {"fixer": "capability", "dear": "budget: run would reach $0.0120 of $0.0100"},
    "order": ["flaky", "steady"],
    "chosen": "steady",
    "estimate": {"prompt_tokens": 12, "max_output_tokens": 1024},
    "affinity": {"key": "repo-42", "sticky": None},
}


@pytest.mark.parametrize(
    "stored",
    [
        FULL,
        {k: v for k, v in FULL.items() if k != "affinity"},  # a task without an affinity key
        {k: v for k, v in FULL.items() if k not in ("affinity", "estimate")},  # recorded before estimates were
        {**FULL, "chosen": None, "order": [], "candidates": []},  # nothing could take it
    ],
)
def test_a_decision_reads_back_and_prints_byte_for_byte(stored: dict[str, object]) -> None:
    decision = RouteDecision.model_validate(stored)
    assert json.dumps(decision.model_dump()) == json.dumps(stored)


def test_statuses_are_their_stored_strings() -> None:
    assert json.dumps({"status": TaskStatus.SKIPPED}) == '{"status": "skipped"}'
    assert TaskStatus("cancelled") == "cancelled" and f"{TaskStatus.FAILED}" == "failed"
