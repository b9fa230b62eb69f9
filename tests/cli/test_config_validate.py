"""`switchboard config validate` as a user runs it, and the same checks before every `switchboard run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cli_kit import ROOT, cli_env, switchboard

EXAMPLE = str(ROOT / "examples" / "pr-review.yaml")
BROKEN = (
    "providers:\n  c: {type: claude_clii}\n  m:\n    type: local_mock\n    priorty: 2\n"
    "    limits: {requests_per_hour: 1000/hour}\n"
)


def test_validate_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BROKEN)
    result = switchboard("config", "validate", str(path), env=cli_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}:2: providers.c.type: unknown provider type 'claude_clii'; did you mean 'claude_cli'?",
        "    fix: write `type: claude_cli`",
        f"{path}:5: providers.m.priorty: unknown key 'priorty' in providers.m; did you mean 'priority'?",
        "    fix: rename it to 'priority'",
        f"{path}:6: providers.m.limits.requests_per_hour: '1000/hour': a limit is a count, its window is in the key",
        "    fix: write `requests_per_hour: 1000`",
    ]
    assert result.stderr.strip() == f"3 problem(s) in {path}; `switchboard config repair` can fix 3"


def test_validate_a_sound_file_exits_0_and_reads_the_env_default(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  a: {type: local_mock}\n  b: {type: local_mock}\n")
    result = switchboard("config", "validate", env=cli_env(tmp_path, SWITCHBOARD_PROVIDERS=str(path)))
    assert (result.returncode, result.stdout.strip()) == (0, f"{path}: ok (2 providers: a, b)")
    nothing = switchboard("config", "validate", env=cli_env(tmp_path))
    assert nothing.returncode == 2 and "name a providers file, or set SWITCHBOARD_PROVIDERS" in nothing.stderr


def test_validate_json(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  a: {type: anthropic, api_key_env: SB_TEST_UNSET_KEY}\n")
    result = switchboard("config", "validate", str(path), "--json", env=cli_env(tmp_path))
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert out["ok"] is False and out["providers"] == ["a"]
    [problem] = out["problems"]
    assert problem["kind"] == "missing_secret" and problem["line"] == 2 and problem["fixable"] is False
    assert problem["field"] == "providers.a.api_key_env"


def test_run_refuses_a_broken_providers_file_listing_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BROKEN)
    result = switchboard("run", EXAMPLE, "--providers", str(path), env=cli_env(tmp_path), timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path}:2: providers.c.type: unknown provider type 'claude_clii'; did you mean 'claude_cli'? "
        "(fix: write `type: claude_cli`)",
        f"error: {path}:5: providers.m.priorty: unknown key 'priorty' in providers.m; did you mean 'priority'? "
        "(fix: rename it to 'priority')",
        f"error: {path}:6: providers.m.limits.requests_per_hour: '1000/hour': a limit is a count, its window is in "
        "the key (fix: write `requests_per_hour: 1000`)",
    ]
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.slow
def test_run_warns_about_a_missing_key_and_runs_on_the_others(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "strategy: priority_based\nproviders:\n  api:\n    type: anthropic\n    priority: 1\n"
        "    api_key_env: SB_TEST_UNSET_KEY\n    base_url: http://127.0.0.1:9\n"
        "  mock: {type: local_mock, priority: 2, latency_ms: 0}\n"
    )
    result = switchboard("run", EXAMPLE, "--providers", str(path), "--json", env=cli_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {path}:6: providers.api.api_key_env: the env var SB_TEST_UNSET_KEY is not set "
        "(fix: export SB_TEST_UNSET_KEY=... (or create the Prefect Secret block 'sb-test-unset-key'), "
        "or set `enabled: false` on this provider)"
    ]
    assert json.loads(result.stdout)["totals"]["completed"] == 12


@pytest.mark.slow
def test_a_key_held_by_a_prefect_secret_block_is_found(prefect_harness: None, tmp_path: Path) -> None:
    """Against a real Prefect API (the test harness): a key only in a Secret block counts; a missing one is named
    with both places looked at."""
    from prefect.blocks.system import Secret

    from cli.config import check_file

    Secret(value="sk-from-a-block-0123456789").save("sb-validate-block-key", overwrite=True)
    path = tmp_path / "p.yaml"
    path.write_text(
        "providers:\n  a: {type: anthropic, api_key_env: SB_VALIDATE_BLOCK_KEY}\n"
        "  b: {type: anthropic, api_key_env: SB_VALIDATE_NO_BLOCK}\n"
    )
    [problem] = check_file(path).problems
    assert (problem.line, problem.field) == (3, "providers.b.api_key_env")
    assert problem.message == (
        "neither the env var SB_VALIDATE_NO_BLOCK nor a Prefect Secret block 'sb-validate-no-block' holds a key"
    )
