"""Setup and configuration tools (issue 17): validating a providers file (every problem at once, with file, line,
field and a fix), repairing what is safe, migrating older single-agent setups, rolling a migration back,
importing past usage, and detecting what a machine has for `switchboard init`.

Imports `providers`, `ledger` and `routing` (the models that read a providers file are the source of truth for
which keys exist); the CLI sits on top and hands in what only it may know, such as a Prefect-aware secret resolver.
"""

from configtools.environment import CREDENTIALS_FILE, default_config_dir, environment_problems, has_login
from configtools.problems import ENVIRONMENT_KINDS, Fix, Problem, ProblemKind, field_name
from configtools.schema import check_document, rate
from configtools.similar import close_matches, did_you_mean, edit_distance
from configtools.source import Source, read_source
from configtools.validate import Validation, validate_file

__all__ = [
    "CREDENTIALS_FILE",
    "ENVIRONMENT_KINDS",
    "Fix",
    "Problem",
    "ProblemKind",
    "Source",
    "Validation",
    "check_document",
    "close_matches",
    "default_config_dir",
    "did_you_mean",
    "edit_distance",
    "environment_problems",
    "field_name",
    "has_login",
    "rate",
    "read_source",
    "validate_file",
]
