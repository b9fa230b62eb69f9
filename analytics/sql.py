"""SQL building blocks that differ between the ledger's two databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from sqlalchemy import ColumnElement, String, func, literal_column

Unit = Literal["day", "hour", "minute", "second"]

# SQLite stores the ledger's UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text (ledger/models.py converts to
# UTC before binding), so a prefix of the text is the UTC bucket: no per-row date arithmetic, and it groups fast.
_SQLITE_PREFIX = {"day": 10, "hour": 13, "minute": 16, "second": 19}
_PG_FORMAT = {
    "day": "YYYY-MM-DD",
    "hour": "YYYY-MM-DD HH24",
    "minute": "YYYY-MM-DD HH24:MI",
    "second": "YYYY-MM-DD HH24:MI:SS",
}
_PY_FORMAT = {"day": "%Y-%m-%d", "hour": "%Y-%m-%d %H", "minute": "%Y-%m-%d %H:%M", "second": "%Y-%m-%d %H:%M:%S"}
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def check_dialect(dialect: str) -> None:
    if dialect not in SUPPORTED_DIALECTS:
        raise NotImplementedError(f"reports support SQLite and PostgreSQL ledgers, not {dialect}")


def utc_bucket(column: Any, unit: Unit, dialect: str) -> ColumnElement[str]:
    """The UTC calendar bucket (day, hour, minute, second) a timestamp falls in, as sortable text."""
    check_dialect(dialect)
    if dialect == "sqlite":
        return func.substr(column, 1, _SQLITE_PREFIX[unit], type_=String)
    # AT TIME ZONE 'UTC' turns timestamptz into UTC wall time whatever the session's TimeZone is.
    return func.to_char(column.op("AT TIME ZONE")(literal_column("'UTC'")), _PG_FORMAT[unit], type_=String)


def parse_bucket(values: Any, unit: Unit) -> pd.Series:
    """Bucket text from `utc_bucket` -> UTC-aware timestamps (the bucket's start)."""
    return pd.to_datetime(pd.Series(values, dtype="object"), format=_PY_FORMAT[unit], utc=True)
