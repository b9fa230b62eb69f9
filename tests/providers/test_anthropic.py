"""The `anthropic` provider against a real local HTTP server that answers like the Messages API."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from providers import (
    AITask,
    AuthenticationFailed,
    BadRequest,
    ExecutionContext,
    HealthStatus,
    MalformedResponse,
    Overloaded,
    Price,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    QuotaSignal,
    RateLimited,
    Unavailable,
)
from providers.anthropic import AnthropicConfig, AnthropicProvider, first_of_next_month
from providers.prompt import render_prompt
from tests.fakes.fake_llm_servers import (
    FakeAnthropic,
    Scripted,
    anthropic_error,
    anthropic_message,
    anthropic_ratelimit_headers,
    closed_port_url,
)

KEY_ENV = "SWITCHBOARD_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-api03-TOPSECRET-0123456789abcdef"
TASK = AITask(id="review-1", type="code_review", prompt="Review this diff", context={"analyze": "two modules"})
CTX = ExecutionContext(run_id="r1", subscription="team-a")


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


def make_provider(base_url: str, *, key: str | None = KEY, **overrides: object) -> AnthropicProvider:
    config = AnthropicConfig(base_url=base_url, api_key_env=KEY_ENV, **overrides)  # type: ignore[arg-type]
    return AnthropicProvider("claude-api", config, secrets={KEY_ENV: key}.get if key else {}.get)


@pytest.fixture
async def provider(server: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = make_provider(server.url, timeout_s=5)
    yield p
    await p.aclose()


async def failure(provider: AnthropicProvider, task: AITask = TASK) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await provider.execute_task(task, CTX)
    return info.value


# --- success -----------------------------------------------------------------------------------------


async def test_sends_the_messages_request_the_api_expects(server: FakeAnthropic) -> None:
    p = make_provider(server.url, system="You review code.", max_tokens=300)
    await p.execute_task(TASK, CTX)
    await p.aclose()

    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert req.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,  # the task asked for 1024; config caps it
        "system": "You review code.",
        "messages": [{"role": "user", "content": render_prompt(TASK)}],
    }


async def test_success_reads_text_usage_and_prices_cache_tokens_separately(
    server: FakeAnthropic, provider: AnthropicProvider
) -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
    }
    body = anthropic_message("Looks good.", usage=usage)
    body["content"].insert(0, {"type": "thinking", "thinking": "hmm", "signature": "x"})
    body["content"].append({"type": "text", "text": " Ship it."})
    server.script(Scripted(200, body, {"request-id": "req_abc"}))

    response = await provider.execute_task(TASK, CTX)

    assert response.text == "Looks good. Ship it."
    assert response.model == "claude-sonnet-4-5-20250929"
    # Anthropic's input_tokens already exclude the cache, so nothing is subtracted.
    assert (response.usage.input, response.usage.output) == (1000, 500)
    assert (response.usage.cache_read, response.usage.cache_write) == (10000, 2000)
    # Sonnet 4.5 per million: input 3, output 15, cache read 0.30, cache write 3.75 (the dated id prices as the
    # alias): 0.003 + 0.0075 + 0.003 + 0.0075 = $0.021.
    assert response.cost_usd == pytest.approx(0.021)
    assert response.finish_reason == "end_turn"
    assert response.latency_ms > 0
    assert response.subscription == "team-a"
    assert response.metadata == {"request_id": "req_abc", "message_id": "msg_01XFDUDYJgAACzvnptvVoYEL"}


async def test_config_prices_override_shipped_prices(server: FakeAnthropic) -> None:
    p = make_provider(server.url, prices={"claude-sonnet-4-5": Price(input=1.0, output=2.0)})
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000}
    server.script(Scripted(200, anthropic_message(usage=usage)))
    response = await p.execute_task(TASK, CTX)
    await p.aclose()
    # No cache_read price configured: cache reads cost the input rate.
    assert response.cost_usd == pytest.approx(4.0)


MILLION = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}


@pytest.mark.parametrize(
    ("answered", "expected_usd"),
    [
        ("claude-opus-4-0", 15 + 75),
        ("claude-opus-4-20250514", 15 + 75),
        ("claude-opus-4-1-20250805", 15 + 75),
        ("claude-3-7-sonnet-latest", 3 + 15),
        ("claude-3-5-haiku-latest", 0.8 + 4),
        ("claude-3-5-haiku-20241022", 0.8 + 4),
        ("claude-haiku-4-5-20251001", 1 + 5),
    ],
)
async def test_models_missing_from_the_table_are_priced_by_their_own_family(
    server: FakeAnthropic, provider: AnthropicProvider, answered: str, expected_usd: float
) -> None:
    # The default model is claude-sonnet-4-5; the answering model is priced as itself, never as the default.
    server.script(Scripted(200, anthropic_message(model=answered, usage=MILLION)))
    response = await provider.execute_task(TASK, CTX)
    assert response.cost_usd == pytest.approx(expected_usd)


async def test_an_unknown_model_costs_the_fallback_price_with_one_warning(
    server: FakeAnthropic, provider: AnthropicProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        server.script(Scripted(200, anthropic_message(model="claude-experimental-2", usage=MILLION)))
        response = await provider.execute_task(TASK, CTX)
        assert response.cost_usd == pytest.approx(3 + 15)  # Sonnet's price, not $0
    warnings = [r.getMessage() for r in caplog.records if "claude-experimental-2" in r.getMessage()]
    assert len(warnings) == 1 and "prices" in warnings[0]


async def test_rate_limit_headers_become_quota_signals(provider: AnthropicProvider) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    await provider.execute_task(TASK, CTX)

    by_kind = {s.limit_kind: s for s in signals}
    assert set(by_kind) == {"requests", "tokens", "input_tokens", "output_tokens"}
    requests = by_kind["requests"]
    assert (requests.limit, requests.remaining) == (50, 49)
    assert requests.utilization == pytest.approx(0.02)
    assert requests.reset_at == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert requests.subscription == "team-a" and requests.status == "allowed"
    assert by_kind["tokens"].utilization == pytest.approx(0.02)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scripted", "cls", "error_type"),
    [
        (anthropic_error(529, "overloaded_error", "Overloaded"), Overloaded, "overloaded_error"),
        (anthropic_error(500, "api_error", "Internal server error"), Unavailable, "500"),
        (Scripted(502, "<html>Bad Gateway</html>", {"content-type": "text/html"}), Unavailable, "502"),
        (anthropic_error(401, "authentication_error", "bad key"), AuthenticationFailed, "authentication_error"),
        (anthropic_error(403, "permission_error", "no access to model"), AuthenticationFailed, "permission_error"),
        (anthropic_error(402, "billing_error", "credit balance too low"), QuotaExhausted, "billing_error"),
        (anthropic_error(400, "invalid_request_error", "max_tokens: too large"), BadRequest, "invalid_request_error"),
        (anthropic_error(404, "not_found_error", "model: claude-x"), BadRequest, "not_found_error"),
        (anthropic_error(413, "request_too_large", "Request exceeds 32 MB"), BadRequest, "request_too_large"),
    ],
)
async def test_status_maps_to_error_class(
    server: FakeAnthropic, provider: AnthropicProvider, scripted: Scripted, cls: type[ProviderError], error_type: str
) -> None:
    server.script(scripted)
    exc = await failure(provider)
    assert type(exc) is cls
    assert exc.error_type == error_type
    assert exc.provider_id == "claude-api" and exc.subscription == "team-a"


async def test_credit_balance_too_low_400_is_quota_exhausted_with_failover_and_no_retry(
    server: FakeAnthropic, provider: AnthropicProvider
) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    message = (
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits."
    )
    server.script(anthropic_error(400, "invalid_request_error", message))
    exc = await failure(provider)
    assert type(exc) is QuotaExhausted
    assert exc.error_type == "credit_balance"
    assert exc.failover_helps and not exc.retry_helps
    assert [(s.limit_kind, s.status) for s in signals] == [("spend", "rejected")]


async def test_vendor_message_is_kept_in_the_error(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    server.script(anthropic_error(400, "invalid_request_error", "messages: at least one message is required"))
    exc = await failure(provider)
    assert exc.message == "messages: at least one message is required"


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5)],
)
async def test_429_is_rate_limited_with_retry_after(
    server: FakeAnthropic, provider: AnthropicProvider, headers: dict[str, str], expected_s: float
) -> None:
    body = anthropic_error(429, "rate_limit_error", "This request would exceed your account's rate limit.").body
    server.script(Scripted(429, body, headers))
    exc = await failure(provider)
    assert isinstance(exc, RateLimited)
    assert exc.error_type == "rate_limit_error"
    assert exc.retry_after_s == expected_s


async def test_429_retry_after_as_http_date(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.script(Scripted(429, anthropic_error(429, "rate_limit_error", "slow down").body, {"retry-after": when}))
    exc = await failure(provider)
    assert exc.retry_after_s == pytest.approx(120, abs=2)


async def test_429_without_retry_after_waits_for_the_exhausted_limit(
    server: FakeAnthropic, provider: AnthropicProvider
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(seconds=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = anthropic_ratelimit_headers(requests=(50, 0, soon), tokens=(50000, 40000, later))
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    server.script(Scripted(429, anthropic_error(429, "rate_limit_error", "slow down").body, headers))

    exc = await failure(provider)

    assert isinstance(exc, RateLimited)
    assert exc.retry_after_s == pytest.approx(30, abs=2)
    # Headers are read on failures too.
    requests = next(s for s in signals if s.limit_kind == "requests")
    assert requests.status == "rejected" and requests.utilization == 1.0


async def test_spend_limit_429_is_quota_exhausted_until_next_month(
    server: FakeAnthropic, provider: AnthropicProvider
) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    server.script(
        anthropic_error(
            429,
            "rate_limit_error",
            "You have reached your specified API usage limits.",
            details={"error_code": "enforced_spend_limit_reached"},
        )
    )
    exc = await failure(provider)
    assert isinstance(exc, QuotaExhausted)
    assert exc.error_type == "enforced_spend_limit_reached"
    assert not exc.retry_helps
    assert exc.reset_at == first_of_next_month(datetime.now(UTC))
    assert [(s.limit_kind, s.status) for s in signals] == [("spend", "rejected")]


def test_first_of_next_month_rolls_over_the_year() -> None:
    assert first_of_next_month(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert first_of_next_month(datetime(2026, 2, 3, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "scripted",
    [
        Scripted(200, "<html>upstream proxy page</html>", {"content-type": "text/html"}),
        Scripted(200, '{"id": "msg_1", "content": [{"type": "te'),
        Scripted(200, {"id": "msg_1", "type": "message", "role": "assistant"}),
        Scripted(200, [1, 2, 3]),
    ],
)
async def test_malformed_body_is_malformed_response(
    server: FakeAnthropic, provider: AnthropicProvider, scripted: Scripted
) -> None:
    server.script(scripted)
    assert isinstance(await failure(provider), MalformedResponse)


async def test_server_slower_than_timeout_is_provider_timeout(server: FakeAnthropic) -> None:
    p = make_provider(server.url, timeout_s=0.2)
    server.script(Scripted(200, anthropic_message(), delay_s=3))
    exc = await failure(p)
    await p.aclose()
    assert isinstance(exc, ProviderTimeout)
    assert exc.error_type == "read_timeout"
    assert exc.__cause__ is not None


async def test_context_timeout_overrides_config(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    server.script(Scripted(200, anthropic_message(), delay_s=3))
    with pytest.raises(ProviderTimeout):
        await provider.execute_task(TASK, CTX.model_copy(update={"timeout_s": 0.2}))


async def test_connection_refused_is_unavailable() -> None:
    p = make_provider(closed_port_url())
    exc = await failure(p)
    await p.aclose()
    assert isinstance(exc, Unavailable)
    assert exc.error_type == "connect_error"


async def test_dropped_connection_is_unavailable(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    server.script(Scripted(drop=True))
    assert isinstance(await failure(provider), Unavailable)


async def test_missing_key_names_the_variable_and_sends_nothing(server: FakeAnthropic) -> None:
    p = make_provider(server.url, key=None)
    exc = await failure(p)
    assert isinstance(exc, AuthenticationFailed)
    assert KEY_ENV in str(exc)
    assert server.requests == []


async def test_api_key_never_leaks_into_errors_or_signals(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    echo = f"invalid x-api-key {KEY}; " + "x" * 1000
    server.script(Scripted(401, anthropic_error(401, "authentication_error", echo).body, anthropic_ratelimit_headers()))
    exc = await failure(provider)
    assert isinstance(exc, AuthenticationFailed)
    assert KEY not in str(exc) and KEY not in repr(exc.args)
    assert "[redacted]" in exc.message
    assert len(exc.message) <= 300
    assert signals and all(KEY not in s.model_dump_json() for s in signals)

    response = await provider.execute_task(TASK, CTX)
    assert KEY not in response.model_dump_json()


async def test_a_key_echoed_in_a_non_json_body_leaks_no_part_of_itself(
    server: FakeAnthropic, provider: AnthropicProvider
) -> None:
    # A proxy's error page quoting the request: the body is cut to 100 characters, right through the key.
    page = "<html><head><title>403</title></head><body>upstream proxy rejected x-api-key " + KEY + " here</body>"
    assert page.index(KEY) < 100 < page.index(KEY) + len(KEY)
    server.script(Scripted(200, page, {"content-type": "text/html"}))
    exc = await failure(provider)
    assert isinstance(exc, MalformedResponse)
    assert [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in str(exc)] == []
    assert "[redacted]" in exc.message


# --- health, lifecycle, capabilities -----------------------------------------------------------------


async def test_probe_lists_models(server: FakeAnthropic, provider: AnthropicProvider) -> None:
    health = await provider.health(use_cache=False)
    assert health.status is HealthStatus.HEALTHY
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


async def test_probe_with_a_wrong_key_is_unhealthy(server: FakeAnthropic) -> None:
    p = make_provider(server.url, key="sk-ant-wrong")
    health = await p.health(use_cache=False)
    await p.aclose()
    assert (health.status, health.detail) == (HealthStatus.UNHEALTHY, "authentication")


async def test_probe_of_a_closed_port_is_unhealthy() -> None:
    p = make_provider(closed_port_url())
    health = await p.health(use_cache=False)
    await p.aclose()
    assert health.status is HealthStatus.UNHEALTHY
    assert "unavailable" in health.detail


def test_client_follows_the_event_loop(server: FakeAnthropic) -> None:
    """Prefect runs tasks on several threads and loops; a client bound to the first loop must not be reused."""
    p = make_provider(server.url)
    first = asyncio.run(p.execute_task(TASK, CTX))
    second = asyncio.run(p.execute_task(TASK, CTX))
    asyncio.run(p.aclose())
    assert first.text == second.text
    assert len(server.requests) == 2


def test_concurrent_loops_on_two_threads(server: FakeAnthropic) -> None:
    p = make_provider(server.url)
    results: list[str] = []
    errors: list[BaseException] = []

    async def run() -> None:
        for _ in range(3):
            results.append((await p.execute_task(TASK, CTX)).text)
        await asyncio.sleep(0)

    def worker() -> None:
        try:
            asyncio.run(run())
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(p.aclose())
    assert errors == [] and len(results) == 6


async def test_an_injected_transport_carries_the_requests() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=anthropic_message("from the mock transport"))

    config = AnthropicConfig(base_url="http://127.0.0.1:9", api_key_env=KEY_ENV)
    p = AnthropicProvider("claude-api", config, secrets={KEY_ENV: KEY}.get, transport=httpx.MockTransport(handler))
    response = await p.execute_task(TASK, CTX)
    await p.aclose()
    assert response.text == "from the mock transport"
    assert str(seen[0].url) == "http://127.0.0.1:9/v1/messages"


def test_capabilities_and_estimate() -> None:
    p = make_provider("http://127.0.0.1:9", capabilities=["code_review"], max_concurrency=7)
    caps = p.capabilities()
    assert caps.task_types == frozenset({"code_review"})
    assert caps.models == ("claude-sonnet-4-5",)
    assert caps.max_concurrency == 7
    estimate = p.estimate_cost(TASK.model_copy(update={"max_output_tokens": 1000}))
    assert estimate.cost_usd == pytest.approx((estimate.tokens_input * 3 + 1000 * 15) / 1e6)


def test_config_defaults() -> None:
    config = AnthropicConfig()
    assert config.base_url == "https://api.anthropic.com"
    assert config.api_key_env == "ANTHROPIC_API_KEY"
    assert config.anthropic_version == "2023-06-01"
