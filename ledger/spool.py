"""The local spool: ledger rows that could not be written (the database went away, a row was refused) wait in a
file under the data dir until they can be, so nothing paid is dropped.

One JSON-lines file per writer, `<data dir>/spool/<key>-<pid>-<token>.jsonl`, where `<key>` is a hash of the
ledger URL: rows are only ever replayed into the ledger they were meant for. Each line is an attempt row or a
task's final state, written and fsynced before the caller is told the row is safe. JSON keeps every string
exactly (a lone surrogate is written as `\\ud83d`, a NUL as `\\u0000`).

Replay (`replay_spool`, at the next start of anything that opens the ledger, and by a writer whose database
came back) claims a file by renaming it, writes its rows (attempts already stored, by idempotency key, are
skipped; a task already `completed` is never set back), and deletes it; a file that cannot be replayed yet (the
database out of reach) is put back for the next time. A row the database itself refuses (a value no column
takes, a constraint) does not hold up the others: the file's rows are then written one by one, and the file keeps
only the refused ones, with a warning naming why, for the next start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ledger.db import data_dir, out_of_reach, short_error, shown_url
from ledger.records import AttemptRecord, TaskOutcome
from ledger.store import insert_attempts, update_outcomes_unless_completed

log = logging.getLogger(__name__)

SpoolItem = AttemptRecord | tuple[str, TaskOutcome]
# Opens a transaction and gives its connection (`engine.begin`).
Begin = Callable[[], AbstractContextManager[Connection]]
_CLAIMED = ".replaying"


def spool_dir() -> Path:
    return data_dir() / "spool"


def spool_key(url: str) -> str:
    """The ledger's key: a hash of its URL (the file name must not carry its password)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SpoolReport:
    """What a replay wrote back: rows, the runs they belong to, and the files they came from."""

    rows: int
    runs: tuple[str, ...]
    left: int  # rows still waiting (their files could not be replayed yet, or the database refused them)
    refused: tuple[str, ...] = ()  # why the database refused rows, one reason each

    def line(self, url: str) -> str:
        runs = ", ".join(self.runs)
        text = f"warning: wrote {self.rows} spooled row(s) to the ledger at {shown_url(url)} (run {runs})"
        if self.refused:
            text += f"; it refused {self.left} ({'; '.join(self.refused)}), kept in {spool_dir()} for the next start"
        elif self.left:
            text += f"; {self.left} still waiting"
        return text


class Spool:
    """This process's spool file for one ledger; created on first use."""

    def __init__(self, url: str, directory: Path | None = None) -> None:
        self.url = url
        self._dir = directory or spool_dir()
        self.path = self._dir / f"{spool_key(url)}-{os.getpid()}-{secrets.token_hex(3)}.jsonl"
        self._lock = threading.Lock()
        self.rows = 0  # written by this spool and not yet replayed

    def add(self, items: Iterable[SpoolItem]) -> int:
        """Append rows and fsync; returns how many. Raises OSError when the file cannot be written."""
        lines = [json.dumps(_encode(item)) + "\n" for item in items]
        if not lines:
            return 0
        with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                header = {"kind": "header", "ledger": shown_url(self.url)}  # for people; never the password
                lines.insert(0, json.dumps(header) + "\n")
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
            written = sum(1 for line in lines if '"kind": "header"' not in line)
            self.rows += written
            return written

    def replay(self, begin: Begin) -> int:
        """Write this spool's rows back (the database is answering again); returns how many. Rows the database
        refuses stay in the file for the next start (this process does not try them again); raises when the
        database is out of reach (the file is kept whole)."""
        with self._lock:
            if self.rows == 0 or not self.path.exists():
                return 0
            items = read_items(self.path)
            written, refused = write_salvaging(begin, items)
            if refused:
                _keep_only(self.path, self.path, self.url, refused)
                _warn_refused(self.url, self.path, refused)
            else:
                self.path.unlink()
            self.rows = 0
            return written


def pending_rows(url: str, run_id: str | None = None, directory: Path | None = None) -> int:
    """How many rows for the ledger at `url` (of `run_id`, if given) wait in spool files."""
    return len(spooled_items(url, run_id, directory))


def spooled_items(url: str, run_id: str | None = None, directory: Path | None = None) -> list[SpoolItem]:
    """The rows for the ledger at `url` (of `run_id`, if given) waiting in spool files, file by file in order."""
    found: list[SpoolItem] = []
    for path in _files(url, directory or spool_dir(), claimed=True):
        try:
            items = read_items(path)
        except OSError:
            continue
        found.extend(item for item in items if run_id is None or _run_of(item) == run_id)
    return found


