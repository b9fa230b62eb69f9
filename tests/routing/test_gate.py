"""The concurrency gate: waiters are woken by rank, and free slots never sit idle while tasks queue."""

from __future__ import annotations

import asyncio

from routing.gate import PriorityGate


async def _take_turn(gate: PriorityGate, rank: int, entered: list[int]) -> None:
    # What admission does: go at once when nobody is ahead and there is room, else queue and look again.
    woken = False
    ticket = None
    while not ((woken or not gate.queued) and gate.has_room):
        ticket = await gate.wait(rank, ticket)
        woken = True
    gate.enter()
    entered.append(rank)


async def test_tasks_that_queue_behind_woken_waiters_go_while_slots_are_free() -> None:
    gate = PriorityGate(10)
    gate.limit = 0  # no room yet (as while a circuit's probes are out): these three queue
    entered: list[int] = []
    early = [asyncio.create_task(_take_turn(gate, 1, entered)) for _ in range(3)]
    await asyncio.sleep(0)
    assert gate.waiting == 3
    # In the engine, tasks whose dependencies just finished start in the same loop pass in which a circuit
    # closes and wakes its waiters: they look before the woken ones have resumed, and queue behind them.
    late = [asyncio.create_task(_take_turn(gate, 1, entered)) for _ in range(4)]
    gate.limit = 10
    gate.wake_all()
    await asyncio.wait_for(asyncio.gather(*early, *late), timeout=5)  # no call ever finishes (`leave`) here
    assert gate.in_use == 7 and gate.waiting == 0


async def test_waiters_beyond_the_limit_wait_for_a_slot_and_urgent_ones_go_first() -> None:
    gate = PriorityGate(2)
    entered: list[int] = []
    await asyncio.gather(*(_take_turn(gate, 1, entered) for _ in range(2)))
    waiting = [asyncio.create_task(_take_turn(gate, rank, entered)) for rank in (1, 3, 2)]
    await asyncio.sleep(0.01)
    assert gate.in_use == 2 and gate.waiting == 3
    gate.leave()
    await asyncio.sleep(0.01)
    assert entered[-1] == 3 and gate.waiting == 2
    gate.leave()
    gate.leave()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
    assert entered[2:] == [3, 2, 1]
