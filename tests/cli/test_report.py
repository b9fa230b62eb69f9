"""`switchboard report` as a user runs it: a subprocess over a constructed SQLite ledger, no Prefect."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import create_ledger_engine
from tests.analytics import sample_ledger as sample

ROOT = Path(__file__).resolve().parents[2]
PERIOD = ["--since", "2026-11-01", "--until", "2026-11-03"]


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-cli") / "ledger.db"
    engine = create_ledger_engine(f"sqlite:///{path}")
    sample.fill(engine)
    engine.dispose()
    return path


def _env(db: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_PROVIDERS"}
    return env | {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{db}", "SWITCHBOARD_HOME": str(home)}


def report(
    db: Path, tmp_path: Path, *args: str, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "cli", "report", *args],
        capture_output=True,
        text=True,
        env=_env(db, tmp_path / "home"),
        timeout=120,
        cwd=ROOT,
    )


def test_json_has_totals_and_tables(filled_db: Path, tmp_path: Path) -> None:
    result = report(filled_db, tmp_path, *PERIOD, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one JSON object on stdout
    totals = document["totals"]
    assert totals["cost_usd"] == pytest.approx(65.55, abs=0.005)
    assert totals["attempts"] == 10
    assert totals["success_rate"] == pytest.approx(0.7)
    for table in ("by_provider", "by_team", "by_task_type", "by_day", "performance", "quota", "routing", "health"):
        assert isinstance(document[table], list), table
    assert {r["team"]: r["cost_usd"] for r in document["by_team"]} == pytest.approx({"platform": 38.5, "search": 27.05})
    assert [r["day"] for r in document["by_day"]] == ["2026-11-01", "2026-11-02"]
    assert isinstance(document["recommendations"], list) and isinstance(document["alerts"], list)


def test_since_with_an_offset_is_converted_to_utc(filled_db: Path, tmp_path: Path) -> None:
    # 01:00 at +01:00 is midnight UTC on Nov 2: only run r2 remains.
    result = report(
        filled_db, tmp_path, "--since", "2026-11-02T01:00:00+01:00", "--until", "2026-11-03", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["period"]["since"] == "2026-11-02T00:00:00+00:00"
    assert document["totals"]["attempts"] == 4
    assert document["totals"]["cost_usd"] == pytest.approx(27.05, abs=0.005)


def test_team_filter_and_csv(filled_db: Path, tmp_path: Path) -> None:
    result = report(filled_db, tmp_path, *PERIOD, "--team", "platform", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["provider_id"]: float(r["cost_usd"]) for r in rows} == pytest.approx(
        {"alpha": 31.5, "beta": 7.0, "gamma": 0.0}
    )
    assert rows[0]["provider_id"] == "alpha"  # costliest first


def test_table_output_and_out_dir(filled_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = report(filled_db, tmp_path, *PERIOD, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Cost by provider" in result.stdout and "Provider performance" in result.stdout
    assert "$65.55" in result.stdout
    for name in ("by_provider.csv", "by_day.csv", "cost_over_time.png", "latency_percentiles.png", "report.html"):
        assert (out / name).stat().st_size > 0, name


def test_json_with_out_lists_the_files(filled_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = report(filled_db, tmp_path, *PERIOD, "--out", str(out), "--format", "json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert Path(files["html"]) == out / "report.html" and Path(files["png"]["quota_utilisation"]).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "--since: 'last tuesday' is neither a duration"),
        (["--since", "7d", "--until", "2026-02-30"], "--until: '2026-02-30' is neither a duration"),
        (["--since", "2026-11-03", "--until", "2026-11-01"], "must be before"),
    ],
)
def test_invalid_period_exits_2_with_a_message(filled_db: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = report(filled_db, tmp_path, *args, "--format", "json")
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_invalid_format_or_providers_file_exits_2(filled_db: Path, tmp_path: Path) -> None:
    assert report(filled_db, tmp_path, "--format", "xml").returncode == 2
    bad = tmp_path / "providers.yaml"
    bad.write_text("version: 1\nproviders: {m: {type: local_mock, failure_rate: 2}}\n")
    result = report(filled_db, tmp_path, "--providers", str(bad))
    assert result.returncode == 2
    assert "failure_rate" in result.stderr


def test_empty_ledger_prints_strict_json(tmp_path: Path) -> None:
    create_ledger_engine(f"sqlite:///{tmp_path / 'empty.db'}").dispose()  # a ledger with no attempts yet
    result = report(tmp_path / "empty.db", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["totals"]["attempts"] == 0 and document["totals"]["success_rate"] is None
    assert document["by_provider"] == []
    assert "NaN" not in result.stdout


def test_report_command_does_not_import_prefect(filled_db: Path, tmp_path: Path) -> None:
    result = report(filled_db, tmp_path, *PERIOD, "--format", "json", python_flags=("-X", "importtime"))
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "analytics.report" in imported
    assert not any(name == "prefect" or name.startswith("prefect.") for name in imported)


def test_tables_are_whole_when_piped_into_a_narrow_terminal_width(filled_db: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "report", *PERIOD],
        capture_output=True,
        text=True,
        env=_env(filled_db, tmp_path / "home") | {"COLUMNS": "60"},
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout  # nothing cut off ("provide…")
    header = next(line for line in result.stdout.splitlines() if "provider_id" in line and "tokens_output" in line)
    assert "success_rate" in header and "cost_share" in header  # one line per row: greppable
    assert "attempt success rate 70.0%" in result.stdout and "task success rate 100.0%" in result.stdout


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_a_duration_beyond_the_calendar_exits_2_with_a_message(filled_db: Path, tmp_path: Path, option: str) -> None:
    args = ["--since", "99999999d"] if option == "--since" else ["--since", "1d", "--until", "99999999d"]
    result = report(filled_db, tmp_path, *args)
    assert result.returncode == 2
    assert f"{option}: '99999999d' reaches back before the year 1" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_out_folder_that_cannot_be_created_exits_2_naming_it(filled_db: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    result = report(filled_db, tmp_path, *PERIOD, "--out", str(afile / "x"))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"--out {afile / 'x'}: cannot create this folder" in message and "Not a directory" in message
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_report_file_that_cannot_be_written_exits_1_naming_it(filled_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # a folder where the HTML file must go
    result = report(filled_db, tmp_path, *PERIOD, "--out", str(out), "--format", "json")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"cannot write the report: {out / 'report.html'}: Is a directory" in message
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_mistyped_ledger_url_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    result = report(missing, tmp_path, "--format", "json")
    assert result.returncode == 2
    assert f"no ledger at {missing}" in " ".join(result.stderr.split())
    assert "SWITCHBOARD_DATABASE_URL" in result.stderr
    assert not missing.parent.exists()  # neither the folder nor the database was created
    assert result.stdout == ""


def test_a_database_without_the_ledgers_tables_is_not_a_ledger(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x TEXT)").connection.commit()
    result = report(other, tmp_path)
    assert result.returncode == 2
    assert "is not a Switchboard ledger" in " ".join(result.stderr.split())
    assert [r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master WHERE type='table'")] == [
        "notes"
    ]  # no ledger tables were added


def test_a_file_that_is_not_a_database_exits_2_like_every_command(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not SQLite " * 100)
    result = report(garbage, tmp_path)
    assert result.returncode == 2  # a ledger that cannot be opened is bad input for every command
    message = " ".join(result.stderr.split())
    assert f"SWITCHBOARD_DATABASE_URL=sqlite:///{garbage}" in message and "file is not a database" in message
    assert "Traceback" not in result.stderr


def test_the_team_table_shows_list_price_and_savings(filled_db: Path, tmp_path: Path) -> None:
    result = report(filled_db, tmp_path, *PERIOD, "--format", "json")
    assert result.returncode == 0, result.stderr
    teams = {r["team"]: r for r in json.loads(result.stdout)["by_team"]}
    for row in teams.values():
        assert row["savings_usd"] == pytest.approx(row["subscription_savings_usd"] + row["cache_savings_usd"])
        assert row["subscription_savings_usd"] == pytest.approx(max(0.0, row["list_price_usd"] - row["cost_usd"]))
    shown = report(filled_db, tmp_path, *PERIOD)
    assert shown.returncode == 0, shown.stderr
    team_table = shown.stdout[shown.stdout.index("Cost by team") : shown.stdout.index("Cost by task type")]
    assert "savings_usd" in team_table and "list_price_usd" in team_table
