"""What-if replay: the recorded workload through the real engine against simulated providers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from batches import close_runtime, open_runtime, parse_spec, run_nodes, start_run
from ledger import AttemptRecord, DecisionEstimate, Ledger, NewTask, ProviderEvent, RouteDecision
from planning import load_workload, simulate
from providers import TokenUsage
from routing import parse_config

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "replayed",
    "team": "qa",
    "tasks": [
        {"id": "plan", "type": "code_analysis", "prompt": "plan the work"},
        *(
            {"id": f"review-{i}", "type": "code_review", "prompt": f"review part {i}", "depends_on": ["plan"]}
            for i in range(12)
        ),
        {"id": "sum", "type": "summarization", "prompt": "sum up", "depends_on": [f"review-{i}" for i in range(12)]},
    ],
}
RECORDED = {
    "providers": {
        "flaky": {"type": "local_mock", "priority": 1, "latency_ms": 0, "failure_rate": 1.0},
        "cheap": {
            "type": "local_mock",
            "priority": 2,
            "latency_ms": 0,
            "capabilities": ["code_review"],
            "prices": {"*": {"input": 0.1, "output": 0.2}},
        },
        "steady": {
            "type": "local_mock",
            "priority": 3,
            "latency_ms": 0,
            "prices": {"*": {"input": 2.0, "output": 8.0}},
        },
    }
}


def record_run(ledger: Ledger, spec_doc: dict[str, Any] = SPEC, config_doc: dict[str, Any] = RECORDED) -> str:
    """Run the batch for real (without Prefect: the same node code the flow's tasks run)."""
    spec = parse_spec(spec_doc, "spec")
    config = parse_config(config_doc, "recorded.yaml")
    run_id, _ = start_run(ledger, spec, config.strategy)
    runtime = open_runtime(spec, config, config.strategy, run_id=run_id, ledger=ledger)
    try:
        for layer in spec.layers():
            run_nodes(runtime, [t.id for t in layer])
    finally:
        close_runtime(run_id)
    return run_id


@pytest.fixture
def recorded(ledger_url: str) -> Ledger:
    ledger = Ledger(url=ledger_url)
    record_run(ledger)
    return ledger


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def test_replay_under_the_same_config_reproduces_cost_and_provider_mix(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    assert len(workload.items) == 14
    result = simulate(workload, parse_config(RECORDED, "same.yaml"))
    actual, predicted = result["actual"], result["predicted"]
    assert actual["provider_mix"] == {"cheap": 12, "steady": 2}
    # stated tolerance: the same provider mix, cost within 1%, the same success rate
    assert predicted["provider_mix"] == actual["provider_mix"]
    assert predicted["cost_usd"] == pytest.approx(actual["cost_usd"], rel=0.01)
    assert predicted["task_success_rate"] == actual["task_success_rate"] == 1.0
    assert predicted["failovers"] >= 1


def test_replay_under_another_config_predicts_the_change(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    other = {
        "providers": {
            "steady": {"type": "local_mock", "priority": 1, "prices": {"*": {"input": 2.0, "output": 8.0}}},
            "cheap": {
                "type": "local_mock",
                "priority": 2,
                "capabilities": ["code_review"],
                "prices": {"*": {"input": 0.1, "output": 0.2}},
            },
        }
    }
    result = simulate(workload, parse_config(other, "other.yaml"))
    predicted, actual = result["predicted"], result["actual"]
    assert predicted["provider_mix"] == {"steady": 14}
    # every review now on the expensive provider, priced from the recorded token counts
    expected = sum((i.usage.input * 2.0 + i.usage.output * 8.0) / 1e6 for i in workload.items)
    assert predicted["cost_usd"] == pytest.approx(expected) and expected > actual["cost_usd"]
    assert predicted["failovers"] == 0
    cheaper = simulate(workload, parse_config(other, "other.yaml"), strategy="cost_based")
    assert cheaper["predicted"]["provider_mix"] == {"cheap": 12, "steady": 2}


def test_replay_predicts_when_a_limit_runs_out(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    limited = {
        "switch_threshold": 0.5,
        "providers": {
            "cheap": {
                "type": "local_mock",
                "priority": 1,
                "capabilities": ["code_review"],
                "limits": {"requests_per_hour": 5},
            },
            "steady": {"type": "local_mock", "priority": 2},
        },
    }
    result = simulate(workload, parse_config(limited, "limited.yaml"))
    # from 3 of 5 requests (past switch_threshold 0.5) the engine prefers the other provider
    assert result["predicted"]["provider_mix"]["cheap"] == 3
    assert any(
        e["kind"] == "quota.forecast_crossed" and e["provider"] == "cheap" for e in result["predicted"]["quota_events"]
    )


# --- the engine sees what it saw: the same estimates, the same calls ------------------------------------------

# One provider billed only for output, one only for input (the audit's costmix2.yaml): `cost_based` compares a
# task's estimated prompt (chars / 4) at $1/M with its expected answer (1024 tokens by default) at $0.02/M, so a
# prompt under 20.48 tokens goes to `inonly` and a longer one to `outonly`.
SPLIT_PRICES = {
    "version": 1,
    "strategy": "cost_based",
    "providers": {
        "outonly": {
            "type": "local_mock",
            "priority": 1,
            "latency_ms": 0,
            "prices": {"*": {"input": 0.0, "output": 0.02}},
        },
        "inonly": {
            "type": "local_mock",
            "priority": 2,
            "latency_ms": 0,
            "prices": {"*": {"input": 1.0, "output": 0.0}},
        },
    },
}
SHORT, LONG = "s" * 40, "l" * 120  # 10 and 30 estimated prompt tokens


def test_replay_gives_the_engine_the_recorded_prompt_estimate(ledger_url: str) -> None:
    ledger = Ledger(url=ledger_url)
    spec = {
        "name": "split",
        "tasks": [
            *({"id": f"short-{i}", "type": "review", "prompt": SHORT} for i in range(3)),
            *({"id": f"long-{i}", "type": "review", "prompt": LONG} for i in range(4)),
        ],
    }
    record_run(ledger, spec, SPLIT_PRICES)
    result = simulate(load_workload(ledger, *_window()), parse_config(SPLIT_PRICES, "same.yaml"))
    actual, predicted = result["actual"], result["predicted"]
    # By hand: 10 tokens x $1/M = $10/M < 1024 x $0.02/M = $20.48/M < 30 tokens x $1/M.
    assert actual["provider_mix"] == {"inonly": 3, "outonly": 4}
    assert predicted["provider_mix"] == actual["provider_mix"]
    assert predicted["cost_usd"] == pytest.approx(actual["cost_usd"], rel=1e-9)


def _record(ledger: Ledger, rows: list[tuple[Any, ...]], estimates: dict[str, dict[str, int]] | None = None) -> None:
    """A constructed run: (task, type, attempt, provider, outcome, tokens in, tokens out, cost, started)."""
    estimates = estimates or {}
    tasks = {r[0]: r[1] for r in rows}
    run_id, _ = ledger.start_or_resume_run(
        batch_name="built",
        batch_hash="h",
        team="qa",
        strategy="cost_based",
        tasks=[NewTask(task_id=t, task_type=k, priority="normal", team="qa") for t, k in tasks.items()],
    )
    for task_id in tasks:
        mine = [r for r in rows if r[0] == task_id]
        records = [
            AttemptRecord(
                run_id=run_id,
                task_id=task_id,
                provider_id=provider,
                task_type=task_type,
                attempt=attempt,
                outcome=outcome,
                started_at=started,
                finished_at=started,
                team="qa",
                strategy="cost_based",
                usage=TokenUsage(input=tin, output=tout),
                cost_usd=cost,
                latency_ms=5.0,
            )
            for _, task_type, attempt, provider, outcome, tin, tout, cost, started in mine
        ]
        ok = records[-1].outcome == "success"
        estimate = DecisionEstimate(**estimates[task_id]) if task_id in estimates else None
        decision = RouteDecision(strategy="cost_based", estimate=estimate)
        ledger.finish_task(
            run_id,
            task_id,
            status="completed" if ok else "failed",
            provider_id=records[-1].provider_id if ok else None,
            decision=decision,
            attempts=records,
        )


DAY = datetime(2026, 11, 1, tzinfo=UTC)
DAY_WINDOW = (DAY, DAY + timedelta(days=1))


def at(hh: int, mm: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm)


def test_replay_uses_the_estimate_recorded_in_the_decision(ledger_url: str) -> None:
    """A decision that records the engine's estimate is replayed with it, not with the tokens counted later."""
    ledger = Ledger(url=ledger_url)
    split = {
        "version": 1,
        "strategy": "cost_based",
        "providers": {
            "a": {"type": "local_mock", "priority": 1, "prices": {"*": {"input": 0.0, "output": 1.0}}},
            "b": {"type": "local_mock", "priority": 2, "prices": {"*": {"input": 1.0, "output": 0.0}}},
        },
    }
    _record(
        ledger,
        [
            ("t1", "review", 1, "b", "success", 100, 20, 100e-6, at(10)),
            ("t2", "review", 1, "a", "success", 150, 30, 30e-6, at(11)),
        ],
        # t1: a 50 x $1/M vs b 10 x $1/M -> b (its 100 counted tokens would say a); t2: a 50 vs b 200 -> a
        # (the default 1024-token answer would say b).
        estimates={
            "t1": {"prompt_tokens": 10, "max_output_tokens": 50},
            "t2": {"prompt_tokens": 200, "max_output_tokens": 50},
        },
    )
    result = simulate(load_workload(ledger, *DAY_WINDOW), parse_config(split, "split.yaml"))
    assert result["workload"]["estimates_recorded"] == 2
    assert result["actual"]["provider_mix"] == result["predicted"]["provider_mix"] == {"a": 1, "b": 1}
    # t1 on b: 100 x $1/M; t2 on a: 30 x $1/M.
    assert result["predicted"]["cost_usd"] == pytest.approx(130e-6, rel=1e-9)


@pytest.mark.parametrize("seed", [1, 3])
def test_replay_reproduces_a_run_with_partial_failures_exactly(ledger_url: str, seed: int) -> None:
    """100 tasks, 20% failures on the first provider: the replay plays back each recorded call, so mix, cost,
    attempts and failovers are the recorded ones (a redraw with another hash was 2-11 tasks and up to 18% off)."""
    ledger = Ledger(url=ledger_url)
    config = {
        "version": 1,
        "providers": {
            "p1": {
                "type": "local_mock",
                "priority": 1,
                "latency_ms": 0,
                "failure_rate": 0.2,
                "seed": seed,
                "prices": {"*": {"input": 1.0, "output": 4.0}},
            },
            "p2": {
                "type": "local_mock",
                "priority": 2,
                "latency_ms": 0,
                "prices": {"*": {"input": 3.0, "output": 15.0}},
            },
        },
    }
    spec = {
        "name": f"partial-{seed}",
        "tasks": [{"id": f"t{i}", "type": "code_review", "prompt": f"review {i}"} for i in range(100)],
    }
    record_run(ledger, spec, config)
    result = simulate(load_workload(ledger, *_window()), parse_config(config, "same.yaml"))
    actual, predicted = result["actual"], result["predicted"]
    assert 0 < actual["provider_mix"]["p2"] < 50  # some first calls failed over, most did not
    for figure in ("provider_mix", "attempts", "completed", "failovers", "attempt_success_rate"):
        assert predicted[figure] == actual[figure], figure
    assert predicted["cost_usd"] == pytest.approx(actual["cost_usd"], rel=1e-9)


def test_a_task_that_never_succeeded_is_priced_at_its_types_median_tokens(ledger_url: str) -> None:
    ledger = Ledger(url=ledger_url)
    _record(
        ledger,
        [
            ("t1", "review", 1, "old", "success", 100, 50, 0.0, at(9)),
            ("t2", "review", 1, "old", "success", 200, 70, 0.0, at(10)),
            ("t3", "review", 1, "old", "success", 300, 90, 0.0, at(11)),
            ("t4", "review", 1, "old", "unavailable", 0, 0, 0.0, at(12)),
            ("t4", "review", 2, "old", "unavailable", 0, 0, 0.0, at(12, 1)),
        ],
    )
    fresh = {
        "version": 1,
        "providers": {"fresh": {"type": "local_mock", "prices": {"*": {"input": 1.0, "output": 2.0}}}},
    }
    result = simulate(load_workload(ledger, *DAY_WINDOW), parse_config(fresh, "fresh.yaml"))
    assert result["workload"]["usage_estimated"] == 1
    assert result["predicted"]["completed"] == 4
    # t1..t3 at their own tokens: 200 + 340 + 480 per million; t4 at review's median (200 in, 70 out): 340.
    assert result["predicted"]["cost_usd"] == pytest.approx(1360e-6, rel=1e-9)


def test_success_rates_are_named_and_null_when_undefined(ledger_url: str) -> None:
    ledger = Ledger(url=ledger_url)
    result = simulate(load_workload(ledger, *DAY_WINDOW), parse_config(RECORDED, "same.yaml"))
    for side in ("actual", "predicted"):
        assert "success_rate" not in result[side]
        assert result[side]["task_success_rate"] is None and result[side]["attempt_success_rate"] is None


def test_simulate_and_report_share_the_definition_of_a_provider_failure(ledger_url: str) -> None:
    from analytics import ReportWindow, build_report
    from tests.analytics.test_provider_outcomes import WINDOW, outcome_mix_attempts

    ledger = Ledger(url=ledger_url)
    ledger.record_attempts(outcome_mix_attempts())
    workload = load_workload(ledger, WINDOW.since, WINDOW.until)
    actual = simulate(workload, parse_config(RECORDED, "same.yaml"))["actual"]
    report = build_report(ledger.engine, ReportWindow(WINDOW.since, WINDOW.until)).to_json()["totals"]
    # 6 successes of 7 attempts that count (2 cancelled and 1 bad_request do not); 6 of 10 tasks completed.
    assert actual["attempt_success_rate"] == report["attempt_success_rate"] == pytest.approx(6 / 7)
    assert actual["task_success_rate"] == report["task_success_rate"] == pytest.approx(0.6)


def test_recorded_quota_events_are_shown_beside_the_predicted_ones(ledger_url: str) -> None:
    ledger = Ledger(url=ledger_url)
    _record(ledger, [(f"t{i}", "review", 1, "cheap", "success", 10, 5, 0.0, at(10, i)) for i in range(6)])
    ledger.record_provider_event("cheap", "quota.blocked", {"reason": "requests_per_hour"}, None)  # now: outside
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(ProviderEvent),
            [
                {
                    "provider_id": "cheap",
                    "subscription": None,
                    "kind": "quota.forecast_crossed",
                    "detail": {"limit": "requests_per_hour"},
                    "at": at(10, 3),
                }
            ],
        )
    limited = {
        "version": 1,
        "switch_threshold": 0.5,
        "providers": {
            "cheap": {"type": "local_mock", "priority": 1, "limits": {"requests_per_hour": 5}},
            "steady": {"type": "local_mock", "priority": 2},
        },
    }
    result = simulate(load_workload(ledger, *DAY_WINDOW), parse_config(limited, "limited.yaml"))
    recorded = result["actual"]["quota_events"]
    assert recorded == [
        {
            "provider": "cheap",
            "kind": "quota.forecast_crossed",
            "at": "2026-11-01T10:03:00+00:00",
            "limit": "requests_per_hour",
        }
    ]
    predicted = [e for e in result["predicted"]["quota_events"] if e["kind"] == "quota.forecast_crossed"]
    assert predicted and predicted[0]["provider"] == "cheap"
    assert predicted[0]["at"].startswith("2026-11-01T")  # on the replay's clock: within the recorded day


def test_replay_charges_a_claude_code_login_nothing_and_keeps_its_list_price(recorded: Ledger, tmp_path: Path) -> None:
    workload = load_workload(recorded, *_window())
    logins = {
        "providers": {
            "claude": {
                "type": "claude_cli",
                "model": "claude-sonnet-4-5",
                "subscriptions": [{"name": "a", "config_dir": str(tmp_path / "a")}],
            }
        }
    }
    predicted = simulate(workload, parse_config(logins, "logins.yaml"))["predicted"]
    assert predicted["provider_mix"] == {"claude": 14}
    sonnet = sum((i.usage.input * 3.0 + i.usage.output * 15.0) / 1e6 for i in workload.items)
    assert predicted["cost_usd"] == 0.0
    assert predicted["list_price_usd"] == pytest.approx(sonnet) and sonnet > 0


def test_a_provider_is_replayed_by_its_behaviour_on_each_task_type(ledger_url: str) -> None:
    # Recorded: `picky` answered every summary and failed every review (then `steady` took it); tasks of the window
    # that never met `picky` are drawn from its record on their own type, not from its 50% overall.
    ledger = Ledger(url=ledger_url)
    rows: list[tuple[Any, ...]] = []
    for i in range(8):
        rows.append((f"sum-{i}", "summarization", 1, "picky", "success", 100, 50, 0.001, at(9, i)))
        rows.append((f"rev-{i}", "code_review", 1, "picky", "unavailable", 0, 0, 0.0, at(10, i)))
        rows.append((f"rev-{i}", "code_review", 2, "steady", "success", 100, 50, 0.002, at(10, i)))
    for i in range(8):  # routed to `steady` alone in the recording
        rows.append((f"new-sum-{i}", "summarization", 1, "steady", "success", 100, 50, 0.002, at(11, i)))
        rows.append((f"new-rev-{i}", "code_review", 1, "steady", "success", 100, 50, 0.002, at(12, i)))
    _record(ledger, rows)
    config = {
        "circuit": {"failure_threshold": 100, "min_calls": 100, "window": 100},
        "providers": {
            "picky": {"type": "local_mock", "priority": 1, "prices": {"*": {"input": 1.0, "output": 1.0}}},
            "steady": {"type": "local_mock", "priority": 2, "prices": {"*": {"input": 2.0, "output": 8.0}}},
        },
    }
    workload = load_workload(ledger, *DAY_WINDOW)
    result = simulate(workload, parse_config(config, "what-if.yaml"))
    # Replayed: the 8 recorded summaries on picky, the 8 new ones drawn there from its summaries (all answered);
    # every review (recorded or drawn from its reviews, all failed) fails over to steady.
    assert result["predicted"]["provider_mix"] == {"picky": 16, "steady": 16}
    assert result["predicted"]["task_success_rate"] == 1.0


def test_the_prediction_counts_quota_failures_as_the_run_summary_does(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    only = {
        "reserve_for_critical": 0,
        "providers": {"steady": {"type": "local_mock", "limits": {"requests_per_hour": 5}}},
    }
    predicted = simulate(workload, parse_config(only, "only.yaml"))["predicted"]
    # 14 tasks, 5 calls an hour and nowhere else to go: 9 fail for quota.
    assert (predicted["completed"], predicted["quota_failures"]) == (5, 9)