def replay_spool(conn_factory: Any, url: str, directory: Path | None = None) -> SpoolReport | None:
    """Replay every spool file of the ledger at `url` left by processes that are gone; None when there was none.

    `conn_factory()` gives a connection context (`engine.begin`). Files of live processes (still writing) are
    left to them."""
    base = directory or spool_dir()
    rows, runs, left, reasons = 0, set[str](), 0, dict[str, None]()
    found = False
    for path in _files(url, base, claimed=False):
        if _owner_alive(path):
            continue
        found = True
        claimed = path.with_name(path.name + _CLAIMED + f"-{os.getpid()}")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another process claimed it first
        try:
            items = read_items(claimed)
            written, refused = write_salvaging(conn_factory, items)
        except Exception as exc:
            claimed.rename(path)  # still the ledger's: next time
            left += len(read_items(path))
            log.warning("could not replay %s into %s yet: %s", path, shown_url(url), type(exc).__name__)
            continue
        if refused:  # only they wait, under the file's own name; the report's line says why
            _keep_only(claimed, path, url, refused)
            left += len(refused)
            reasons.update(dict.fromkeys(r.reason for r in refused))
        else:
            claimed.unlink()
        rows += written
        kept = {id(r.item) for r in refused}
        runs.update(_run_of(i) for i in items if id(i) not in kept)
    if not found:
        return None
    return SpoolReport(rows=rows, runs=tuple(sorted(runs)), left=left, refused=tuple(reasons))


@dataclass(frozen=True)
class Refused:
    """A spooled row the database refused, and why (one line)."""

    item: SpoolItem
    reason: str


def write_salvaging(begin: Begin, items: list[SpoolItem]) -> tuple[int, list[Refused]]:
    """Write `items` in one transaction; when the database refuses one of them, each in a transaction of its own,
    so the others are written. Returns how many were written and the refused rows. Raises when the database is
    out of reach (nothing is lost: rows written before are skipped or kept as they are when written again)."""
    try:
        with begin() as conn:
            write_items(conn, items)
        return len(items), []
    except Exception as exc:
        if out_of_reach(exc):
            raise
    written, refused = 0, []
    attempts = [i for i in items if isinstance(i, AttemptRecord)]
    for item in attempts + [i for i in items if not isinstance(i, AttemptRecord)]:  # as write_items orders them
        try:
            with begin() as conn:
                write_items(conn, [item])
        except Exception as exc:
            if out_of_reach(exc):
                raise
            refused.append(Refused(item, short_error(exc)))
            continue
        written += 1
    return written, refused


def _keep_only(source: Path, target: Path, url: str, refused: list[Refused]) -> None:
    """Rewrite `source`'s rows as `target` holding only the refused ones (written aside, then renamed in)."""
    aside = target.with_name(target.name + f".keeping-{os.getpid()}")
    header = {"kind": "header", "ledger": shown_url(url)}
    lines = [json.dumps(header) + "\n", *(json.dumps(_encode(r.item)) + "\n" for r in refused)]
    with open(aside, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    aside.replace(target)
    if source != target:
        source.unlink(missing_ok=True)


def _warn_refused(url: str, path: Path, refused: list[Refused]) -> None:
    keys = ", ".join(_key_of(r.item) for r in refused[:5]) + (", …" if len(refused) > 5 else "")
    reasons = "; ".join(dict.fromkeys(r.reason for r in refused))
    log.warning(
        "the ledger at %s refused %d spooled row(s) (%s: %s); the others were written, these stay in %s for the next "
        "start",
        shown_url(url), len(refused), keys, reasons, path,
    )  # fmt: skip


def _key_of(item: SpoolItem) -> str:
    if isinstance(item, AttemptRecord):
        return f"attempt {item.idempotency_key}"
    return f"final state of {item[0]}:{item[1].task_id}"


def write_items(conn: Connection, items: list[SpoolItem]) -> None:
    """Write rows in order: attempts (known ones skipped), then outcomes (never undoing a completion)."""
    attempts = [i for i in items if isinstance(i, AttemptRecord)]
    outcomes = [i for i in items if not isinstance(i, AttemptRecord)]
    insert_attempts(conn, attempts)
    update_outcomes_unless_completed(conn, outcomes)


def read_items(path: Path) -> list[SpoolItem]:
    items: list[SpoolItem] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # a line cut by a crash mid-write was never acknowledged: nothing was promised for it
            data = json.loads(line)
            if data["kind"] == "attempt":
                items.append(AttemptRecord.model_validate(data["row"]))
            elif data["kind"] == "outcome":
                items.append((data["run_id"], TaskOutcome.model_validate(data["row"])))
    return items


def _encode(item: SpoolItem) -> dict[str, Any]:
    if isinstance(item, AttemptRecord):
        return {"kind": "attempt", "row": item.model_dump(mode="json")}
    run_id, outcome = item
    return {"kind": "outcome", "run_id": run_id, "row": outcome.model_dump(mode="json")}


def _run_of(item: SpoolItem) -> str:
    return item.run_id if isinstance(item, AttemptRecord) else item[0]


def _files(url: str, base: Path, *, claimed: bool) -> list[Path]:
    if not base.is_dir():
        return []
    pattern = f"{spool_key(url)}-*.jsonl" + ("*" if claimed else "")
    return sorted(base.glob(pattern))


def _owner_alive(path: Path) -> bool:
    """Whether the process that writes `path` still runs (its own writer replays it, or the next start does)."""
    try:
        pid = int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False  # this process's earlier writer, closed: ours to replay
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = [
    "Begin",
    "Refused",
    "Spool",
    "SpoolItem",
    "SpoolReport",
    "pending_rows",
    "replay_spool",
    "spool_dir",
    "spool_key",
    "spooled_items",
    "write_items",
    "write_salvaging",
]
