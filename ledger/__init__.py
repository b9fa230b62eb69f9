"""The usage ledger: SQLAlchemy models, Alembic migrations, recording and reading runs and attempts."""

from ledger.db import LedgerUnavailable, create_ledger_engine, data_dir, default_database_url, migrate
from ledger.failovers import (
    count_failovers,
    count_rotations,
    follows_failure,
    is_failover,
    is_rotation,
    move_kind,
)
from ledger.models import ProviderEvent, ProviderUsage
from ledger.opening import LedgerNotFound, LedgerUnreadable, open_existing_ledger, open_ledger, read_failure
from ledger.records import (
    AttemptRecord,
    DecisionAffinity,
    DecisionEstimate,
    DecisionPreference,
    HistoryRecord,
    NewTask,
    ProviderEventRecord,
    ProviderRecord,
    RouteDecision,
    RunRecord,
    RunStatus,
    TaskOutcome,
    TaskState,
    TaskStatus,
    UsagePoint,
)
from ledger.store import TERMINAL_TASK_STATUSES, Ledger, RunInProgress, new_run_id
from ledger.writer import LedgerWriter

__all__ = [
    "TERMINAL_TASK_STATUSES",
    "AttemptRecord",
    "DecisionAffinity",
    "DecisionEstimate",
    "DecisionPreference",
    "HistoryRecord",
    "Ledger",
    "LedgerNotFound",
    "LedgerUnavailable",
    "LedgerUnreadable",
    "LedgerWriter",
    "NewTask",
    "ProviderEvent",
    "ProviderEventRecord",
    "ProviderRecord",
    "ProviderUsage",
    "RouteDecision",
    "RunInProgress",
    "RunRecord",
    "RunStatus",
    "TaskOutcome",
    "TaskState",
    "TaskStatus",
    "UsagePoint",
    "count_failovers",
    "count_rotations",
    "create_ledger_engine",
    "data_dir",
    "default_database_url",
    "follows_failure",
    "is_failover",
    "is_rotation",
    "migrate",
    "move_kind",
    "new_run_id",
    "open_existing_ledger",
    "open_ledger",
    "read_failure",
]
