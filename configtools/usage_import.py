"""Past usage from a CSV export into the ledger (`config migrate OLD --usage FILE.csv`), so reports, quota
forecasts and what-if replays start with the history the older setup had.

Columns (a header row; names are case-insensitive, in any order):

    timestamp      required  ISO 8601 (`2026-11-30T14:05:00Z`, `2026-11-30 14:05:00`); without a zone: UTC
    subscription   one of    the subscription (or account) the call used
    key            these     or the API key it used: never stored; mapped to the subscription `migrate` gave
                             that key, else recorded as `key-<first 8 hex of its SHA-256>`
    task_type      required
    tokens_in      required  whole number >= 0 (also: input_tokens, tokens_input)
    tokens_out     required  whole number >= 0 (also: output_tokens, tokens_output)
    cost_usd       required  number >= 0 (also: cost)
    provider       optional  default: the provider `migrate` gave that key, else --provider (default `imported`)
    model, team, outcome (default `success`, one of the ledger's outcomes), latency_ms: optional

Every row becomes one attempt of the standing run `imported-usage`, keyed by its content: importing the same
file again (or an export that repeats rows) adds nothing twice. A bad row is reported by its line and skipped;
the others are imported.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ledger import AttemptRecord, Ledger, RunStatus
from providers import OUTCOMES, TokenUsage

IMPORT_RUN = "imported-usage"
_ALIASES = {
    "tokens_in": ("tokens_in", "input_tokens", "tokens_input", "prompt_tokens"),
    "tokens_out": ("tokens_out", "output_tokens", "tokens_output", "completion_tokens"),
    "cost_usd": ("cost_usd", "cost"),
    "timestamp": ("timestamp", "time", "date", "started_at"),
    "task_type": ("task_type", "type"),
    "subscription": ("subscription", "account"),
    "key": ("key", "api_key"),
}
_REQUIRED = ("timestamp", "task_type", "tokens_in", "tokens_out", "cost_usd")


@dataclass(frozen=True)
class BadRow:
    line: int
    column: str
    reason: str

    def render(self, path: Path) -> str:
        return f"{path}:{self.line}: {self.column}: {self.reason}"


@dataclass
class UsageImport:
    rows: int = 0
    imported: int = 0
    already: int = 0  # rows the ledger had from an earlier import
    bad: list[BadRow] = field(default_factory=list)


class UsageFileError(Exception):
    """The CSV cannot be used at all (missing, no header, a required column absent); nothing was imported."""


def import_usage(
    path: Path,
    ledger: Ledger,
    *,
    provider: str = "imported",
    key_places: dict[str, tuple[str, str | None]] | None = None,
) -> UsageImport:
    places = key_places or {}
    try:
        handle = path.expanduser().open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageFileError(f"{path}: cannot read it: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise UsageFileError(f"{path}: empty (a header row is needed; see docs/setup.md)") from None
        except UnicodeDecodeError:
            raise UsageFileError(f"{path}: not UTF-8 text") from None
        columns = _columns(path, header)
        result = UsageImport()
        records: list[AttemptRecord] = []
        seen: Counter[str] = Counter()
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                result.rows += 1
                line = reader.line_num
                parsed = _record(row, columns, line, provider, places, result)
                if parsed is None:
                    continue
                # The row's content as written (not as mapped), so an import with or without `migrate`'s key map,
                # or of an export with its columns reordered, is recognised as the same rows.
                identity = "\x1f".join(_cell(row, columns, name) for name in sorted(columns))
                digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
                seen[digest] += 1  # identical rows are distinct calls: the n-th of them gets its own key
                records.append(parsed.model_copy(update={"task_id": f"csv-{digest}-{seen[digest]}"}))
        except UnicodeDecodeError:
            raise UsageFileError(f"{path}: not UTF-8 text (after line {reader.line_num})") from None
    ledger.open_standing_run(IMPORT_RUN, batch_name="imported usage")
    stored = {a.task_id for a in ledger.attempts(IMPORT_RUN)}
    fresh = [r for r in records if r.task_id not in stored]
    result.already = len(records) - len(fresh)
    for start in range(0, len(fresh), 1000):
        ledger.record_attempts(fresh[start : start + 1000])
    result.imported = len(fresh)
    ledger.finish_run(IMPORT_RUN, RunStatus.COMPLETED)
    return result


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[name] = lowered.index(alias)
                break
    for name in ("provider", "model", "team", "outcome", "latency_ms"):
        if name in lowered:
            found[name] = lowered.index(name)
    missing = [name for name in _REQUIRED if name not in found]
    if "subscription" not in found and "key" not in found:
        missing.append("subscription or key")
    if missing:
        raise UsageFileError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}"
        )
    return found


def _record(
    row: list[str],
    columns: dict[str, int],
    line: int,
    provider: str,
    places: dict[str, tuple[str, str | None]],
    result: UsageImport,
) -> AttemptRecord | None:
    def cell(name: str) -> str:
        return _cell(row, columns, name)

    def bad(column: str, reason: str) -> None:
        result.bad.append(BadRow(line, column, reason))

    when = _timestamp(cell("timestamp"))
    if when is None:
        bad("timestamp", f"{cell('timestamp')!r} is not an ISO 8601 time (e.g. 2026-11-30T14:05:00Z)")
        return None
    numbers: dict[str, float] = {}
    for name in ("tokens_in", "tokens_out", "cost_usd", "latency_ms"):
        text = cell(name)
        if not text and name == "latency_ms":
            numbers[name] = 0.0
            continue
        try:
            numbers[name] = float(text)
        except ValueError:
            bad(name, f"{text!r} is not a number")
            return None
        if numbers[name] < 0 or (name.startswith("tokens") and numbers[name] != int(numbers[name])):
            bad(name, f"{text!r} must be a whole number >= 0" if name.startswith("tokens") else f"{text!r} < 0")
            return None
    task_type = cell("task_type")
    if not task_type:
        bad("task_type", "empty")
        return None
    outcome = cell("outcome") or "success"
    if outcome not in OUTCOMES:
        bad("outcome", f"{outcome!r} is not one of {', '.join(sorted(OUTCOMES))}")
        return None
    key = cell("key")
    subscription = cell("subscription") or None
    owner = provider
    if key:
        placed = places.get(key)
        if placed is not None:
            owner, subscription = placed[0], placed[1] or subscription
        else:
            subscription = subscription or "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    if subscription is None and not key:
        bad("subscription", "empty (give the subscription or the key)")
        return None
    return AttemptRecord(
        run_id=IMPORT_RUN,
        task_id="",
        provider_id=cell("provider") or owner,
        task_type=task_type,
        attempt=1,
        outcome=outcome,
        started_at=when,
        finished_at=when,
        subscription=subscription,
        model=cell("model") or None,
        team=cell("team") or None,
        usage=TokenUsage(input=int(numbers["tokens_in"]), output=int(numbers["tokens_out"])),
        cost_usd=numbers["cost_usd"],
        latency_ms=numbers["latency_ms"],
    )


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return row[index].strip() if index is not None and index < len(row) else ""


def _timestamp(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


__all__ = ["IMPORT_RUN", "BadRow", "UsageFileError", "UsageImport", "import_usage"]
