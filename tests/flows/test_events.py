"""Routing events reach Prefect's event bus and the ledger; provider_health reports health changes as events."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from flows.events import DEFAULT_KINDS, PrefectEventForwarder, circuit_opened_automation
from ledger import Ledger
from routing import BUDGET_EXHAUSTED, CIRCUIT_OPENED, FAILOVER, RoutingEvent

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _read_events(name: str, resource_id: str, *, expected: int, timeout: float = 30.0) -> list[Any]:
    """Events are ingested asynchronously by the server, so poll; the server rejects limit > 50."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    event_filter = EventFilter(event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id]))
    deadline = time.monotonic() + timeout
    events: list[Any] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            events = client.read_events(filter=event_filter, limit=50).events
            if len(events) >= expected:
                return events
            time.sleep(0.5)
    return events


def _provider_events(ledger_url: str) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
        return db.execute("select provider_id, kind from provider_events order by id").fetchall()


def test_forwarder_emits_prefect_events_and_records_them(ledger_url: str) -> None:
    ledger = Ledger(url=ledger_url)
    provider = f"p-{uuid.uuid4().hex[:8]}"
    forwarder = PrefectEventForwarder(ledger)
    started = time.perf_counter()
    for _ in range(3):
        forwarder(RoutingEvent(CIRCUIT_OPENED, provider, detail={"from": "closed", "to": "open", "failures": 5}))
    forwarder(RoutingEvent(FAILOVER, provider, detail={"task_id": "t1"}))  # not forwarded by default
    forwarder(RoutingEvent(BUDGET_EXHAUSTED, detail={"run_id": "r1", "task_id": "t2"}))
    assert time.perf_counter() - started < 0.05, "the observer must only enqueue"
    assert forwarder.flush(10)

    events = _read_events("switchboard.circuit.opened", f"switchboard.provider.{provider}", expected=3)
    assert len(events) == 3
    assert events[0].resource.name == provider
    assert dict(events[0].payload) == {"from": "closed", "to": "open", "failures": 5}
    budget = _read_events("switchboard.budget.exhausted", "switchboard.router", expected=1)
    assert any(e.payload.get("run_id") == "r1" for e in budget)

    assert _provider_events(ledger_url) == [(provider, CIRCUIT_OPENED)] * 3 + [("*", BUDGET_EXHAUSTED)]
    forwarder.close()


class _BrokenLedger:
    def __init__(self) -> None:
        self.calls = 0

    def record_provider_event(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        raise RuntimeError("database is locked")


def test_forwarder_never_raises_into_routing() -> None:
    broken = _BrokenLedger()
    forwarder = PrefectEventForwarder(broken, kinds=None)  # type: ignore[arg-type]
    forwarder(RoutingEvent(CIRCUIT_OPENED, "x", detail={"odd": object(), "nested": {"when": time}}))
    forwarder(RoutingEvent(FAILOVER, "x"))
    assert forwarder.flush(10)
    assert broken.calls == 2
    forwarder.close()


def test_forwarder_drops_rather_than_blocks_when_full() -> None:
    forwarder = PrefectEventForwarder(None, emit=False, max_queue=1)
    forwarder._thread = object()  # type: ignore[assignment]  # no delivery thread: the queue stays full
    forwarder(RoutingEvent(CIRCUIT_OPENED, "x"))
    forwarder(RoutingEvent(CIRCUIT_OPENED, "x"))
    assert forwarder.dropped == 1
    assert CIRCUIT_OPENED in DEFAULT_KINDS and FAILOVER not in DEFAULT_KINDS


def test_example_automation_is_accepted_by_the_server() -> None:
    from prefect import get_client

    name = f"switchboard circuit opened {uuid.uuid4().hex[:6]}"
    created = circuit_opened_automation(name, threshold=3, within_s=300).create()
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(name)
    assert [a.id for a in found] == [created.id]
    trigger = found[0].trigger
    assert trigger.expect == {"switchboard.circuit.opened"}
    assert trigger.threshold == 3 and trigger.within.total_seconds() == 300
    assert [type(a).__name__ for a in found[0].actions] == ["DoNothing"]


def test_provider_health_records_changes_and_emits_events(tmp_path: Path, ledger_url: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.health_flow import provider_health

    up, down = f"up-{uuid.uuid4().hex[:6]}", f"down-{uuid.uuid4().hex[:6]}"
    providers = tmp_path / "providers.yaml"
    # Nothing listens on port 9 of 127.0.0.1: the probe fails fast with a connection error.
    providers.write_text(
        f"providers:\n  {up}: {{type: local_mock}}\n"
        f"  {down}: {{type: openai_compatible, base_url: 'http://127.0.0.1:9/v1', model: m, timeout_s: 2}}\n"
    )
    first = provider_health(providers=str(providers))
    assert {r["provider"]: (r["previous"], r["status"], r["changed"]) for r in first} == {
        up: ("unknown", "healthy", True),
        down: ("unknown", "unhealthy", True),
    }
    second = provider_health(providers=str(providers))
    assert not any(r["changed"] for r in second)

    ledger = Ledger(url=ledger_url)
    rows = {r.provider_id: r for r in ledger.provider_rows()}
    assert rows[up].status == "healthy" and rows[down].status == "unhealthy"
    assert rows[down].type == "openai_compatible" and rows[down].health is not None and rows[down].health["detail"]
    assert sorted(_provider_events(ledger_url)) == sorted([(up, "health_changed"), (down, "health_changed")])

    events = _read_events("switchboard.provider.health_changed", f"switchboard.provider.{down}", expected=1)
    assert len(events) == 1 and events[0].payload["status"] == "unhealthy"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["provider-health"]))
        )
    assert artifacts and artifacts[0].type == "table"
