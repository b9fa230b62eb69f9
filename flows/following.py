"""What `switchboard watch` reads of a batch's flow run in Prefect: its state, now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from prefect import get_client

# A read that takes longer is given up (the follower tries again at its next poll).
READ_TIMEOUT_S = 5.0
logger = logging.getLogger("switchboard.following")


@dataclass(frozen=True, slots=True)
class FlowRunState:
    type: str  # Prefect's state type: SCHEDULED, PENDING, RUNNING, CANCELLING, COMPLETED, FAILED, CRASHED, ...
    name: str  # the state's name as the UI shows it (`Late`, `Cancelling`, `Completed`, ...)
    final: bool
    message: str | None = None


def flow_run_state(flow_run_id: str) -> FlowRunState | None:
    """The flow run's current state, or None when Prefect cannot say (unreachable, no such flow run)."""
    try:
        with get_client(sync_client=True, httpx_settings={"timeout": READ_TIMEOUT_S}) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except Exception:
        logger.debug("could not read flow run %s", flow_run_id, exc_info=True)
        return None
    if state is None:
        return None
    return FlowRunState(
        type=state.type.value, name=state.name or state.type.value, final=state.is_final(), message=state.message
    )


__all__ = ["FlowRunState", "flow_run_state"]
