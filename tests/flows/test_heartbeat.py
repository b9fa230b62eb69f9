"""A batch run in this process sends its flow run's heartbeat itself, so the sync flow need not join Prefect's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batches import parse_spec
from ledger import Ledger

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = {"name": "heartbeat", "tasks": [{"id": "only", "type": "code_review", "prompt": "look"}]}


def _heartbeats(flow_run_id: str, *, settle_s: float = 3.0, timeout: float = 30.0) -> list[Any]:
    """The flow run's heartbeat events, once the server has ingested them (it does so asynchronously)."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    event_filter = EventFilter(
        event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            events = client.read_events(filter=event_filter, limit=50).events
            if events:
                time.sleep(settle_s)  # a second heartbeat (the engine's beside ours) would have arrived by now
                return client.read_events(filter=event_filter, limit=50).events
            time.sleep(0.5)
    return []


def _providers(tmp_path: Path) -> str:
    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n  mock: {type: local_mock, latency_ms: 0}\n")
    return str(path)


def test_in_process_run_sends_exactly_one_heartbeat_per_interval(tmp_path: Path, ledger_url: str) -> None:
    from flows.batch import run_batch_flow
    from routing import load_config

    providers = _providers(tmp_path)
    result = run_batch_flow(load_config(providers), spec=parse_spec(SPEC, "heartbeat"), providers=providers)
    run = Ledger(url=ledger_url).get_run(result["run_id"])
    assert run is not None and run.flow_run_id

    beats = _heartbeats(run.flow_run_id)
    # One at the start of the run (the interval is at least 30 s), from the flow body; the engine sent none.
    assert len(beats) == 1
    roles = {r.role for r in beats[0].related}
    assert "flow" in roles


def test_engine_heartbeat_is_off_only_inside_an_in_process_run() -> None:
    from prefect.settings import get_current_settings

    from flows.heartbeat import _own_interval, in_process_heartbeat

    configured = get_current_settings().flows.heartbeat_frequency
    assert configured is not None
    with in_process_heartbeat():
        assert get_current_settings().flows.heartbeat_frequency is None
        assert _own_interval.get() == max(configured, 30)
    assert get_current_settings().flows.heartbeat_frequency == configured
    assert _own_interval.get() is None


def test_flow_called_directly_keeps_prefects_own_heartbeat(tmp_path: Path, ledger_url: str) -> None:
    from flows.batch import process_batch

    result = process_batch(spec=parse_spec(SPEC, "heartbeat-direct"), providers=_providers(tmp_path), fresh=True)
    run = Ledger(url=ledger_url).get_run(result["run_id"])
    assert run is not None and run.flow_run_id
    assert len(_heartbeats(run.flow_run_id)) == 1  # the engine's; the body sent none of its own
