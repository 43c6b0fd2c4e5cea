"""Where and how the daemon's event loop runs: core placement and busy polling.

A loop that sleeps in the kernel between events pays twice when the next frame comes: the wake
of an idle core (100 us and more on a virtual machine) and caches that the rest of the machine
has taken meanwhile, which makes the first microseconds of handling a frame several times
slower than in a tight loop. Busy polling keeps the loop turning: the kernel is asked for ready
sockets without waiting, so a frame is read as it lands and handled on warm caches. The price
is a whole core, all the time: give the daemon a core of its own with `cpu_affinity`.
"""

from __future__ import annotations

import asyncio
import os

from mm_daemon.config import ConfigError, RuntimeConfig

__all__ = ["BusyPoll", "apply_cpu_affinity"]


def apply_cpu_affinity(config: RuntimeConfig) -> None:
    """Restrict the process to the configured cores (nothing when the list is empty)."""
    if not config.cpu_affinity:
        return
    wanted = set(config.cpu_affinity)
    available = os.sched_getaffinity(0)
    missing = sorted(wanted - available)
    if missing:
        raise ConfigError(
            [
                f"runtime.cpu_affinity: core {missing[0]} is not available to this process "
                f"(available: {', '.join(map(str, sorted(available)))})"
            ]
        )
    os.sched_setaffinity(0, wanted)


class BusyPoll:
    """Keeps one callback always ready, so the loop polls its sockets without ever blocking.

    With a ready callback the loop's poll for I/O uses a zero timeout: each turn runs what is
    ready, takes whatever the sockets have, and turns again. Timers and I/O work as before.
    """

    __slots__ = ("_handle", "_loop", "_running", "turns")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.Handle | None = None
        self._running = False
        self.turns = 0  # loop turns seen, for tests and the curious

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._handle = self._loop.call_soon(self._turn)

    def stop(self) -> None:
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _turn(self) -> None:
        self.turns += 1
        if self._running:
            self._handle = self._loop.call_soon(self._turn)
