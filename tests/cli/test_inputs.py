"""`switchboard` on bad input and odd text, as a user runs it: one clear line and the right exit code, never a
traceback; names, outputs and errors printed exactly as written. No Prefect flow is started here."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Ledger
from tests.cli.cli_kit import ROOT, cli_env, one_error_line, record_run, switchboard
from tests.ports import free_port

EXAMPLE = str(ROOT / "examples" / "pr-review.yaml")


# --- spec and providers files -------------------------------------------------------------------------


def test_a_spec_that_is_not_utf8_names_the_file_and_the_place_not_strategy(tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_bytes(b'name: c\ntasks:\n  - {id: a, type: t, prompt: "\xff"}\n')
    result = switchboard("run", str(spec), env=cli_env(tmp_path))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(spec) in line and "not UTF-8" in line
    assert "line 3, column 31" in line and "byte offset 45" in line
    assert "--strategy" not in line
    assert not (tmp_path / "ledger.db").exists()  # nothing written


def test_a_providers_file_that_is_not_utf8_names_that_file(tmp_path: Path) -> None:
    providers = tmp_path / "p.yaml"
    providers.write_bytes(b'providers:\n  m: {type: local_mock, model: "caf\xe9"}\n')
    result = switchboard("run", EXAMPLE, "--providers", str(providers), env=cli_env(tmp_path))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(providers) in line and "byte 0xe9 at line 2" in line and "--strategy" not in line


def test_an_empty_spec_says_so(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("# nothing but a comment\n")
    result = switchboard("run", str(spec), env=cli_env(tmp_path))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(spec) in line and "the file is empty" in line and "NoneType" not in line


def test_a_bad_strategy_is_still_blamed_on_strategy(tmp_path: Path) -> None:
    result = switchboard("run", EXAMPLE, "--strategy", "fastest", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert one_error_line(result.stderr).startswith("error: --strategy: unknown strategy 'fastest'")


def test_input_errors_are_printed_as_written_not_as_markup(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text('name: "[bold]x[/] y"\ntasks: [{id: a, type: t, prompt: p, colour: "[/]"}]\n')
    result = switchboard("run", str(spec), env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "colour: Extra inputs are not permitted (got '[/]')" in one_error_line(result.stderr)


# --- the ledger database ----------------------------------------------------------------------------------


def test_a_ledger_that_cannot_be_opened_is_one_line_with_reason_and_hint_and_exit_2(tmp_path: Path) -> None:
    # Every kind of failure is covered in tests/ledger/test_ledger_unavailable.py; here, what the user sees.
    result = switchboard("runs", env=cli_env(tmp_path, SWITCHBOARD_DATABASE_URL="mysql://u:hunter22@127.0.0.1/db"))
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "error: SWITCHBOARD_DATABASE_URL=mysql://u:***@127.0.0.1/db: the database driver for 'mysql' is not "
        "installed (No module named 'MySQLdb'); for PostgreSQL install the `postgres` extra "
        "(pip install 'switchboard[postgres]') and use postgresql+psycopg://; for another database, install its "
        "driver"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["run", EXAMPLE], ["show", "r2026"], ["runs", "--json"]])
def test_every_ledger_command_reports_a_bad_database_url_the_same_way(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+psycopg://sb:hunter22@127.0.0.1:{free_port()}/ledger"
    result = switchboard(*command, env=cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=url))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert f"SWITCHBOARD_DATABASE_URL=postgresql+psycopg://sb:***@127.0.0.1:{url.split(':')[-1]}" in line
    assert "starting the local Prefect server" not in result.stderr  # stopped before anything ran


def test_the_default_ledger_under_an_unusable_home_names_the_home(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    env = cli_env(tmp_path, SWITCHBOARD_HOME=str(home))
    del env["SWITCHBOARD_DATABASE_URL"]
    result = switchboard("runs", env=env)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "$SWITCHBOARD_HOME" in line and f"cannot create the folder {home}" in line


# --- runs and show ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_rejects_a_limit_below_one(tmp_path: Path, limit: str) -> None:
    result = switchboard("runs", "--limit", limit, env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "--limit" in result.stderr and "Must be >= 1" in result.stderr
    assert result.stdout == ""


def test_runs_limit_counts_runs(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    ids = [record_run(ledger, f"batch-{n}", {"a": [("mock", "success")]}) for n in range(3)]
    result = switchboard("runs", "--limit", "2", env=cli_env(tmp_path))
    assert result.returncode == 0
    assert [i in result.stdout for i in ids] == [False, True, True]  # newest first


def test_show_with_an_ambiguous_prefix_says_so_and_lists_matches(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    ids = [record_run(ledger, f"batch-{n}", {"a": [("mock", "success")]}) for n in range(7)]
    env = cli_env(tmp_path)
    result = switchboard("show", "r", env=env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "'r' is ambiguous: 7 runs match" in line and "(2 more)" in line
    assert sum(i in line for i in ids) == 5
    assert "no run" not in line

    missing = switchboard("show", "r1999", env=env)
    assert missing.returncode == 1 and "no run 'r1999' in the ledger" in missing.stderr
    unique = switchboard("show", ids[3][:-2], env=env)
    assert unique.returncode == 0 and ids[3] in unique.stdout


def test_names_outputs_and_errors_are_shown_as_written(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    run_id = record_run(
        ledger,
        "nightly [/] review",
        {"typed": [("mock[eu]", "success")], "flaky": [("mock[eu]", "unavailable")]},
        outputs={"typed": "It returns list[str] as described in [docs]."},
        errors={"flaky": "[flaky] unavailable: the [bold]server[/bold] went away"},
    )
    env = cli_env(tmp_path)
    listing = switchboard("runs", env=env)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "nightly [/] review" in listing.stdout

    shown = switchboard("show", run_id, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "nightly [/] review" in shown.stdout
    assert "It returns list[str] as described in [docs]." in shown.stdout
    assert "error: [flaky] unavailable: the [bold]server[/bold] went away" in shown.stdout
    assert "mock[eu]: ok" in shown.stdout and "chosen mock[eu]" in shown.stdout


def test_run_summary_keeps_provider_names_whole_when_piped(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    run_id = record_run(
        ledger,
        "pr-review",
        {
            "review-frontend-and-backend": [
                ("claude_primary_subscription", "quota_exhausted"),
                ("openai_compatible_fallback", "unavailable"),
                ("local_mock_of_last_resort", "success"),
            ]
        },
    )
    shown = switchboard("show", run_id, env=cli_env(tmp_path, COLUMNS="80"))
    assert shown.returncode == 0
    for text in (
        "review-frontend-and-backend",
        "claude_primary_subscription: quota_exhausted",
        "→ openai_compatible_fallback: unavailable",
        "→ local_mock_of_last_resort: ok",
    ):
        assert text in shown.stdout
    assert "…" not in shown.stdout


def test_server_status_prints_paths_with_brackets_as_written(tmp_path: Path) -> None:
    prefect_home = tmp_path / "prefect [/] home"
    env = cli_env(tmp_path, PREFECT_HOME=str(prefect_home), SWITCHBOARD_PREFECT_PORT=str(free_port()))
    result = switchboard("server", "status", env=env)
    assert result.returncode == 1  # no server answers there
    assert f"Prefect home: {prefect_home}" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_batch_named_with_brackets_runs_resumes_and_lists(tmp_path: Path) -> None:
    """End to end under Prefect: the run summary, the resume notice and `runs` print the name as written, and
    only a resumed run is called resumed (the flow's own log line included)."""
    spec = tmp_path / "nightly.yaml"
    spec.write_text('name: "nightly [/] review"\ntasks:\n  - {id: "a", type: code_review, prompt: "p"}\n')
    down, up = tmp_path / "down.yaml", tmp_path / "up.yaml"
    down.write_text("providers:\n  down: {type: local_mock, failure_rate: 1.0}\n")
    up.write_text("providers:\n  up: {type: local_mock, latency_ms: 0}\n")
    env = cli_env(tmp_path)

    first = switchboard("run", str(spec), "--providers", str(down), "--verbose", env=env, timeout=300)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "run r" in first.stderr and "of batch 'nightly [/] review'" in first.stderr  # the flow's log line
    assert "(resumed)" not in first.stderr and "resuming" not in first.stderr
    assert "nightly [/] review" in first.stdout and "down: unavailable" in first.stdout
    assert "Traceback" not in first.stderr

    second = switchboard("run", str(spec), "--providers", str(up), env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming unfinished run r" in second.stderr and "of 'nightly [/] review'" in second.stderr
    assert "up: ok" in second.stdout

    listing = switchboard("runs", env=env)
    assert listing.returncode == 0 and "nightly [/] review" in listing.stdout
