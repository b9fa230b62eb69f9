"""The vendor batch clients against stand-ins that speak the Anthropic Message Batches and OpenAI Batch formats:
submit, retrieve, results mapped to the live call's answers and error classes, cancel, expiry."""

from __future__ import annotations

import pytest

from providers import AITask, BadRequest, ExecutionContext, Overloaded, ProviderResponse, RateLimited
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.openai_compatible import OpenAICompatibleConfig, OpenAICompatibleProvider
from providers.vendor_batch import Unanswered, VendorBatchClient, VendorBatchSettings, VendorBatchStatus
from providers.vendor_batch_clients import vendor_batch_client
from tests.fakes.fake_batch_apis import ANSWER, USAGE_IN, USAGE_OUT, FakeAnthropicBatches, FakeOpenAIBatches

CTX = ExecutionContext(run_id="r1")
SETTINGS = VendorBatchSettings(discount=0.5)


def task(task_id: str, prompt: str) -> AITask:
    return AITask(id=task_id, type="summarization", prompt=prompt)


def anthropic(url: str, batch: VendorBatchSettings | None = SETTINGS) -> AnthropicProvider:
    config = AnthropicConfig(base_url=url, api_key_env="K", batch=batch)
    return AnthropicProvider("claude-api", config, secrets={"K": "sk-ant-test-key-0123456789"}.get)


def openai(url: str, batch: VendorBatchSettings | None = SETTINGS) -> OpenAICompatibleProvider:
    config = OpenAICompatibleConfig(base_url=url + "/v1", model="gpt-4o-mini", api_key_env="K", batch=batch)
    return OpenAICompatibleProvider("openai", config, secrets={"K": "sk-test-key-0123456789"}.get)


def client_for(provider: AnthropicProvider | OpenAICompatibleProvider) -> VendorBatchClient:
    client = vendor_batch_client(provider)
    assert client is not None
    return client


def test_only_providers_that_opt_in_get_a_client() -> None:
    assert vendor_batch_client(anthropic("http://127.0.0.1:9", batch=None)) is None
    assert vendor_batch_client(anthropic("http://127.0.0.1:9", VendorBatchSettings(enabled=False))) is None
    assert vendor_batch_client(openai("http://127.0.0.1:9")) is not None


@pytest.mark.parametrize("vendor", ["anthropic", "openai"])
async def test_submit_poll_and_map_every_kind_of_result(vendor: str) -> None:
    fake_class = FakeAnthropicBatches if vendor == "anthropic" else FakeOpenAIBatches
    error_marker = "[errored:rate_limit_error]" if vendor == "anthropic" else "[errored:429]"
    with fake_class(polls_to_end=2) as fake:
        provider = anthropic(fake.url) if vendor == "anthropic" else openai(fake.url)
        client = client_for(provider)
        requests = [
            ("c-ok", task("ok", "Summarize the notes"), CTX),
            ("c-err", task("err", f"Summarize {error_marker}"), CTX),
            ("c-exp", task("exp", "Summarize [expired]"), CTX),
        ]
        batch = await client.submit(requests)
        assert batch.status is VendorBatchStatus.IN_PROGRESS and fake.created == 1
        assert batch.expires_at is not None
        assert (await client.retrieve(batch.batch_id)).status is VendorBatchStatus.IN_PROGRESS
        assert (await client.retrieve(batch.batch_id)).status is VendorBatchStatus.IN_PROGRESS
        assert (await client.retrieve(batch.batch_id)).status is VendorBatchStatus.ENDED
        results = await client.results(batch.batch_id, CTX)
        await provider.aclose()
    ok = results["c-ok"]
    assert isinstance(ok, ProviderResponse) and ok.text == ANSWER
    assert ok.usage.input == USAGE_IN and ok.usage.output == USAGE_OUT
    assert ok.list_price_usd is not None and ok.list_price_usd > 0
    assert ok.cost_usd == pytest.approx(ok.list_price_usd * 0.5)  # the batch price, the list price beside it
    assert ok.metadata["vendor_batch_id"] == batch.batch_id
    assert isinstance(results["c-err"], RateLimited)  # the same class a live 429 maps to
    assert results["c-exp"] == Unanswered(reason="expired")
    if vendor == "openai":
        assert fake.uploads and fake.uploads[0]["purpose"] == "batch"


@pytest.mark.parametrize("vendor", ["anthropic", "openai"])
async def test_errored_results_map_like_live_errors(vendor: str) -> None:
    fake_class = FakeAnthropicBatches if vendor == "anthropic" else FakeOpenAIBatches
    markers = (
        ("[errored:invalid_request_error]", "[errored:overloaded_error]")
        if vendor == "anthropic"
        else ("[errored:400]", "[errored:503]")
    )
    with fake_class(polls_to_end=0) as fake:
        provider = anthropic(fake.url) if vendor == "anthropic" else openai(fake.url)
        client = client_for(provider)
        batch = await client.submit([("a", task("a", markers[0]), CTX), ("b", task("b", markers[1]), CTX)])
        await client.retrieve(batch.batch_id)
        results = await client.results(batch.batch_id, CTX)
        await provider.aclose()
    assert isinstance(results["a"], BadRequest)
    assert isinstance(results["b"], Overloaded)


@pytest.mark.parametrize("vendor", ["anthropic", "openai"])
async def test_cancel_and_expiry_leave_requests_unanswered(vendor: str) -> None:
    fake_class = FakeAnthropicBatches if vendor == "anthropic" else FakeOpenAIBatches
    with fake_class(polls_to_end=None) as fake:
        provider = anthropic(fake.url) if vendor == "anthropic" else openai(fake.url)
        client = client_for(provider)
        first = await client.submit([("a", task("a", "one"), CTX)])
        second = await client.submit([("b", task("b", "two"), CTX)])
        assert (await client.retrieve(first.batch_id)).status is VendorBatchStatus.IN_PROGRESS
        cancelling = await client.cancel(first.batch_id)
        assert cancelling.vendor_status in ("canceling", "cancelling")
        assert (await client.retrieve(first.batch_id)).status is VendorBatchStatus.ENDED
        fake.expire(second.batch_id)
        assert (await client.retrieve(second.batch_id)).status is VendorBatchStatus.ENDED
        cancelled = await client.results(first.batch_id, CTX)
        expired = await client.results(second.batch_id, CTX)
        await provider.aclose()
    assert cancelled == {"a": Unanswered(reason="canceled")}
    assert expired == {"b": Unanswered(reason="expired")}
    assert fake.cancelled == [first.batch_id]


def test_a_results_file_that_breaks_its_format_is_malformed() -> None:
    import httpx

    from providers import MalformedResponse
    from providers.vendor_batch import jsonl

    assert jsonl(httpx.Response(200, text='{"custom_id": "a"}\n\n{"custom_id": "b"}\n')) == [
        {"custom_id": "a"},
        {"custom_id": "b"},
    ]
    with pytest.raises(MalformedResponse, match="results line 2 is not a JSON object"):
        jsonl(httpx.Response(200, text='{"custom_id": "a"}\n[1, 2]\n'))
