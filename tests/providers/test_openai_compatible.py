"""The `openai_compatible` provider against real local HTTP servers answering like OpenAI, Azure, vLLM, Ollama."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from providers import (
    AITask,
    AuthenticationFailed,
    BadRequest,
    ExecutionContext,
    HealthStatus,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    QuotaSignal,
    RateLimited,
    Unavailable,
)
from providers.openai_compatible import (
    QUOTA_CODES,
    OpenAICompatibleConfig,
    OpenAICompatibleProvider,
    parse_duration,
)
from providers.prompt import render_prompt
from tests.fakes.fake_llm_servers import (
    FakeOpenAI,
    Scripted,
    chat_completion,
    closed_port_url,
    openai_error,
    openai_ratelimit_headers,
    vllm_error,
)

KEY_ENV = "SWITCHBOARD_TEST_OPENAI_KEY"
KEY = "sk-proj-TOPSECRET-abcdef0123456789"
TASK = AITask(id="sum-1", type="summarization", prompt="Summarize the reviews", context={"review-1": "approve"})
CTX = ExecutionContext(run_id="r1", subscription="org-a")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def make_provider(base_url: str, *, key: str | None = KEY, **overrides: object) -> OpenAICompatibleProvider:
    settings: dict[str, object] = {"base_url": base_url, "model": "gpt-4o", "api_key_env": KEY_ENV, **overrides}
    config = OpenAICompatibleConfig.model_validate(settings)
    return OpenAICompatibleProvider("openai", config, secrets={KEY_ENV: key}.get if key else {}.get)


@pytest.fixture
async def provider(server: FakeOpenAI) -> AsyncIterator[OpenAICompatibleProvider]:
    p = make_provider(server.url + "/v1", timeout_s=5)
    yield p
    await p.aclose()


async def failure(provider: OpenAICompatibleProvider) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await provider.execute_task(TASK, CTX)
    return info.value


# --- requests ----------------------------------------------------------------------------------------


async def test_sends_chat_completions_with_bearer_key(server: FakeOpenAI) -> None:
    p = make_provider(
        server.url + "/v1/",
        extra_headers={"HTTP-Referer": "https://example.test", "Authorization": "Bearer not-this"},
        extra_body={"temperature": 0.2},
    )
    response = await p.execute_task(TASK, CTX)
    await p.aclose()

    (req,) = server.requests
    assert (req.method, req.path, req.query) == ("POST", "/v1/chat/completions", {})
    assert req.headers["authorization"] == f"Bearer {KEY}"  # extra_headers cannot replace the auth header
    assert req.headers["http-referer"] == "https://example.test"
    assert req.body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": render_prompt(TASK)}],
        "max_tokens": 1024,
        "temperature": 0.2,
    }
    assert response.text == f"echo: {render_prompt(TASK)}"


async def test_reasoning_models_can_take_max_completion_tokens(server: FakeOpenAI) -> None:
    p = make_provider(server.url + "/v1", max_tokens_field="max_completion_tokens")
    await p.execute_task(TASK, CTX)
    await p.aclose()
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body


async def test_local_server_without_key_gets_no_authorization_header() -> None:
    with FakeOpenAI(auth=None, ratelimit_headers=False) as ollama:
        p = make_provider(ollama.url + "/v1", key=None, api_key_env=None, model="llama3.2")
        ollama.script(Scripted(200, chat_completion("hi", model="llama3.2", usage={"prompt_tokens": 50})))
        response = await p.execute_task(TASK, CTX)
        await p.aclose()
    assert "authorization" not in ollama.requests[0].headers
    assert "api-key" not in ollama.requests[0].headers
    # No price table entry and no "*": local models cost nothing.
    assert response.cost_usd == 0.0
    assert (response.usage.input, response.usage.output) == (50, 0)


async def test_azure_mode_uses_api_key_header_and_api_version_query() -> None:
    with FakeOpenAI("/openai/deployments/gpt4o-prod", api_key=KEY, auth="azure") as azure:
        p = make_provider(azure.url + "/openai/deployments/gpt4o-prod", azure_api_version="2024-10-21")
        await p.execute_task(TASK, CTX)
        health = await p.health(use_cache=False)
        await p.aclose()
    post, probe = azure.requests
    assert post.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert post.query == {"api-version": ["2024-10-21"]}
    assert post.headers["api-key"] == KEY and "authorization" not in post.headers
    # A deployment URL has no /models; the resource lists them one level up.
    assert (probe.method, probe.path, probe.query) == ("GET", "/openai/models", {"api-version": ["2024-10-21"]})
    assert health.status is HealthStatus.HEALTHY


# --- success, usage and cost ------------------------------------------------------------------------


async def test_usage_is_normalised_so_cached_tokens_are_not_billed_twice(
    server: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 2_000,
        "total_tokens": 12_000,
        "prompt_tokens_details": {"cached_tokens": 8_000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 500},
    }
    server.script(Scripted(200, chat_completion("Summary.", usage=usage), {"x-request-id": "req_42"}))

    response = await provider.execute_task(TASK, CTX)

    # prompt_tokens include the cached ones; TokenUsage.input excludes them.
    assert (response.usage.input, response.usage.cache_read) == (2_000, 8_000)
    assert (response.usage.output, response.usage.reasoning) == (2_000, 500)
    # gpt-4o per million: input 2.50, cached input 1.25, output 10 (the dated id prices as the alias):
    # 2000*2.5 + 8000*1.25 + 2000*10 = 35_000 / 1e6 = $0.035 (billing all 10k prompt tokens as input: $0.045).
    assert response.cost_usd == pytest.approx(0.035)
    assert response.model == "gpt-4o-2024-08-06"
    assert response.finish_reason == "stop"
    assert response.latency_ms > 0
    assert response.metadata == {"request_id": "req_42", "completion_id": "chatcmpl-AB7X8Yz"}
    assert response.subscription == "org-a"


MILLION = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000}


@pytest.mark.parametrize(
    ("configured", "answered", "expected_usd"),
    [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.15 + 0.6),
        ("gpt-4o-audio-preview", "gpt-4o-audio-preview-2024-12-17", 2.5 + 10),
        ("openai/gpt-5-nano", "openai/gpt-5-nano", 0.05 + 0.4),
        ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", 3 + 15),  # Claude through OpenRouter
    ],
)
async def test_known_families_are_priced_even_when_no_table_names_the_model(
    server: FakeOpenAI, configured: str, answered: str, expected_usd: float
) -> None:
    p = make_provider(server.url + "/v1", model=configured)
    server.script(Scripted(200, chat_completion("ok", model=answered, usage=MILLION)))
    response = await p.execute_task(TASK, CTX)
    await p.aclose()
    assert response.cost_usd == pytest.approx(expected_usd)


async def test_an_unknown_local_model_costs_nothing_and_says_so_once(
    server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    p = make_provider(server.url + "/v1", model="llama3.1")
    for _ in range(2):
        server.script(Scripted(200, chat_completion("ok", model="llama3.1", usage=MILLION)))
        assert (await p.execute_task(TASK, CTX)).cost_usd == 0.0
    await p.aclose()
    warnings = [r.getMessage() for r in caplog.records if "llama3.1" in r.getMessage()]
    assert len(warnings) == 1 and "$0" in warnings[0] and "prices" in warnings[0]


async def test_the_configs_prices_decide_for_a_local_model_without_a_warning(
    server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    free = make_provider(server.url + "/v1", model="llama3.1", prices={"*": {"input": 0, "output": 0}})
    paid = make_provider(server.url + "/v1", model="llama3.1", prices={"llama3.1": {"input": 0.1, "output": 0.2}})
    costs = []
    for p in (free, paid):
        server.script(Scripted(200, chat_completion("ok", model="llama3.1", usage=MILLION)))
        costs.append((await p.execute_task(TASK, CTX)).cost_usd)
        await p.aclose()
    assert costs == [0.0, pytest.approx(0.3)]
    assert not [r for r in caplog.records if "no price" in r.getMessage()]


@pytest.mark.parametrize(
    "usage",
    [None, {"prompt_tokens": 7}, {"prompt_tokens": 7, "prompt_tokens_details": None, "completion_tokens": "x"}],
)
async def test_usage_is_read_defensively(
    server: FakeOpenAI, provider: OpenAICompatibleProvider, usage: dict[str, object] | None
) -> None:
    body = chat_completion("ok")
    body["usage"] = usage
    server.script(Scripted(200, body))
    response = await provider.execute_task(TASK, CTX)
    assert response.text == "ok"
    assert response.usage.input == (7 if usage else 0)
    assert response.usage.output == 0


async def test_refusal_is_returned_as_the_answer(server: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    body = chat_completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    server.script(Scripted(200, body))
    assert (await provider.execute_task(TASK, CTX)).text == "I can't help with that."


async def test_rate_limit_headers_become_quota_signals(provider: OpenAICompatibleProvider, server: FakeOpenAI) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    headers = openai_ratelimit_headers(requests=(500, 125, "1m30s"), tokens=(30000, 0, "6m0s"))
    server.script(Scripted(200, chat_completion(), headers))
    before = datetime.now(UTC)

    await provider.execute_task(TASK, CTX)

    requests, tokens = signals
    assert (requests.limit_kind, requests.limit, requests.remaining) == ("requests", 500, 125)
    assert requests.utilization == pytest.approx(0.75) and requests.status == "allowed"
    assert requests.reset_at is not None
    assert requests.reset_at - before == pytest.approx(timedelta(seconds=90), abs=timedelta(seconds=2))
    assert tokens.status == "rejected" and tokens.utilization == 1.0
    assert tokens.subscription == "org-a"


async def test_azure_minus_one_limits_say_nothing(server: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    headers = {"x-ratelimit-limit-requests": "-1", "x-ratelimit-remaining-requests": "0"}
    server.script(Scripted(200, chat_completion(), headers))
    await provider.execute_task(TASK, CTX)
    assert signals == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("", None), ("soon", None)],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scripted", "cls", "error_type"),
    [
        (openai_error(503, "The engine is currently overloaded", "server_error"), Overloaded, "server_error"),
        (openai_error(500, "The server had an error", "server_error"), Unavailable, "500"),
        (Scripted(502, "<html>Bad Gateway</html>", {"content-type": "text/html"}), Unavailable, "502"),
        (openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
         AuthenticationFailed, "invalid_api_key"),
        (openai_error(403, "Country not supported", "request_forbidden", "unsupported_country_region_territory"),
         AuthenticationFailed, "unsupported_country_region_territory"),
        (openai_error(400, "max_tokens is too large", "invalid_request_error"), BadRequest, "invalid_request_error"),
        (openai_error(404, "The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"),
         BadRequest, "model_not_found"),
        (vllm_error(400, "[{'type': 'extra_forbidden', 'loc': ('body', 'user')}]"), BadRequest, "BadRequestError"),
        (Scripted(422, {"detail": [{"msg": "field required"}]}), BadRequest, "422"),
        (Scripted(402, {"error": {"code": 402, "message": "Insufficient credits"}}), QuotaExhausted, "402"),
        (Scripted(404, {"error": 'model "llama9" not found, try pulling it first'}), BadRequest, "404"),
    ],
)  # fmt: skip
async def test_status_maps_to_error_class(
    server: FakeOpenAI,
    provider: OpenAICompatibleProvider,
    scripted: Scripted,
    cls: type[ProviderError],
    error_type: str,
) -> None:
    server.script(scripted)
    exc = await failure(provider)
    assert type(exc) is cls
    assert exc.error_type == error_type
    assert exc.provider_id == "openai" and exc.subscription == "org-a"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (vllm_error(400, "extra fields not permitted").body, "extra fields not permitted"),
        ({"error": 'model "llama9" not found'}, 'model "llama9" not found'),
        ({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": None}}, "bad"),
    ],
)
async def test_both_error_envelopes_give_the_vendor_message(
    server: FakeOpenAI, provider: OpenAICompatibleProvider, body: dict[str, object], message: str
) -> None:
    server.script(Scripted(400, body))
    assert (await failure(provider)).message == message


@pytest.mark.parametrize("code", sorted(QUOTA_CODES))
async def test_insufficient_quota_429_is_quota_exhausted(
    server: FakeOpenAI, provider: OpenAICompatibleProvider, code: str
) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    server.script(openai_error(429, "You exceeded your current quota.", "insufficient_quota", code))
    exc = await failure(provider)
    assert isinstance(exc, QuotaExhausted)
    assert exc.error_type == code
    assert not exc.retry_helps
    assert [(s.limit_kind, s.status) for s in signals] == [("spend", "rejected")]


async def test_429_is_rate_limited_with_retry_after(server: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    body = openai_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded").body
    server.script(Scripted(429, body, {"retry-after": "2"}))
    exc = await failure(provider)
    assert isinstance(exc, RateLimited)
    assert (exc.error_type, exc.retry_after_s) == ("rate_limit_exceeded", 2.0)
    assert exc.retry_helps


async def test_429_without_retry_after_waits_for_the_exhausted_limit(
    server: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    body = openai_error(429, "Rate limit reached for tokens", "tokens", "rate_limit_exceeded").body
    headers = openai_ratelimit_headers(requests=(500, 400, "20ms"), tokens=(30000, 0, "12s"))
    server.script(Scripted(429, body, headers))
    exc = await failure(provider)
    assert isinstance(exc, RateLimited)
    assert exc.retry_after_s == pytest.approx(12, abs=1)


@pytest.mark.parametrize(
    "scripted",
    [
        Scripted(200, "<html>captive portal</html>", {"content-type": "text/html"}),
        Scripted(200, '{"choices": [{"message": '),
        Scripted(200, {"object": "chat.completion", "choices": []}),
        Scripted(200, chat_completion(None)),
    ],
)
async def test_malformed_body_is_malformed_response(
    server: FakeOpenAI, provider: OpenAICompatibleProvider, scripted: Scripted
) -> None:
    server.script(scripted)
    assert isinstance(await failure(provider), MalformedResponse)


async def test_server_slower_than_timeout_is_provider_timeout(server: FakeOpenAI) -> None:
    p = make_provider(server.url + "/v1", timeout_s=0.2)
    server.script(Scripted(200, chat_completion(), delay_s=3))
    exc = await failure(p)
    await p.aclose()
    assert isinstance(exc, ProviderTimeout) and exc.error_type == "read_timeout"


async def test_connection_refused_is_unavailable() -> None:
    p = make_provider(closed_port_url() + "/v1")
    exc = await failure(p)
    await p.aclose()
    assert isinstance(exc, Unavailable) and exc.error_type == "connect_error"


async def test_an_error_never_quotes_the_urls_user_info_or_query() -> None:
    closed = closed_port_url()
    url = closed.replace("http://", "http://user:pass-in-url-123@") + "/v1?token=query-secret-456"
    p = make_provider(url)
    exc = await failure(p)
    health = await p.health(use_cache=False)
    await p.aclose()
    for text in (exc.message, health.detail):
        assert "pass-in-url-123" not in text and "query-secret-456" not in text
    assert closed.removeprefix("http://") in exc.message  # the host and port are still named


async def test_missing_key_names_the_variable(server: FakeOpenAI) -> None:
    p = make_provider(server.url + "/v1", key=None)
    exc = await failure(p)
    assert isinstance(exc, AuthenticationFailed) and KEY_ENV in exc.message
    assert server.requests == []


async def test_api_key_never_leaks(server: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    echo = f"Incorrect API key provided: {KEY}. " + "You can find your API key in your settings. " * 20
    server.script(Scripted(401, openai_error(401, echo, "invalid_request_error", "invalid_api_key").body))
    exc = await failure(provider)
    assert KEY not in str(exc) and KEY not in repr(exc.args)
    assert exc.message.startswith("Incorrect API key provided: [redacted]")
    assert len(exc.message) <= 300


async def test_a_key_echoed_in_a_non_json_body_leaks_no_part_of_itself(
    server: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    # A proxy's error page quoting the request: the body is cut to 100 characters, right through the key.
    page = "<html><head><title>Forbidden</title></head><body>gateway refused Bearer " + KEY + " here</body>"
    assert page.index(KEY) < 100 < page.index(KEY) + len(KEY)
    server.script(Scripted(200, page, {"content-type": "text/html"}))
    exc = await failure(provider)
    assert isinstance(exc, MalformedResponse)
    assert [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in str(exc)] == []


# --- health, lifecycle, config -----------------------------------------------------------------------


async def test_probe_lists_models(server: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    assert (await provider.health(use_cache=False)).status is HealthStatus.HEALTHY
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


async def test_probe_with_a_wrong_key_is_unhealthy(server: FakeOpenAI) -> None:
    p = make_provider(server.url + "/v1", key="sk-wrong")
    health = await p.health(use_cache=False)
    await p.aclose()
    assert (health.status, health.detail) == (HealthStatus.UNHEALTHY, "authentication")


async def test_probe_of_a_closed_port_is_unhealthy() -> None:
    p = make_provider(closed_port_url() + "/v1")
    health = await p.health(use_cache=False)
    await p.aclose()
    assert health.status is HealthStatus.UNHEALTHY


def test_client_follows_the_event_loop(server: FakeOpenAI) -> None:
    p = make_provider(server.url + "/v1")
    first = asyncio.run(p.execute_task(TASK, CTX))
    second = asyncio.run(p.execute_task(TASK, CTX))
    asyncio.run(p.aclose())
    assert first.text == second.text and len(server.requests) == 2


def test_base_url_and_model_are_required() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAICompatibleConfig.model_validate({})
    missing = {err["loc"][0] for err in info.value.errors()}
    assert {"base_url", "model"} <= missing


def test_capabilities() -> None:
    p = make_provider("http://127.0.0.1:9/v1", model="qwen2.5-coder", max_concurrency=2)
    caps = p.capabilities()
    assert (caps.models, caps.max_concurrency, caps.task_types) == (("qwen2.5-coder",), 2, None)
    assert p.estimate_cost(TASK).cost_usd == 0.0
