"""Reading the Claude Code CLI's output: the result object, rate-limit events, usage-limit messages.

Pure functions (no processes, no provider state) so every wire-format quirk is testable on its own. The
facts behind them are in PROVIDERS.md section 1: success is decided from `is_error`, `terminal_reason` and
`api_error_status`, never from `subtype` or the exit code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)
from providers.models import TokenUsage
from providers.redaction import shorten, tail
from providers.status_map import CREDIT_BALANCE, error_class_for_status, is_credit_balance_message

# When a usage-limit message names no reset time we can read, try the subscription again after this long.
DEFAULT_USAGE_LIMIT_RESET = timedelta(hours=1)
# Terminal reasons that mean the run did not complete, whatever `is_error` says.
_FAILED_TERMINAL_REASONS = frozenset({"max_turns", "aborted_streaming", "aborted_tools", "api_error"})
_ERROR_TEXT_LIMIT = 300
# Scrubs secret values out of any text quoted in an error message.
Redactor = Callable[[str], str]


@dataclass
class CliOutput:
    """What one CLI run printed, split into the parts the provider acts on."""

    result: dict[str, Any] | None = None
    rate_limits: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None  # from the `system` init line, when present
    non_json_lines: int = 0


def parse_output(stdout: str) -> CliOutput:
    """Parse stream-json (NDJSON) or json output (one object, or an array of messages with --verbose)."""
    out = CliOutput()
    text = stdout.strip()
    if not text:
        return out
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        _take_message(out, whole)
        return out
    if isinstance(whole, list):
        for item in whole:
            if isinstance(item, dict):
                _take_message(out, item)
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            # The CLI sometimes prints warnings on stdout; they only matter if no result follows.
            out.non_json_lines += 1
            continue
        if isinstance(message, dict):
            _take_message(out, message)
        else:
            out.non_json_lines += 1
    return out


def rate_limit_info(line: str) -> dict[str, Any] | None:
    """The `rate_limit_info` of one stream-json line if it is a `rate_limit_event`, else None."""
    if '"rate_limit_event"' not in line:  # skip parsing the (long) assistant and result lines
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "rate_limit_event":
        return None
    info = message.get("rate_limit_info")
    return info if isinstance(info, dict) else None


@dataclass(frozen=True, slots=True)
class ApiRetry:
    """One `api_retry` line: the CLI's API request failed and it will try again after `delay_s`.

    As the real CLI (2.1.197) prints it, before any assistant or result line:
    `{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":521.05,
    "error_status":401,"error":"authentication_failed","session_id":…,"uuid":…}`; `error` is one of
    `authentication_failed`, `rate_limit`, `overloaded`, `server_error`, `unknown` (no status: no connection).
    """

    attempt: int
    max_retries: int | None
    delay_s: float
    status: int | None
    error: str


def api_retry(line: str) -> ApiRetry | None:
    """The `api_retry` message of one stream-json line, else None."""
    if '"api_retry"' not in line:  # skip parsing the (long) assistant and result lines
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "system" or message.get("subtype") != "api_retry":
        return None
    status = message.get("error_status")
    max_retries = message.get("max_retries")
    return ApiRetry(
        attempt=_int(message.get("attempt")),
        max_retries=max_retries if isinstance(max_retries, int) and not isinstance(max_retries, bool) else None,
        delay_s=_float(message.get("retry_delay_ms")) / 1000.0,
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        error=str(message.get("error") or "unknown"),
    )


def _take_message(out: CliOutput, message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind == "result":
        out.result = message  # the last one wins; there should be exactly one
    elif kind == "rate_limit_event" and isinstance(message.get("rate_limit_info"), dict):
        out.rate_limits.append(message["rate_limit_info"])
    elif kind == "system" and message.get("subtype") == "init" and isinstance(message.get("model"), str):
        out.model = message["model"]


def result_failed(result: dict[str, Any]) -> bool:
    """Whether a result object reports a failure (a failed API call comes back with subtype "success")."""
    subtype = str(result.get("subtype") or "")
    return (
        result.get("is_error") is True
        or result.get("api_error_status") is not None
        or result.get("terminal_reason") in _FAILED_TERMINAL_REASONS
        or subtype.startswith("error")
        or _is_bare_limit_message(str(result.get("result") or ""))
    )


def _is_bare_limit_message(text: str) -> bool:
    """A short result that is nothing but a usage-limit notice is a failure even if `is_error` is false."""
    text = text.strip()
    return len(text) < 200 and bool(_LEGACY_LIMIT.fullmatch(text) or _LIMIT_WORDINGS.match(text))


def usage_from(result: dict[str, Any]) -> TokenUsage:
    """Token counts from `usage`, or summed from `modelUsage` when `usage` is missing."""
    usage = result.get("usage")
    if isinstance(usage, dict):
        return TokenUsage(
            input=_int(usage.get("input_tokens")),
            output=_int(usage.get("output_tokens")),
            cache_read=_int(usage.get("cache_read_input_tokens")),
            cache_write=_int(usage.get("cache_creation_input_tokens")),
        )
    per_model = [m for m in (result.get("modelUsage") or {}).values() if isinstance(m, dict)]
    return TokenUsage(
        input=sum(_int(m.get("inputTokens")) for m in per_model),
        output=sum(_int(m.get("outputTokens")) for m in per_model),
        cache_read=sum(_int(m.get("cacheReadInputTokens")) for m in per_model),
        cache_write=sum(_int(m.get("cacheCreationInputTokens")) for m in per_model),
    )


def model_from(result: dict[str, Any]) -> str | None:
    """The model that did most of the work: `modelUsage` may also list a small helper model."""
    per_model = result.get("modelUsage")
    if not isinstance(per_model, dict) or not per_model:
        return None

    def weight(item: tuple[str, Any]) -> tuple[float, int]:
        entry = item[1] if isinstance(item[1], dict) else {}
        return (_float(entry.get("costUSD")), _int(entry.get("outputTokens")))

    return max(per_model.items(), key=weight)[0]


def cost_from(result: dict[str, Any]) -> float | None:
    """`total_cost_usd`, or the older `cost_usd` name; None when the CLI reported neither."""
    for key in ("total_cost_usd", "cost_usd"):
        value = result.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


# --- usage-limit messages ---------------------------------------------------------------------------

_LEGACY_LIMIT = re.compile(r"Claude AI usage limit reached\|(\d{9,13})")
# Each wording seen over time (PROVIDERS.md 1.3). "rate limit reached" is deliberately absent: that is an API 429.
_LIMIT_WORDINGS = re.compile(
    r"You[\u2019']ve hit your (?:[\w-]+ )?limit"
    r"|\b(?:\d+-hour|session|daily|weekly|opus|sonnet) limit reached"
    r"|\busage limit reached",
    re.IGNORECASE,
)
_WHEN_PATTERN = (
    r"(?:(?P<month>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>[ap]\.?m\b\.?)?"
)
_WHEN = re.compile(rf"^{_WHEN_PATTERN}$", re.IGNORECASE)
# "resets 10pm (America/New_York)", "resets Oct 12, 4am", "Your limit will reset at 1pm (Etc/GMT+5)."
_RESET_PHRASE = re.compile(
    r"\bresets?(?:\s+at)?\s+(?P<when>(?:[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?"
    r"\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\b\.?)?)\s*(?:\((?P<zone>[A-Za-z0-9_/+\-]+)\))?",
    re.IGNORECASE,
)
_MONTHS = {
    name: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
         ("nov", "november"), ("dec", "december")],
        start=1,
    )
    for name in names
}  # fmt: skip


def detect_usage_limit(text: str, now: datetime, local_tz: tzinfo | None = None) -> datetime | None:
    """The UTC reset time if `text` is a subscription usage-limit message, else None.

    A message we recognise but whose reset time we cannot read resets `DEFAULT_USAGE_LIMIT_RESET` from now.
    Times without a zone are in `local_tz`, by default the machine's zone (`machine_zone`), which is where the
    CLI formats them.
    """
    legacy = _LEGACY_LIMIT.search(text)
    if legacy:
        epoch = int(legacy.group(1))
        if epoch > 10**11:  # milliseconds
            epoch //= 1000
        return datetime.fromtimestamp(epoch, UTC)
    wording = _LIMIT_WORDINGS.search(text)
    if not wording:
        return None
    phrase = _RESET_PHRASE.search(text, wording.end())
    if phrase:
        reset = parse_reset_time(phrase.group("when"), phrase.group("zone"), now, local_tz)
        if reset is not None:
            return reset
    return now.astimezone(UTC) + DEFAULT_USAGE_LIMIT_RESET


def parse_reset_time(when: str, zone: str | None, now: datetime, local_tz: tzinfo | None = None) -> datetime | None:
    """The next moment after `now` matching a wall-clock phrase like "10pm", "4:30am" or "Oct 12, 4am"."""
    match = _WHEN.match(when.strip())
    if not match:
        return None
    # A real zone, not today's offset: a reset after a DST change is at that day's offset.
    tz = _zone(zone) or local_tz or machine_zone()
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    ampm = (match["ampm"] or "").replace(".", "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    local_now = now.astimezone(tz)
    at = time(hour, minute)
    if match["month"]:
        month = _MONTHS.get(match["month"].lower())
        if month is None:
            return None
        for year in (local_now.year, local_now.year + 1):
            try:
                candidate = datetime.combine(date(year, month, int(match["day"])), at, tz)
            except ValueError:
                return None
            if candidate > local_now:
                return candidate.astimezone(UTC)
        return None
    # Build from the naive local date so a DST change between today and tomorrow keeps the wall time.
    candidate = datetime.combine(local_now.date(), at, tz)
    if candidate <= local_now:
        candidate = datetime.combine(local_now.date() + timedelta(days=1), at, tz)
    return candidate.astimezone(UTC)


def machine_zone() -> tzinfo:
    """This machine's time zone with its DST rules: `TZ` as the C library reads it, else /etc/localtime.

    Only when neither names a zone we can load is it the fixed UTC offset in force now.
    """
    name = os.environ.get("TZ", "").removeprefix(":")
    if name:
        zone = _zone_file(name) if name.startswith("/") else _zone(name)
        return zone or _offset_now()
    return _zone_file("/etc/localtime") or _offset_now()


def _zone_file(path: str) -> tzinfo | None:
    try:
        with open(path, "rb") as f:
            return ZoneInfo.from_file(f, key=os.path.basename(path))
    except (OSError, ValueError):
        return None


def _offset_now() -> tzinfo:
    return datetime.now(UTC).astimezone().tzinfo or UTC


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# --- mapping failures to the error hierarchy ---------------------------------------------------------

_AUTH_TEXT = re.compile(
    r"invalid api key|please run /login|authentication_error|oauth token has expired|not logged in|permission_error",
    re.IGNORECASE,
)
_OVERLOAD_TEXT = re.compile(r"overloaded_error|\b529\b", re.IGNORECASE)
_RATE_LIMIT_TEXT = re.compile(r"rate_limit_error|\b429\b", re.IGNORECASE)
_BILLING_TEXT = re.compile(r"billing_error", re.IGNORECASE)


def error_for_result(
    result: dict[str, Any],
    *,
    provider_id: str,
    subscription: str | None,
    now: datetime,
    redact: Redactor,
    usage: TokenUsage | None = None,
    cost_usd: float = 0.0,
    model: str | None = None,
) -> ProviderError:
    """The error a failed result object stands for. `redact` scrubs secrets from any text we quote.

    `usage`, `cost_usd` and `model` are what the failed run consumed (a run stopped at max_turns, or an API
    error after some turns, has already been billed); they ride on the error so the ledger records them.
    """
    text = _result_text(result)
    # Redact the whole text before shortening it: a key cut in two by shortening would no longer match.
    quoted = shorten(redact(text), _ERROR_TEXT_LIMIT) or "(no message)"
    status = result.get("api_error_status")
    status = int(status) if isinstance(status, int | float | str) and str(status).isdigit() else None
    kw: dict[str, Any] = {
        "provider_id": provider_id,
        "subscription": subscription,
        "usage": usage,
        "cost_usd": cost_usd,
        "model": model,
    }

    reset_at = detect_usage_limit(text, now)
    if reset_at is not None:
        return QuotaExhausted(
            f"subscription usage limit reached; resets {reset_at.isoformat()}",
            error_type="usage_limit",
            reset_at=reset_at,
            retry_after_s=max(0.0, (reset_at - now).total_seconds()),
            **kw,
        )
    if result.get("subtype") == "error_max_turns" or result.get("terminal_reason") == "max_turns":
        # Deterministic for this task and config: another attempt repeats the spend and stops at the same
        # cap, and it says nothing about the provider's health. The fix is a larger max_turns or a smaller task.
        turns = result.get("num_turns")
        return BadRequest(f"stopped at the max-turns limit after {turns} turns: {quoted}", error_type="max_turns", **kw)
    if is_credit_balance_message(text):
        # The API's 400 "credit balance is too low": the money behind this subscription is gone, whatever the status.
        return QuotaExhausted(quoted, error_type=CREDIT_BALANCE, **kw)
    if status is not None:
        return _error_for_status(status, quoted, kw)
    # Older CLIs (before 2.1.110) give no status; fall back to the wording of the error text.
    if _AUTH_TEXT.search(text):
        return AuthenticationFailed(quoted, error_type="authentication", **kw)
    if _BILLING_TEXT.search(text):
        return QuotaExhausted(quoted, error_type="billing", **kw)
    if _OVERLOAD_TEXT.search(text):
        return Overloaded(quoted, error_type="529", **kw)
    if _RATE_LIMIT_TEXT.search(text):
        return RateLimited(quoted, error_type="429", **kw)
    reason = result.get("terminal_reason") or result.get("subtype") or "error_result"
    return Unavailable(quoted, error_type=str(reason), **kw)


def _error_for_status(status: int, quoted: str, kw: dict[str, Any]) -> ProviderError:
    if status == 402:
        # The API's billing_error: the account behind this subscription has no credit left.
        return QuotaExhausted(quoted, error_type="billing", **kw)
    return error_class_for_status(status)(quoted, error_type=str(status), **kw)


def error_without_result(
    out: CliOutput,
    stdout: str,
    stderr: str,
    returncode: int,
    *,
    provider_id: str,
    subscription: str | None,
    now: datetime,
    redact: Redactor,
) -> ProviderError:
    """The error for a run that printed no result object (plain text, garbage or nothing)."""
    kw: dict[str, Any] = {"provider_id": provider_id, "subscription": subscription}
    # The plain-text output of older CLIs carried the usage-limit line; it is worth catching here too.
    reset_at = detect_usage_limit(f"{stdout}\n{stderr}", now)
    if reset_at is not None:
        return QuotaExhausted(
            f"subscription usage limit reached; resets {reset_at.isoformat()}",
            error_type="usage_limit",
            reset_at=reset_at,
            retry_after_s=max(0.0, (reset_at - now).total_seconds()),
            **kw,
        )
    if returncode != 0 and not stdout.strip():
        last = tail(redact(stderr.strip()), _ERROR_TEXT_LIMIT) or "(no output)"
        return Unavailable(f"claude exited with {returncode} and no result: {last}", error_type="exit_status", **kw)
    lines = out.non_json_lines
    return MalformedResponse(
        f"no result object in the output ({lines} non-JSON lines, exit status {returncode})",
        error_type="no_result",
        **kw,
    )


def _result_text(result: dict[str, Any]) -> str:
    parts = [str(result.get("result") or "")]
    errors = result.get("errors")
    if isinstance(errors, list):
        parts.extend(str(e) for e in errors)
    return "\n".join(p for p in parts if p)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
