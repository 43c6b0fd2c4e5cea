"""The virtual-time loop a replay runs on: waiting costs nothing, order and spacing are kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from mm_daemon.engine.virtual_time import VirtualClock, VirtualTimeLoop, VirtualTimeStallError

ORIGIN = 1_723_161_255_000_000_000  # a recorded receive time, in epoch ns


def run(coro: Coroutine[Any, Any, Any], clock: VirtualClock) -> Any:
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_an_hour_of_sleep_passes_at_once_and_moves_the_clock_by_an_hour() -> None:
    clock = VirtualClock(ORIGIN)
    started = time.perf_counter()
    run(asyncio.sleep(3600), clock)
    assert time.perf_counter() - started < 60  # no real hour, whatever the machine's load
    assert clock.now_ns() - ORIGIN == 3600 * 1_000_000_000


def test_timers_fire_in_time_order_at_their_own_times() -> None:
    clock = VirtualClock(ORIGIN)
    fired: list[tuple[str, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for name, delay in (("c", 0.003), ("a", 0.001), ("b", 0.002)):
            loop.call_later(delay, lambda n=name: fired.append((n, clock.now_ns() - ORIGIN)))
        await asyncio.sleep(0.01)

    run(main(), clock)
    assert fired == [("a", 1_000_000), ("b", 2_000_000), ("c", 3_000_000)]


def test_a_deadline_expires_in_virtual_time() -> None:
    clock = VirtualClock(ORIGIN)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 5)

    run(main(), clock)
    assert clock.now_ns() - ORIGIN == 5 * 1_000_000_000


def test_setting_the_clock_forward_runs_nothing_early_and_never_goes_back() -> None:
    clock = VirtualClock(ORIGIN)
    clock.advance_to(ORIGIN + 500)
    clock.advance_to(ORIGIN + 100)
    assert clock.now_ns() == ORIGIN + 500


def test_a_wait_no_timer_can_end_stops_the_run_instead_of_hanging() -> None:
    clock = VirtualClock(ORIGIN)

    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(VirtualTimeStallError):
        run(main(), clock)
