"""What many tests share: waiting for a condition, reading a metric, recording events.

- `eventually(probe)`: await until `probe()` returns something truthy (it may return an
  awaitable), checking on every loop turn or every `interval_s`; fails at the deadline.
- `poll(probe)`: the same, blocking, for tests that drive other processes.
- `sample(registry, name, **labels)`: a metric's value as Prometheus exposes it.
- `ExecutionRecorder`: an execution sink that keeps every event and waits for one.
- `RECORDING_INSTRUMENT`: the instrument of the small live recordings the calibration tests
  write (a 0.01 tick, 0.001 lot spot market).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry

from mm_daemon.core.types import ExecutionEvent, Fill, OrderStatus, OrderUpdate

T = TypeVar("T")

RECORDING_INSTRUMENT = {
    "venue": "sim-spot",
    "symbol": "X/USDT",
    "exchange_symbol": "XUSDT",
    "kind": "spot",
    "base": "X",
    "quote": "USDT",
    "tick_size": 0.01,
    "lot_size": 0.001,
}


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.0,
    what: str = "condition",
) -> T:
    """The first truthy result of `probe()`, asked again every `interval_s` (0: every loop
    turn); fails with `what` when `timeout_s` passes first."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]  an awaited T
        if loop.time() > end:
            pytest.fail(f"{what}: not reached within {timeout_s:g} s")
        await asyncio.sleep(interval_s)


def poll(
    probe: Callable[[], T | None], *, deadline_seconds: float, interval_seconds: float, what: str
) -> T:
    """Call `probe` until it returns something other than None; fail at the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {deadline_seconds:g} s")
        time.sleep(interval_seconds)


def sample(
    registry: CollectorRegistry, name: str, *, default: float | None = None, **labels: str
) -> float:
    """The value of one sample (`mm_fills_total`, labels as keywords). A missing sample fails
    the test unless a `default` says what its absence means (a counter never incremented)."""
    value = registry.get_sample_value(name, labels)
    if value is None:
        if default is None:
            pytest.fail(f"no sample {name}{labels or ''} in the registry")
        return default
    return value


class ExecutionRecorder:
    """An `ExecutionSink` that records every event; `wait_for` waits for a matching one."""

    def __init__(self) -> None:
        self.items: list[ExecutionEvent] = []
        self.listeners: list[Callable[[ExecutionEvent], None]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ExecutionEvent) -> None:
        self.items.append(event)
        for listener in self.listeners:
            listener(event)
        self._changed.set()

    async def wait_for(
        self, match: Callable[[ExecutionEvent], bool], timeout_s: float = 10.0
    ) -> ExecutionEvent:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.items:
                    if match(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    async def update(self, client_id: str, status: OrderStatus) -> OrderUpdate:
        event = await self.wait_for(
            lambda e: (
                isinstance(e, OrderUpdate) and e.client_order_id == client_id and e.status is status
            )
        )
        assert isinstance(event, OrderUpdate)
        return event

    async def fill(self, client_id: str | None = None) -> Fill:
        event = await self.wait_for(
            lambda e: isinstance(e, Fill) and client_id in (None, e.client_order_id)
        )
        assert isinstance(event, Fill)
        return event

    def updates(self, client_id: str) -> list[OrderStatus]:
        return [
            e.status
            for e in self.items
            if isinstance(e, OrderUpdate) and e.client_order_id == client_id
        ]
