"""Past usage from a CSV into the ledger: bad rows reported by line, the rest imported once, keys never stored."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import pytest

from configtools import IMPORT_RUN, UsageFileError, import_usage
from ledger import Ledger, create_ledger_engine

KEY = "sk-ant-aaaaaaaaaaaa1111"
CSV = (
    "timestamp,key,task_type,tokens_in,tokens_out,cost_usd,model\n"
    f"2026-11-01T10:00:00Z,{KEY},code_review,100,20,0.01,claude-sonnet-4-5\n"
    "2026-11-01 11:00:00,sk-other-bbbbbbbbbb,bug_fix,50,10,0.005,\n"
    "yesterday,sk-x,code_review,1,1,0,\n"
    "2026-11-01T12:00:00+02:00,sk-x,code_review,1.5,1,0,\n"
    "2026-11-01T12:00:00Z,sk-x,code_review,1,1,-3,\n"
    "\n"
    f"2026-11-01T10:00:00Z,{KEY},code_review,100,20,0.01,claude-sonnet-4-5\n"
)


@pytest.fixture
def ledger(sqlite_url: str) -> Ledger:
    return Ledger(create_ledger_engine(sqlite_url))


def test_bad_rows_by_line_the_rest_once(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(CSV)
    first = import_usage(path, ledger, key_places={KEY: ("claude", "key-1")})
    assert (first.rows, first.imported, first.already) == (6, 3, 0)
    assert [b.render(path) for b in first.bad] == [
        f"{path}:4: timestamp: 'yesterday' is not an ISO 8601 time (e.g. 2026-11-30T14:05:00Z)",
        f"{path}:5: tokens_in: '1.5' must be a whole number >= 0",
        f"{path}:6: cost_usd: '-3' < 0",
    ]
    attempts = sorted(ledger.attempts(IMPORT_RUN), key=lambda a: a.started_at)
    assert (
        [(a.provider_id, a.subscription, a.task_type, a.usage.input, a.usage.output) for a in attempts]
        == [
            ("claude", "key-1", "code_review", 100, 20),  # the key migrate gave a subscription lands on it
            ("claude", "key-1", "code_review", 100, 20),  # the same row twice: two calls, both kept
            ("imported", "key-" + sha256(b"sk-other-bbbbbbbbbb").hexdigest()[:8], "bug_fix", 50, 10),  # a fingerprint
        ]
    )
    assert attempts[0].started_at.isoformat() == "2026-11-01T10:00:00+00:00"
    assert sum(a.cost_usd for a in attempts) == pytest.approx(0.025)
    second = import_usage(path, ledger)  # again, even without the key map: nothing twice
    assert (second.imported, second.already, len(second.bad)) == (0, 3, 3)
    assert len(ledger.attempts(IMPORT_RUN)) == 3
    stored = " ".join(str(a.model_dump()) for a in ledger.attempts(IMPORT_RUN))
    assert KEY not in stored and "sk-other" not in stored


def test_a_file_without_the_needed_columns_imports_nothing(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("when,tokens\n2026-11-01,5\n")
    with pytest.raises(UsageFileError, match=r"usage.csv:1: missing column\(s\) timestamp, task_type, tokens_in"):
        import_usage(path, ledger)
    assert ledger.get_run(IMPORT_RUN) is None


def test_aliases_and_subscription_column(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "Date,Account,Type,Input_Tokens,Output_Tokens,Cost,Provider,Outcome\n"
        "2026-11-02T00:00:00Z,team-a,summarization,10,5,0.001,claude,rate_limited\n"
        "2026-11-02T00:00:01Z,team-a,summarization,10,5,0.001,claude,exploded\n"
    )
    result = import_usage(path, ledger)
    assert result.imported == 1 and [b.column for b in result.bad] == ["outcome"]
    [attempt] = ledger.attempts(IMPORT_RUN)
    assert (attempt.provider_id, attempt.subscription, attempt.outcome) == ("claude", "team-a", "rate_limited")
