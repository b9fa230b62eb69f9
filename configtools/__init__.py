"""Setup and configuration tools (issue 17): validating a providers file (every problem at once, with file, line,
field and a fix), repairing what is safe, migrating older single-agent setups, rolling a migration back,
importing past usage, and detecting what a machine has for `switchboard init`.

Imports `providers`, `ledger` and `routing` (the models that read a providers file are the source of truth for
which keys exist); the CLI sits on top and hands in what only it may know, such as a Prefect-aware secret resolver.
"""

from configtools.detect import KEY_VARIABLES, OLLAMA_URL, VLLM_URL, ClaudeLogin, Detected, LocalServer, detect
from configtools.edit import EditError, apply_edits, edits_for, render_value
from configtools.environment import CREDENTIALS_FILE, default_config_dir, environment_problems, has_login
from configtools.history import Change, FileBefore, NothingToRollBack, changes, history_dir, record_change, rollback
from configtools.migrate import KEYS_FILE, Migration, MigrationError, keys_file_path, load_line, read_old, write_keys
from configtools.problems import ENVIRONMENT_KINDS, Fix, Problem, ProblemKind, field_name
from configtools.repair import Repair, plan_repair, write_repair
from configtools.schema import check_document, rate
from configtools.setup_file import ProbeResult, Proposal, probe, propose, render_providers_file
from configtools.similar import close_matches, did_you_mean, edit_distance
from configtools.source import Source, parse_source, read_source
from configtools.usage_import import IMPORT_RUN, BadRow, UsageFileError, UsageImport, import_usage
from configtools.validate import Validation, validate_file

__all__ = [
    "CREDENTIALS_FILE",
    "ENVIRONMENT_KINDS",
    "IMPORT_RUN",
    "KEYS_FILE",
    "KEY_VARIABLES",
    "OLLAMA_URL",
    "VLLM_URL",
    "BadRow",
    "Change",
    "ClaudeLogin",
    "Detected",
    "EditError",
    "FileBefore",
    "Fix",
    "LocalServer",
    "Migration",
    "MigrationError",
    "NothingToRollBack",
    "ProbeResult",
    "Problem",
    "ProblemKind",
    "Proposal",
    "Repair",
    "Source",
    "UsageFileError",
    "UsageImport",
    "Validation",
    "apply_edits",
    "changes",
    "check_document",
    "close_matches",
    "default_config_dir",
    "detect",
    "did_you_mean",
    "edit_distance",
    "edits_for",
    "environment_problems",
    "field_name",
    "has_login",
    "history_dir",
    "import_usage",
    "keys_file_path",
    "load_line",
    "parse_source",
    "plan_repair",
    "probe",
    "propose",
    "rate",
    "read_old",
    "read_source",
    "record_change",
    "render_providers_file",
    "render_value",
    "rollback",
    "validate_file",
    "write_keys",
    "write_repair",
]
