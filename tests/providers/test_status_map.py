"""One HTTP-status mapping for every provider: the table itself, and each provider agreeing with it."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from providers import (
    AITask,
    AuthenticationFailed,
    BadRequest,
    ExecutionContext,
    Overloaded,
    ProviderConfig,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.claude_cli_parse import error_for_result
from providers.openai_compatible import OpenAICompatibleConfig, OpenAICompatibleProvider
from providers.status_map import error_class_for_status

TASK = AITask(id="t", type="code_review", prompt="Review")
CTX = ExecutionContext()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequest),
        (401, AuthenticationFailed),
        (402, QuotaExhausted),
        (403, AuthenticationFailed),
        (404, BadRequest),
        (405, BadRequest),
        (408, ProviderTimeout),
        (409, Unavailable),
        (410, Unavailable),
        (413, BadRequest),
        (415, BadRequest),
        (422, BadRequest),
        (429, RateLimited),
        (500, Unavailable),
        (502, Unavailable),
        (503, Unavailable),
        (529, Overloaded),
        (599, Unavailable),
        (302, Unavailable),
    ],
)
def test_the_table(status: int, expected: type[ProviderError]) -> None:
    assert error_class_for_status(status) is expected


async def _http_error(
    provider_cls: type[AnthropicProvider | OpenAICompatibleProvider], config: ProviderConfig, status: int
) -> ProviderError:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": "nope"}})

    provider = provider_cls("p", config, transport=httpx.MockTransport(handler))
    try:
        await provider.execute_task(TASK, CTX)
    except ProviderError as exc:
        return exc
    finally:
        await provider.aclose()
    raise AssertionError("no error raised")


def _cli_error(status: int) -> ProviderError:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "API Error",
        "api_error_status": status,
    }
    return error_for_result(result, provider_id="c", subscription=None, now=datetime.now(UTC), redact=lambda s: s)


# Statuses with no provider-specific meaning: all three providers must agree with the shared table.
# (402, 503 and 529 are special-cased by some providers and covered in their own tests.)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502])
async def test_every_provider_uses_the_shared_table(status: int) -> None:
    expected = error_class_for_status(status)
    anthropic = await _http_error(
        AnthropicProvider, AnthropicConfig(base_url="http://127.0.0.1:9", api_key_env=None), status
    )
    openai = await _http_error(
        OpenAICompatibleProvider, OpenAICompatibleConfig(base_url="http://127.0.0.1:9/v1", model="m"), status
    )
    cli = _cli_error(status)
    assert (type(anthropic), type(openai), type(cli)) == (expected, expected, expected)


async def test_documented_special_cases_stay() -> None:
    # Anthropic: 529 carries the vendor's error type; OpenAI-compatible: 503 is "busy", 529 is just a 5xx.
    anthropic = AnthropicConfig(base_url="http://127.0.0.1:9", api_key_env=None)
    openai = OpenAICompatibleConfig(base_url="http://127.0.0.1:9/v1", model="m")
    assert type(await _http_error(AnthropicProvider, anthropic, 529)) is Overloaded
    assert type(await _http_error(OpenAICompatibleProvider, openai, 503)) is Overloaded
    assert type(await _http_error(OpenAICompatibleProvider, openai, 529)) is Unavailable
    assert type(await _http_error(AnthropicProvider, anthropic, 503)) is Unavailable
    # The CLI's 402 is a billing error on that subscription's account.
    billing = _cli_error(402)
    assert type(billing) is QuotaExhausted and billing.error_type == "billing"
    assert type(_cli_error(529)) is Overloaded
