"""`anthropic`: the Anthropic Messages API (`POST /v1/messages`) over httpx."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from providers._http import (
    HttpProvider,
    HttpProviderConfig,
    header_float,
    json_or_none,
    token_count,
)
from providers.base import ProviderConfig, utc_now
from providers.errors import MalformedResponse, Overloaded, ProviderError, Unavailable
from providers.models import AITask, ExecutionContext, Price, ProviderResponse, QuotaSignal, TokenUsage
from providers.pricing import CLAUDE_HAIKU_4_5, CLAUDE_OPUS_4, CLAUDE_OPUS_4_5, CLAUDE_SONNET, claude_family_price
from providers.prompt import render_prompt
from providers.status_map import CREDIT_BALANCE, error_class_for_status, is_credit_balance_message
from providers.vendor_batch import VendorBatchSettings

# The `anthropic-ratelimit-<kind>-{limit,remaining,reset}` header families.
_LIMIT_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"


class AnthropicConfig(HttpProviderConfig):
    type: Literal["anthropic"] = "anthropic"
    model: str = "claude-sonnet-4-5"
    base_url: str = "https://api.anthropic.com"
    # None sends no key, for a gateway that adds its own.
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    anthropic_version: str = "2023-06-01"
    # Upper bound on `max_tokens`; a task's `max_output_tokens` is capped by it.
    max_tokens: int = Field(default=8192, gt=0)
    system: str | None = None
    # Opts in to the vendor's batch API for deferrable tasks (providers.vendor_batch); None: live calls only.
    batch: VendorBatchSettings | None = None


class AnthropicProvider(HttpProvider):
    type_name: ClassVar[str] = "anthropic"
    config_model: ClassVar[type[ProviderConfig]] = AnthropicConfig
    # USD per million tokens (anthropic.com/pricing); cache_write is the 5-minute cache write rate. Models not
    # listed are priced by family (`_family_price`), and anything else at Sonnet's price with a warning.
    default_prices: ClassVar[dict[str, Price]] = {
        "claude-opus-4-5": CLAUDE_OPUS_4_5,
        "claude-opus-4-1": CLAUDE_OPUS_4,
        "claude-sonnet-4-5": CLAUDE_SONNET,
        "claude-sonnet-4-0": CLAUDE_SONNET,
        # Sonnet 4's dated id (claude-sonnet-4-20250514) drops its date to this, not to the -0 alias.
        "claude-sonnet-4": CLAUDE_SONNET,
        "claude-haiku-4-5": CLAUDE_HAIKU_4_5,
        "*": CLAUDE_SONNET,
    }

    config: AnthropicConfig

    def _headers(self, context: ExecutionContext | None) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version, "content-type": "application/json"}
        key = self._api_key(context)
        if key is not None:
            headers["x-api-key"] = key
        return headers

    def _probe_url(self) -> str:
        return self._url("/v1/models")

    @classmethod
    def _family_price(cls, model: str) -> Price | None:
        return claude_family_price(model)

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        body = self.request_body(task, context)
        response, latency_ms = await self._send("POST", self._url("/v1/messages"), context, json=body)
        data = self._checked_json(response, context)
        return self.parse_message(data, context, latency_ms, request_id=response.headers.get("request-id"))

    def request_body(self, task: AITask, context: ExecutionContext) -> dict[str, Any]:
        """The Messages API request for a task: sent live, or as a Message Batches request's `params`."""
        cfg = self.config
        body: dict[str, Any] = {
            "model": context.model or cfg.model,
            "max_tokens": min(task.max_output_tokens, cfg.max_tokens),
            "messages": [{"role": "user", "content": render_prompt(task)}],
        }
        if cfg.system:
            body["system"] = cfg.system
        return body

    def parse_message(
        self, data: dict[str, Any], context: ExecutionContext, latency_ms: float, *, request_id: str | None = None
    ) -> ProviderResponse:
        """The answer in a Messages API message (a live response, or a batch result's `message`), priced at list."""
        content = data.get("content")
        if not isinstance(content, list):
            raise self._error(MalformedResponse, "response has no content list", context, error_type="no_content")
        # Only text blocks are the answer; tool_use and thinking blocks are not.
        text = "".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        )
        raw_usage = data.get("usage")
        # Anthropic's input_tokens exclude cache reads and writes already, which is TokenUsage's convention.
        usage = TokenUsage(
            input=token_count(raw_usage, "input_tokens"),
            output=token_count(raw_usage, "output_tokens"),
            cache_read=token_count(raw_usage, "cache_read_input_tokens"),
            cache_write=token_count(raw_usage, "cache_creation_input_tokens"),
        )
        return self._answer(
            data,
            context,
            latency_ms=latency_ms,
            text=text,
            usage=usage,
            finish_reason=data.get("stop_reason"),
            metadata={"request_id": request_id, "message_id": data.get("id")},
        )

    def status_error(self, response: httpx.Response, context: ExecutionContext) -> ProviderError:
        """The error a response with this status and error body maps to (a batch result's error is mapped so)."""
        return self._status_error(response, None, context)

    def _quota_signals(self, headers: httpx.Headers, context: ExecutionContext) -> list[QuotaSignal]:
        signals = (
            self._quota_signal(
                context,
                kind.replace("-", "_"),
                limit=header_float(headers, f"anthropic-ratelimit-{kind}-limit"),
                remaining=header_float(headers, f"anthropic-ratelimit-{kind}-remaining"),
                reset_at=parse_rfc3339(headers.get(f"anthropic-ratelimit-{kind}-reset")),
            )
            for kind in _LIMIT_KINDS
        )
        return [s for s in signals if s is not None]

    def _status_error(
        self, response: httpx.Response, retry_after_s: float | None, context: ExecutionContext
    ) -> ProviderError:
        status = response.status_code
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        vendor_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        message = message or response.text or response.reason_phrase or f"HTTP {status}"
        details = error.get("details")

        if status == 429 and isinstance(details, dict) and details.get("error_code") == SPEND_LIMIT_CODE:
            # The monthly spend cap: retrying cannot help before it clears at the start of next month.
            return self._spend_exhausted(message, context, SPEND_LIMIT_CODE, reset_at=first_of_next_month(utc_now()))
        if status == 402:
            return self._spend_exhausted(message, context, vendor_type or "402")
        if status == 400 and is_credit_balance_message(message):
            # An empty prepaid balance comes back as a plain invalid_request_error; no retry or wait can fix it.
            return self._spend_exhausted(message, context, CREDIT_BALANCE)
        if status == 529:
            cls, error_type = Overloaded, vendor_type or "529"
        elif status >= 500:
            cls, error_type = Unavailable, str(status)
        else:
            cls, error_type = error_class_for_status(status), vendor_type or str(status)
        return self._error(cls, message, context, error_type=error_type, retry_after_s=retry_after_s)


def parse_rfc3339(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def first_of_next_month(now: datetime) -> datetime:
    """00:00 UTC on the 1st of the month after `now`, when Anthropic's monthly spend cap clears."""
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)
