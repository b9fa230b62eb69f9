"""Opening a ledger that cannot be used fails at once with LedgerUnavailable: the setting, the reason, a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Ledger
from ledger.db import DATABASE_URL_ENV, LedgerUnavailable, create_ledger_engine, shown_url
from tests.ports import free_port


def _cases(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    """name -> (URL, the reason the message must give, a word of its hint)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_text("this is not SQLite " * 50)
    return {
        "unknown database type": ("bogus://x", "unknown database type 'bogus'", "SQLAlchemy URL"),
        "unparsable": ("not a url", "not a database URL", "SQLAlchemy URL"),
        "driver missing": ("mysql://u:hunter22@127.0.0.1/db", "driver for 'mysql' is not installed", "postgres"),
        "async driver": ("postgresql+asyncpg://u:hunter22@127.0.0.1/db", "asyncio driver", "postgresql+psycopg"),
        "server down": (
            f"postgresql+psycopg://u:hunter22@127.0.0.1:{free_port()}/db",
            "cannot open the database: connection failed",
            "server is running",
        ),
        "folder cannot be made": (f"sqlite:///{a_file}/ledger.db", f"cannot create the folder {a_file}", "writable"),
        "not a database": (f"sqlite:///{not_a_db}", "file is not a database", "Switchboard ledger"),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown database type", "unparsable", "driver missing", "async driver", "server down", "folder cannot be made",
     "not a database"],
)  # fmt: skip
def test_each_unusable_database_names_the_setting_reason_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    url, reason, hint = _cases(tmp_path)[case]
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    with pytest.raises(LedgerUnavailable) as info:
        Ledger()
    message = str(info.value)
    assert message.startswith(f"{DATABASE_URL_ENV}=") and reason in message
    assert hint in message.split(reason, 1)[1]
    assert "hunter22" not in message and "\n" not in message
    # no driver traceback chained to it
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_a_url_passed_in_is_named_as_the_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match=r"^the ledger bogus://x: unknown database type"):
        create_ledger_engine("bogus://x")


def test_an_engine_without_migration_leaves_database_errors_to_the_caller() -> None:
    # The read-only reports open engines this way and classify SQLAlchemy's errors themselves.
    from sqlalchemy.exc import NoSuchModuleError

    with pytest.raises(NoSuchModuleError):
        create_ledger_engine("bogus://x", migrate_schema=False)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:hunter22@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("weird://u:hunter22@db:port?/x y", "weird://u:***@db:port?/x y"),  # SQLAlchemy cannot parse this one
    ],
)
def test_shown_url_masks_any_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_usable_sqlite_ledger_still_opens(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'deep' / 'er' / 'ledger.db'}")
    assert ledger.list_runs() == []
    ledger.close()
