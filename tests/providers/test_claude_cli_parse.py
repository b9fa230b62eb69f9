"""Reading Claude Code CLI output: usage-limit messages and reset times, result objects, error mapping."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from providers.claude_cli_parse import (
    DEFAULT_USAGE_LIMIT_RESET,
    cost_from,
    detect_usage_limit,
    error_for_result,
    error_without_result,
    machine_zone,
    model_from,
    parse_output,
    parse_reset_time,
    result_failed,
    usage_from,
)
from providers.errors import BadRequest, QuotaExhausted, RateLimited, Unavailable
from providers.models import TokenUsage

# Monday 2 March 2026, 15:00 UTC = 10:00 in New York (EST) = 10:00 at Etc/GMT+5.
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude AI usage limit reached|1755806400", datetime(2025, 8, 21, 20, 0, tzinfo=UTC)),
        ("Claude AI usage limit reached|1755806400000", datetime(2025, 8, 21, 20, 0, tzinfo=UTC)),
        ("You've hit your limit · resets 10pm (America/New_York)", datetime(2026, 3, 3, 3, 0, tzinfo=UTC)),
        (
            "You\u2019ve hit your session limit · resets 9:30am (America/New_York)",
            datetime(2026, 3, 3, 14, 30, tzinfo=UTC),
        ),
        ("You've hit your weekly limit · resets Oct 12, 4am (UTC)", datetime(2026, 10, 12, 4, 0, tzinfo=UTC)),
        ("5-hour limit reached ∙ resets 1am (UTC)", datetime(2026, 3, 3, 1, 0, tzinfo=UTC)),
        (
            "Claude usage limit reached. Your limit will reset at 1pm (Etc/GMT+5).",
            datetime(2026, 3, 2, 18, 0, tzinfo=UTC),
        ),
    ],
)
def test_usage_limit_messages_give_their_reset_time_in_utc(text: str, expected: datetime) -> None:
    assert detect_usage_limit(text, NOW) == expected


def test_a_time_without_a_zone_is_read_in_the_local_zone() -> None:
    assert detect_usage_limit("5-hour limit reached ∙ resets 1am", NOW, local_tz=NEW_YORK) == datetime(
        2026, 3, 3, 6, 0, tzinfo=UTC
    )


def test_a_recognised_limit_without_a_readable_time_resets_in_an_hour() -> None:
    assert detect_usage_limit("You've hit your limit", NOW) == NOW + DEFAULT_USAGE_LIMIT_RESET
    assert detect_usage_limit("You've hit your limit · resets soon (Mars/Olympus)", NOW) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "text",
    ["Rate limit reached for requests", "Here is how usage limits work in our API.", "All tests pass.", ""],
)
def test_other_text_is_not_a_usage_limit(text: str) -> None:
    assert detect_usage_limit(text, NOW) is None


def test_reset_times_roll_to_the_next_occurrence() -> None:
    assert parse_reset_time("9am", "America/New_York", NOW) == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # tomorrow
    assert parse_reset_time("11am", "America/New_York", NOW) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # today
    assert parse_reset_time("Mar 1, 4am", "UTC", NOW) == datetime(2027, 3, 1, 4, 0, tzinfo=UTC)  # next year
    assert parse_reset_time("12am", "UTC", NOW) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert parse_reset_time("12pm", "UTC", NOW) == datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert parse_reset_time("17:30", "UTC", NOW) == datetime(2026, 3, 2, 17, 30, tzinfo=UTC)


def test_reset_times_keep_the_wall_clock_across_a_dst_change() -> None:
    # New York springs forward on 8 March 2026: 3am the next day is UTC-4, not UTC-5.
    before = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)  # 23:00 EST on the 7th
    assert parse_reset_time("3am", "America/New_York", before) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


@pytest.fixture
def machine_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's zone set the way a user sets it: TZ (the C library re-reads it after tzset)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_time_without_a_zone_is_read_in_the_machines_zone_with_its_dst_rules(machine_in_new_york: None) -> None:
    # 01:30 EST on 8 March 2026; at 2am New York springs forward, so "9am" today is 9am EDT (UTC-4), not
    # the UTC-5 offset in force right now.
    before_the_change = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert detect_usage_limit("5-hour limit reached ∙ resets 9am", before_the_change) == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
    assert machine_zone().utcoffset(datetime(2026, 7, 1)) == timedelta(hours=-4)


@pytest.mark.parametrize("when", ["25pm", "13am", "10:75", "Foo 12, 4am", "soon"])
def test_impossible_times_do_not_parse(when: str) -> None:
    assert parse_reset_time(when, "UTC", NOW) is None


# --- output and result objects --------------------------------------------------------------------------


def _result(**kw: Any) -> dict[str, Any]:
    base = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1, "duration_api_ms": 1}
    return {**base, "num_turns": 1, "session_id": "s", **kw}


def test_stream_json_keeps_the_result_rate_limits_and_init_model_and_skips_stray_lines() -> None:
    lines = [
        {"type": "system", "subtype": "init", "model": "claude-haiku-4-5"},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}},
        _result(result="ok"),
    ]
    stdout = "warning: something\n" + "\n".join(json.dumps(x) for x in lines) + "\n\n"
    out = parse_output(stdout)
    assert out.result is not None and out.result["result"] == "ok"
    assert out.rate_limits == [{"status": "allowed"}]
    assert out.model == "claude-haiku-4-5"
    assert out.non_json_lines == 1


def test_json_output_may_be_one_object_or_an_array_of_messages() -> None:
    assert parse_output(json.dumps(_result(result="one"))).result == _result(result="one")
    array = [{"type": "system", "subtype": "init", "model": "m"}, _result(result="last")]
    assert parse_output(json.dumps(array)).result == _result(result="last")


def test_garbage_has_no_result() -> None:
    out = parse_output("<html>502</html>\nnot json")
    assert out.result is None and out.non_json_lines == 2
    assert parse_output("").result is None


@pytest.mark.parametrize(
    ("fields", "failed"),
    [
        ({}, False),
        ({"is_error": True}, True),
        ({"api_error_status": 500}, True),
        ({"terminal_reason": "max_turns"}, True),
        ({"terminal_reason": "completed"}, False),
        ({"subtype": "error_during_execution"}, True),
        ({"result": "Claude AI usage limit reached|1755806400"}, True),
        ({"result": "A long answer that mentions a usage limit reached once. " * 5}, False),
    ],
)
def test_failure_is_decided_from_the_fields_not_the_subtype(fields: dict[str, Any], failed: bool) -> None:
    assert result_failed(_result(**fields)) is failed


def test_usage_model_and_cost_readers() -> None:
    model_usage = {
        "claude-haiku-4-5": {"inputTokens": 5, "outputTokens": 1, "costUSD": 0.001},
        "claude-sonnet-4-5": {"inputTokens": 10, "outputTokens": 20, "cacheReadInputTokens": 3, "costUSD": 0.05},
    }
    result = _result(modelUsage=model_usage, cost_usd=0.051)
    assert model_from(result) == "claude-sonnet-4-5"
    assert usage_from(result) == TokenUsage(input=15, output=21, cache_read=3)  # summed when `usage` is absent
    assert cost_from(result) == 0.051  # the older field name
    assert cost_from(_result()) is None
    assert model_from(_result()) is None


def _error(result: dict[str, Any]) -> Any:
    return error_for_result(result, provider_id="p", subscription="s", now=NOW, redact=lambda t: t)


def test_usage_limit_wins_over_a_429_status() -> None:
    error = _error(_result(is_error=True, api_error_status=429, result="You've hit your limit · resets 10pm (UTC)"))
    assert isinstance(error, QuotaExhausted)
    assert error.reset_at == datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    assert error.retry_after_s == pytest.approx(7 * 3600)


def test_error_mapping_without_a_status_reads_the_text() -> None:
    assert isinstance(_error(_result(is_error=True, result="API Error: 429 rate_limit_error")), RateLimited)
    assert isinstance(_error(_result(is_error=True, result="Connection reset")), Unavailable)
    turns = _error(_result(subtype="error_max_turns", is_error=True, terminal_reason="max_turns", num_turns=3))
    assert isinstance(turns, BadRequest) and turns.error_type == "max_turns"


def test_credit_balance_text_is_quota_exhausted_even_with_a_400_status() -> None:
    text = "API Error: 400 Your credit balance is too low to access the Anthropic API."
    for result in (_result(is_error=True, api_error_status=400, result=text), _result(is_error=True, result=text)):
        error = _error(result)
        assert isinstance(error, QuotaExhausted) and error.error_type == "credit_balance"


KEY = "gw-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _leaked(text: str) -> list[str]:
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


def test_a_key_across_the_quoting_limit_is_redacted_before_the_text_is_cut() -> None:
    def redact(text: str) -> str:
        return text.replace(KEY, "***")

    result = _result(is_error=True, api_error_status=500, result="x" * 280 + KEY + " tail")
    error = error_for_result(result, provider_id="p", subscription="s", now=NOW, redact=redact)
    assert _leaked(str(error)) == []
    stderr = "head " + KEY + "y" * 280
    silent = error_without_result(
        parse_output(""), "", stderr, 1, provider_id="p", subscription="s", now=NOW, redact=redact
    )
    assert _leaked(str(silent)) == []


def test_quoted_error_text_is_redacted_and_bounded() -> None:
    error = error_for_result(
        _result(is_error=True, api_error_status=500, result="boom SECRET " + "x" * 1000),
        provider_id="p",
        subscription="s",
        now=NOW,
        redact=lambda t: t.replace("SECRET", "***"),
    )
    assert "SECRET" not in str(error) and "***" in str(error)
    assert len(error.message) < 400
