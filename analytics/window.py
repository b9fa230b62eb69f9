"""The period a report covers: `--since/--until` values (durations or ISO dates) resolved to UTC instants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from providers import utc_now

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """[since, until): both UTC-aware; `until` is exclusive so consecutive daily reports never double-count."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() != timedelta(0):
                raise ValueError(f"{name} must be a UTC-aware datetime, got {value!r}")
        if self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


def parse_duration(text: str) -> timedelta | None:
    """`7d`, `12h`, `30m`, `45s`, `2w` (decimals allowed) -> timedelta; None if `text` is not a duration.

    Raises ValueError for a duration longer than Python's dates can hold (about 2.7 million years).
    """
    match = _DURATION.match(text)
    if match is None:
        return None
    try:
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
    except OverflowError:
        raise ValueError(f"{text.strip()!r} is too long a duration") from None


def _before(now: datetime, duration: timedelta, text: str, option: str) -> datetime:
    try:
        return now - duration
    except OverflowError:
        raise ValueError(
            f"{option}: {text.strip()!r} reaches back before the year 1; give a shorter duration or an ISO date"
        ) from None


def parse_instant(text: str, *, now: datetime, option: str = "--since") -> datetime:
    """A duration (that long before `now`), `now`, `today` (UTC midnight) or an ISO date/datetime (naive = UTC).

    Raises ValueError naming `option` and the accepted forms.
    """
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    if duration is not None:
        return _before(now, duration, text, option)
    raw = text.strip()
    if raw.lower() == "now":
        return now
    if raw.lower() == "today":
        # Lets a schedule say "the last full UTC day": since=1d, until=today.
        return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        if len(raw) == 10 and raw[4] == "-":
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        # fromisoformat accepts "Z" from Python 3.11 on, and offsets such as +02:00.
        value = datetime.fromisoformat(raw)
    except (ValueError, IndexError):
        raise ValueError(
            f"{option}: {text!r} is neither a duration (e.g. 7d, 12h, 30m) nor an ISO date or datetime "
            "(e.g. 2026-11-25, 2026-11-25T06:00, 2026-11-25T06:00+02:00), `today` or `now`"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def report_window(since: str, until: str | None = None, *, now: datetime | None = None) -> ReportWindow:
    """Resolve `--since`/`--until`; a duration in `since` counts back from `until` (default: now)."""
    now = (now or utc_now()).astimezone(UTC)
    end = parse_instant(until, now=now, option="--until") if until else now
    start = parse_instant(since, now=end, option="--since")
    if start >= end:
        raise ValueError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return ReportWindow(start, end)
