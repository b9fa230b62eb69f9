"""Reading a SQLite database whole, to check that no secret value was written anywhere in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def database_text(path: Path) -> str:
    """Every value of every row of every table, as text."""
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
    parts = []
    for table in tables:
        for row in db.execute(f'select * from "{table}"'):
            parts.extend(str(v) for v in row)
    db.close()
    return "\n".join(parts)


def database_bytes(path: Path) -> str:
    """The database files as bytes (WAL included): catches anything the row dump could miss."""
    return "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*") if p.is_file())
