"""What `config repair`, `config migrate` and `init` changed, kept in the data dir so `config rollback` can put
every file they wrote back exactly as it was: the bytes, the mode, or its absence.

Layout: `<data dir>/config-history/<NNNN>-<action>/` holds `change.json` (what was written, when) and, for each
file that existed before, `before-<i>` with its bytes. A rolled-back change gets a `rolled-back` marker and is
not rolled back twice; the next rollback takes the change before it.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ledger import data_dir

HISTORY_DIR = "config-history"
_ROLLED_BACK = "rolled-back"
_RECORD = "change.json"


class FileBefore(BaseModel):
    """One file a change wrote, as it was before."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str  # absolute
    existed: bool
    mode: int | None = None  # permission bits, when it existed
    saved_as: str | None = None  # the copy's name in the change's folder


class Change(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    action: str  # repair | migrate | init
    at: datetime
    summary: str
    files: list[FileBefore]


def history_dir() -> Path:
    return data_dir() / HISTORY_DIR


def _folders() -> list[Path]:
    root = history_dir()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.split("-")[0].isdigit()), key=_number)


def _number(folder: Path) -> int:
    return int(folder.name.split("-")[0])


def record_change(action: str, summary: str, paths: list[Path]) -> Change:
    """Save `paths` as they are now (before the caller writes them); call it before writing anything."""
    folders = _folders()
    number = _number(folders[-1]) + 1 if folders else 1
    folder = history_dir() / f"{number:04d}-{action}"
    folder.mkdir(parents=True, exist_ok=False)
    folder.chmod(0o700)  # the copies may be env files with keys in them
    files = []
    for index, path in enumerate(paths):
        path = path.expanduser().absolute()
        if path.exists():
            copy = folder / f"before-{index}"
            copy.write_bytes(path.read_bytes())
            copy.chmod(0o600)
            files.append(
                FileBefore(path=str(path), existed=True, mode=stat.S_IMODE(path.stat().st_mode), saved_as=copy.name)
            )
        else:
            files.append(FileBefore(path=str(path), existed=False))
    change = Change(number=number, action=action, at=datetime.now(UTC), summary=summary, files=files)
    (folder / _RECORD).write_text(change.model_dump_json(indent=2), encoding="utf-8")
    return change


def changes() -> list[tuple[Change, bool]]:
    """Every recorded change, oldest first, and whether it was rolled back."""
    found = []
    for folder in _folders():
        record = folder / _RECORD
        if record.is_file():
            found.append(
                (Change.model_validate_json(record.read_text(encoding="utf-8")), (folder / _ROLLED_BACK).exists())
            )
    return found


class NothingToRollBack(Exception):
    pass


def rollback(path: Path | None = None) -> Change:
    """Undo the newest change not yet rolled back (touching `path`, if given): every file it wrote gets its old
    bytes and mode back, or is removed if it did not exist."""
    wanted = str(path.expanduser().absolute()) if path is not None else None
    for folder in reversed(_folders()):
        record = folder / _RECORD
        if not record.is_file() or (folder / _ROLLED_BACK).exists():
            continue
        change = Change.model_validate_json(record.read_text(encoding="utf-8"))
        if wanted is not None and wanted not in {f.path for f in change.files}:
            continue
        for before in change.files:
            target = Path(before.path)
            if before.existed and before.saved_as is not None:
                data = (folder / before.saved_as).read_bytes()
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_exact(target, data, before.mode)
            elif target.exists():
                target.unlink()
        (folder / _ROLLED_BACK).write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
        return change
    where = f" of {wanted}" if wanted else ""
    raise NothingToRollBack(f"no change{where} to roll back in {history_dir()}")


def _write_exact(target: Path, data: bytes, mode: int | None) -> None:
    """Replace `target` with `data` atomically (a temporary file renamed over it), with `mode`."""
    temporary = target.with_name(f".{target.name}.rollback")
    temporary.write_bytes(data)
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, target)


__all__ = ["Change", "FileBefore", "NothingToRollBack", "changes", "history_dir", "record_change", "rollback"]
