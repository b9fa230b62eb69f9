"""`openai_compatible`: `POST {base_url}/chat/completions` (OpenAI, Azure OpenAI, vLLM, Ollama, OpenRouter, ...)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
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
from providers.pricing import OPENAI_PRICES, claude_family_price, openai_family_price
from providers.prompt import render_prompt
from providers.status_map import error_class_for_status
from providers.vendor_batch import VendorBatchSettings

# A 429 whose error type or code is one of these is an empty balance or a spend cap, not a rate limit.
QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)
_LIMIT_KINDS = ("requests", "tokens")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class OpenAICompatibleConfig(HttpProviderConfig):
    type: Literal["openai_compatible"] = "openai_compatible"
    # e.g. https://api.openai.com/v1, http://localhost:11434/v1 (Ollama); for Azure, the deployment URL.
    base_url: str
    model: str
    # Local servers need no key; then no auth header is sent.
    api_key_env: str | None = None
    # When set: Azure OpenAI, with an `api-key` header and `?api-version=` on every request.
    azure_api_version: str | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    # Merged into the request body last (e.g. vLLM's `guided_choice`), so it can override our fields.
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # OpenAI's reasoning models take `max_completion_tokens` and reject `max_tokens`.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Opts in to the vendor's batch API for deferrable tasks (providers.vendor_batch); None: live calls only.
    batch: VendorBatchSettings | None = None


class OpenAICompatibleProvider(HttpProvider):
    """Maps 503 to Overloaded (OpenAI's "engine overloaded", vLLM/Ollama busy or loading) and other 5xx to
    Unavailable, so a retry with backoff is tried only where the server says it is merely busy."""

    type_name: ClassVar[str] = "openai_compatible"
    config_model: ClassVar[type[ProviderConfig]] = OpenAICompatibleConfig
    # USD per million tokens (openai.com/api/pricing). No "*": a model no table or family knows (a local model)
    # costs $0 with a warning; the config's `prices` decide (`"*": {input: 0, output: 0}` declares it free).
    default_prices: ClassVar[dict[str, Price]] = dict(OPENAI_PRICES)

    config: OpenAICompatibleConfig

    def _headers(self, context: ExecutionContext | None) -> dict[str, str]:
        # Ours come last so extra_headers cannot replace the auth header by accident.
        headers = {**self.config.extra_headers, "content-type": "application/json"}
        key = self._api_key(context)
        if key is not None:
            if self.config.azure_api_version:
                headers["api-key"] = key
            else:
                headers["authorization"] = f"Bearer {key}"
        return headers

    @classmethod
    def _family_price(cls, model: str) -> Price | None:
        # OpenAI's variants (`gpt-4o-audio-preview`), and Claude served through OpenRouter and other gateways.
        return openai_family_price(model) or claude_family_price(model)

    def _params(self) -> dict[str, str]:
        version = self.config.azure_api_version
        return {"api-version": version} if version else {}

    def _probe_url(self) -> str:
        if self.config.azure_api_version and "/deployments/" in self.config.base_url:
            # A deployment URL has no /models; the resource lists them at {endpoint}/openai/models.
            return self.config.base_url.split("/deployments/", 1)[0] + "/models"
        return self._url("/models")

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        body = self.request_body(task, context)
        response, latency_ms = await self._send("POST", self._url("/chat/completions"), context, json=body)
        data = self._checked_json(response, context)
        return self.parse_completion(data, context, latency_ms, request_id=response.headers.get("x-request-id"))

    def request_body(self, task: AITask, context: ExecutionContext) -> dict[str, Any]:
        """The chat completions request for a task: sent live, or as a Batch API input line's `body`."""
        cfg = self.config
        return {
            "model": context.model or cfg.model,
            "messages": [{"role": "user", "content": render_prompt(task)}],
            cfg.max_tokens_field: task.max_output_tokens,
            **cfg.extra_body,
        }

    def parse_completion(
        self, data: dict[str, Any], context: ExecutionContext, latency_ms: float, *, request_id: str | None = None
    ) -> ProviderResponse:
        """The answer in a chat completion (a live response, or a batch output line's body), priced at list."""
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise self._error(MalformedResponse, "response has no choices[0].message", context, error_type="no_choices")
        content = message.get("content")
        if content is None and isinstance(message.get("refusal"), str):
            # A refusal is the model's answer, not a transport failure.
            content = message["refusal"]
        if not isinstance(content, str):
            raise self._error(
                MalformedResponse, "choices[0].message has no text content", context, error_type="no_content"
            )

        raw = data.get("usage")
        usage_data = raw if isinstance(raw, dict) else {}
        cached = token_count(usage_data.get("prompt_tokens_details"), "cached_tokens")
        # prompt_tokens include cached tokens (unlike Anthropic's input_tokens); TokenUsage.input excludes them.
        usage = TokenUsage(
            input=max(0, token_count(usage_data, "prompt_tokens") - cached),
            cache_read=cached,
            output=token_count(usage_data, "completion_tokens"),
            reasoning=token_count(usage_data.get("completion_tokens_details"), "reasoning_tokens"),
        )
        return self._answer(
            data,
            context,
            latency_ms=latency_ms,
            text=content,
            usage=usage,
            finish_reason=choice.get("finish_reason"),
            metadata={"request_id": request_id, "completion_id": data.get("id")},
        )

    def status_error(self, response: httpx.Response, context: ExecutionContext) -> ProviderError:
        """The error a response with this status and error body maps to (a batch error line is mapped so)."""
        return self._status_error(response, None, context)

    def _quota_signals(self, headers: httpx.Headers, context: ExecutionContext) -> list[QuotaSignal]:
        signals = (
            self._quota_signal(
                context,
                kind,
                limit=header_float(headers, f"x-ratelimit-limit-{kind}"),
                remaining=header_float(headers, f"x-ratelimit-remaining-{kind}"),
                reset_at=_reset_at(headers.get(f"x-ratelimit-reset-{kind}")),
            )
            for kind in _LIMIT_KINDS
        )
        return [s for s in signals if s is not None]

    def _status_error(
        self, response: httpx.Response, retry_after_s: float | None, context: ExecutionContext
    ) -> ProviderError:
        status = response.status_code
        message, vendor_type, code = parse_error_body(json_or_none(response))
        message = message or response.text or response.reason_phrase or f"HTTP {status}"

        if status == 402:
            # OpenRouter and others answer 402 when the credit balance is empty.
            return self._spend_exhausted(message, context, code or vendor_type or "402")
        if status == 429 and (vendor_type in QUOTA_CODES or code in QUOTA_CODES):
            return self._spend_exhausted(message, context, code if code in QUOTA_CODES else "insufficient_quota")
        if status == 503:
            cls, error_type = Overloaded, code or vendor_type or "503"
        elif status >= 500:
            cls, error_type = Unavailable, str(status)
        else:
            cls, error_type = error_class_for_status(status), code or vendor_type or str(status)
        return self._error(cls, message, context, error_type=error_type, retry_after_s=retry_after_s)


def parse_error_body(body: object) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from OpenAI's `{"error": {...}}`, vLLM's `{"object": "error", ...}` or `{"error": str}`."""
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if isinstance(error, str):
        return error, None, None
    fields = error if isinstance(error, dict) else body if body.get("object") == "error" else {}

    def text(key: str) -> str | None:
        # vLLM sends the HTTP status as an integer `code`; only a string code says something new.
        value = fields.get(key)
        return value if isinstance(value, str) and value else None

    return text("message"), text("type"), text("code")


def _reset_at(duration: str | None) -> datetime | None:
    seconds = parse_duration(duration)
    return None if seconds is None else utc_now() + timedelta(seconds=seconds)


def parse_duration(value: str | None) -> float | None:
    """Seconds from a Go-style duration (`1s`, `6m0s`, `20ms`, `1h2m3.5s`) or a bare number of seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + unit for n, unit in parts) != value:
            return None
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in parts)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
