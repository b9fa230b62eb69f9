"""N processes opening a fresh ledger at the same moment all come up: migrations are serialized across processes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ledger import create_ledger_engine
from ledger.db import current_revision, head_revision

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 6

# Each process imports everything first, then waits for the go file, so all of them migrate at the same moment.
_OPEN = """
import sys, time
from pathlib import Path
from ledger import open_ledger
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
ledger = open_ledger(sys.argv[1])
print(len(ledger.list_runs()))
"""


def _open_at_once(url: str, tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, url, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    time.sleep(3.0)  # let every process finish its imports
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.slow
def test_processes_opening_a_fresh_postgresql_ledger_at_once_all_come_up(
    postgres_ledger_url: str, tmp_path: Path
) -> None:
    results = _open_at_once(postgres_ledger_url, tmp_path)
    assert [r.returncode for r in results] == [0] * WORKERS, "\n".join(r.stderr[-800:] for r in results)
    assert [r.stdout.strip() for r in results] == ["0"] * WORKERS
    engine = create_ledger_engine(postgres_ledger_url, migrate_schema=False)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.slow
def test_processes_opening_a_fresh_sqlite_ledger_at_once_all_come_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'ledger.db'}"
    results = _open_at_once(url, tmp_path)
    assert [r.returncode for r in results] == [0] * WORKERS, "\n".join(r.stderr[-800:] for r in results)
    engine = create_ledger_engine(url, migrate_schema=False)
    assert current_revision(engine) == head_revision()
    engine.dispose()
