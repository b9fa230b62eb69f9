"""Where the recorded usage (analytics) meets routing's config and engine, above both: the report's inputs from a
providers file, and the what-if replay of the recorded workload under another config.

Imports `analytics` (so pandas), `routing`, `ledger` and `providers`; the CLI imports it only in the commands
that use it.
"""

from planning.replay import SimulatedProvider, load_workload, simulate
from planning.report_settings import report_settings

__all__ = ["SimulatedProvider", "load_workload", "report_settings", "simulate"]
