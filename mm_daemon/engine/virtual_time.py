"""An asyncio event loop on virtual time, for replays: waiting costs nothing.

Whenever the loop has nothing ready to run, it would sleep until its next timer; here the clock
jumps to that timer instead. Timers, `asyncio.sleep`, `wait_for` deadlines and the paper
venue's latencies all keep their order and their spacing in virtual time, and a recorded day
runs as fast as the code handling it. The loop does no I/O: a replay feeds recorded frames
from inside the loop, and a wait on anything but a timer (a socket, a future nobody resolves)
ends the run with `VirtualTimeStallError` instead of hanging.

`VirtualClock.now_ns` is the epoch time components read (pass `clock.now_ns` wherever a
`clock` is taken); `loop.time()` is the same time in seconds since the clock's origin, so
timer arithmetic keeps nanosecond precision.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Mapping
from typing import Any

__all__ = ["VirtualClock", "VirtualTimeLoop", "VirtualTimeStallError"]

_NS = 1_000_000_000


class VirtualTimeStallError(RuntimeError):
    """The loop waits on something no timer will ever bring (a deadlock in virtual time)."""


class VirtualClock:
    """Epoch nanoseconds that move only when the loop skips to its next timer or the replay
    sets them forward."""

    __slots__ = ("_now_ns", "origin_ns")

    def __init__(self, origin_ns: int) -> None:
        self.origin_ns = origin_ns
        self._now_ns = origin_ns

    def now_ns(self) -> int:
        return self._now_ns

    def start_at(self, origin_ns: int) -> None:
        """Set the clock to `origin_ns` before the loop runs (a replay's first frame)."""
        self.origin_ns = origin_ns
        self._now_ns = origin_ns

    def advance_to(self, ns: int) -> None:
        """Move forward to `ns` (never back: an earlier time leaves the clock where it is)."""
        self._now_ns = max(self._now_ns, ns)

    def advance_by(self, seconds: float) -> None:
        # Rounded up, so the timer the loop waited for is due once the clock has moved.
        self._now_ns += math.ceil(seconds * _NS)

    def loop_time(self) -> float:
        return (self._now_ns - self.origin_ns) / _NS


class _Registry(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, keys: dict[int, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __getitem__(self, fd: Any) -> selectors.SelectorKey:
        return self._keys[fd]

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _ClockSelector(selectors.BaseSelector):
    """A selector that never reports I/O: a wait of `timeout` moves the clock by it."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise VirtualTimeStallError(
                "nothing is scheduled and the run is not over: a wait that no timer can end"
            )
        if timeout > 0:
            self._clock.advance_by(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return _Registry(self._keys)

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose time is `clock` (see the module docstring)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(_ClockSelector(clock))

    def time(self) -> float:
        return self.clock.loop_time()

    async def wait_until(self, ns: int) -> None:
        """Return at epoch time `ns`, once everything due before it has run: the callbacks
        ready now and every timer up to `ns`, each at its own time.

        What `asyncio.sleep(ns - now)` does, without a timer and a loop turn of its own when
        nothing is due meanwhile (a replay hands over most frames that way). It reads the
        loop's ready queue and timer heap, attributes of asyncio's own loop that this subclass
        relies on (the tests of this module fail if they change).
        """
        target = (ns - self.clock.origin_ns) / _NS
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        while True:
            if scheduled and scheduled[0].when() <= target:
                await asyncio.sleep(max(0.0, target - self.time()))
                break
            if not ready:
                break
            await asyncio.sleep(0)  # the ready callbacks may schedule timers: look again
        self.clock.advance_to(ns)
