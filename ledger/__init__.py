"""The usage ledger: SQLAlchemy models, Alembic migrations, recording and reading runs and attempts."""

from ledger.db import LedgerUnavailable, create_ledger_engine, data_dir, default_database_url, migrate
from ledger.records import (
    AttemptRecord,
    HistoryRecord,
    NewTask,
    ProviderEventRecord,
    ProviderRecord,
    RunRecord,
    TaskOutcome,
    TaskState,
    UsagePoint,
)
from ledger.store import TERMINAL_TASK_STATUSES, Ledger, RunInProgress, new_run_id, utc_now
from ledger.writer import LedgerWriter

__all__ = [
    "TERMINAL_TASK_STATUSES",
    "AttemptRecord",
    "HistoryRecord",
    "Ledger",
    "LedgerUnavailable",
    "LedgerWriter",
    "NewTask",
    "ProviderEventRecord",
    "ProviderRecord",
    "RunInProgress",
    "RunRecord",
    "TaskOutcome",
    "TaskState",
    "UsagePoint",
    "create_ledger_engine",
    "data_dir",
    "default_database_url",
    "migrate",
    "new_run_id",
    "utc_now",
]
