"""Where the recorded usage (analytics) meets routing's config and engine, above both: the report's inputs from a
providers file, the what-if replay of the recorded workload under another config, and the standard synthetic
week (`synthetic`, `synthetic_providers`) that the outcome benchmark routes through the engine on virtual time.

Imports `analytics` (so pandas), `routing`, `ledger` and `providers`; the CLI imports it only in the commands
that use it.
"""

from planning.outcomes import StrategyOutcome, TaskRun, fixed_usd, outcome_of, route_week, run_week
from planning.replay import SimulatedProvider, load_workload, simulate
from planning.report_settings import report_settings
from planning.synthetic import (
    BATCH_DEADLINE_S,
    CRITICAL_DEADLINE_S,
    DEFAULT_TASKS,
    DEFERRABLE_TYPES,
    INCIDENT_RATES,
    TASK_PROFILES,
    WEEK_S,
    Incident,
    SyntheticTask,
    SyntheticWeek,
    synthetic_week,
)
from planning.synthetic_providers import BEHAVIOURS, PROVIDERS_DOC, WINDOW_S, WINDOW_TOKENS, SyntheticProvider
from planning.virtual_time import VirtualTimeLoop, run_virtual

__all__ = [
    "BATCH_DEADLINE_S",
    "BEHAVIOURS",
    "CRITICAL_DEADLINE_S",
    "DEFAULT_TASKS",
    "DEFERRABLE_TYPES",
    "INCIDENT_RATES",
    "PROVIDERS_DOC",
    "TASK_PROFILES",
    "WEEK_S",
    "WINDOW_S",
    "WINDOW_TOKENS",
    "Incident",
    "SimulatedProvider",
    "StrategyOutcome",
    "SyntheticProvider",
    "SyntheticTask",
    "SyntheticWeek",
    "TaskRun",
    "VirtualTimeLoop",
    "fixed_usd",
    "load_workload",
    "outcome_of",
    "report_settings",
    "route_week",
    "run_virtual",
    "run_week",
    "simulate",
    "synthetic_week",
]
