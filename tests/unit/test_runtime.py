"""Core placement and busy polling of the daemon's event loop (`runtime` in the config)."""

from __future__ import annotations

import asyncio
import os

import pytest

from mm_daemon.config import ConfigError, RuntimeConfig
from mm_daemon.engine.runtime import BusyPoll, apply_cpu_affinity


def test_a_core_the_process_cannot_use_is_refused_naming_the_field() -> None:
    missing = max(os.sched_getaffinity(0)) + 64
    with pytest.raises(ConfigError) as info:
        apply_cpu_affinity(RuntimeConfig(cpu_affinity=(missing,)))
    (problem,) = info.value.problems
    assert problem.startswith("runtime.cpu_affinity: core ")
    assert str(missing) in problem


def test_the_process_is_pinned_to_the_configured_cores() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    try:
        apply_cpu_affinity(RuntimeConfig(cpu_affinity=(core,)))
        assert os.sched_getaffinity(0) == {core}
    finally:
        os.sched_setaffinity(0, before)


def test_no_cores_configured_leaves_the_placement_alone() -> None:
    before = os.sched_getaffinity(0)
    apply_cpu_affinity(RuntimeConfig())
    assert os.sched_getaffinity(0) == before


async def test_busy_poll_keeps_the_loop_turning_while_it_waits_and_stops_when_told() -> None:
    poll = BusyPoll(asyncio.get_running_loop())
    poll.start()
    assert poll.running
    await asyncio.sleep(0.05)  # a sleeping loop would turn a handful of times here
    turned = poll.turns
    assert turned > 50
    poll.stop()
    assert not poll.running
    await asyncio.sleep(0.02)
    assert poll.turns <= turned + 1  # at most the turn already queued


async def test_timers_and_callbacks_still_run_while_busy_polling() -> None:
    loop = asyncio.get_running_loop()
    poll = BusyPoll(loop)
    poll.start()
    try:
        fired = loop.create_future()
        loop.call_later(0.01, fired.set_result, "timer")
        assert await asyncio.wait_for(fired, 1.0) == "timer"
    finally:
        poll.stop()
