"""--since/--until: durations and ISO dates resolve to UTC instants; bad values say what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics import ReportWindow, parse_duration, parse_instant, report_window

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 3D ", timedelta(days=3)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_instant(text, now=NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),  # a date is its UTC midnight
        ("2026-11-20T06:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),  # naive means UTC
        ("2026-11-20 06:00:30", datetime(2026, 11, 20, 6, 0, 30, tzinfo=UTC)),
        ("2026-11-20T06:00:00Z", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        ("2026-11-20T06:00:00+02:00", datetime(2026, 11, 20, 4, tzinfo=UTC)),  # an offset is converted
        ("2026-11-20T01:00:00-05:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),
    ],
)
def test_iso_values_are_utc(text: str, expected: datetime) -> None:
    value = parse_instant(text, now=NOW)
    assert value == expected
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "7", "7x", "2026-13-01", "2026-11-20T25:00", "", "-3d"])
def test_invalid_values_name_the_option_and_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"--until: .* neither a duration .* nor an ISO date"):
        parse_instant(text, now=NOW, option="--until")


def test_today_and_now() -> None:
    assert parse_instant("today", now=NOW) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_instant("now", now=NOW) == NOW
    # The daily schedule's window: the last full UTC day.
    window = report_window("1d", "today", now=NOW)
    assert (window.since, window.until) == (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))


def test_window_counts_since_back_from_until() -> None:
    window = report_window("1d", "2026-11-20", now=NOW)
    assert window == ReportWindow(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    assert report_window("7d", now=NOW).until == NOW
    assert report_window("7d", now=NOW).seconds == 7 * 86400


def test_since_must_be_before_until() -> None:
    with pytest.raises(ValueError, match="must be before"):
        report_window("2026-11-21", "2026-11-20", now=NOW)


def test_window_rejects_naive_or_non_utc_datetimes() -> None:
    with pytest.raises(ValueError, match="UTC-aware"):
        ReportWindow(datetime(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC))
