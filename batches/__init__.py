"""The batch core, without Prefect: the spec and its validation, what the DAG's nodes know and do, the run's
life in the ledger and which process owns it, Ctrl-C while a run's flow runs, why a run stops early
(interrupted, cancelled), the run's summary (the `--json` object) and its digest for large runs, and the runtime
that builds a run's providers, router and ledger writer.

Imports `routing`, `ledger` and `providers`; never `flows` or Prefect (`flows/` runs these nodes as Prefect
tasks and hands `execute_run` its flow).
"""

from batches.control import INTERRUPT_SIGNALS, RunFlow, RunInterrupts, execute_run, interrupt_handler, stop_engine
from batches.digest import (
    DIGEST_ABOVE,
    DigestGroup,
    ListedTask,
    RunDigest,
    digest,
    needs_digest,
    percentile,
    select_tasks,
)
from batches.following import AttemptFeed, Move
from batches.lifecycle import CANCELLED, check_same_spec, end_run, interrupt_run, start_run
from batches.lost_summary import summary_without_ledger
from batches.nodes import run_node, run_nodes
from batches.ownership import claim_renewed, owner_active, this_owner
from batches.run_state import KnownState, NodeResult
from batches.runtime import (
    BatchRuntime,
    RuntimeRef,
    close_runtime,
    lost_run_memory,
    open_runtime,
    resolve_inputs,
    resolve_strategy,
    runtime_for,
)
from batches.single import (
    API_BATCH_NAME,
    API_RUN_PREFIX,
    STOPPED,
    SingleResult,
    TaskEngine,
    TaskIdTaken,
    api_run_id,
    new_task_id,
)
from batches.spec import BatchSpec, SpecError, TaskSpec, duration_s, load_spec, parse_spec
from batches.stopping import (
    RUN_STATUS,
    STOP_GRACE_S,
    RunStop,
    StopReason,
    StopRequest,
    end_stopped_run,
    forget_stop,
    run_stop,
)
from batches.story import routing_story
from batches.summary import (
    AttemptSummary,
    RunHeader,
    RunSummary,
    RunTotals,
    TaskSummary,
    VendorBatchRef,
    run_summary,
    task_summary,
)

__all__ = [
    "API_BATCH_NAME",
    "API_RUN_PREFIX",
    "CANCELLED",
    "DIGEST_ABOVE",
    "INTERRUPT_SIGNALS",
    "RUN_STATUS",
    "STOPPED",
    "STOP_GRACE_S",
    "AttemptFeed",
    "AttemptSummary",
    "BatchRuntime",
    "BatchSpec",
    "DigestGroup",
    "KnownState",
    "ListedTask",
    "Move",
    "NodeResult",
    "RunDigest",
    "RunFlow",
    "RunHeader",
    "RunInterrupts",
    "RunStop",
    "RunSummary",
    "RunTotals",
    "RuntimeRef",
    "SingleResult",
    "SpecError",
    "StopReason",
    "StopRequest",
    "TaskEngine",
    "TaskIdTaken",
    "TaskSpec",
    "TaskSummary",
    "VendorBatchRef",
    "api_run_id",
    "check_same_spec",
    "claim_renewed",
    "close_runtime",
    "digest",
    "duration_s",
    "end_run",
    "end_stopped_run",
    "execute_run",
    "forget_stop",
    "interrupt_handler",
    "interrupt_run",
    "load_spec",
    "lost_run_memory",
    "needs_digest",
    "new_task_id",
    "open_runtime",
    "owner_active",
    "parse_spec",
    "percentile",
    "resolve_inputs",
    "resolve_strategy",
    "routing_story",
    "run_node",
    "run_nodes",
    "run_stop",
    "run_summary",
    "runtime_for",
    "select_tasks",
    "start_run",
    "stop_engine",
    "summary_without_ledger",
    "task_summary",
    "this_owner",
]
