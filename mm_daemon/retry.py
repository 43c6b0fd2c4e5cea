"""One reconnect policy for every loop that retries: exponential backoff with jitter.

Each delay is the current backoff times a jitter drawn from [0.5, 1.5) (spreads reconnects of
many streams apart after a venue-wide drop), and the backoff doubles up to its cap after every
failure. A run that stayed healthy for `healthy_after_s` (or a call to `reset`) starts over at
the initial delay, so a stream that fails once an hour is retried at once, not after minutes.

A policy of our own instead of tenacity or backoff: every loop here retries forever (a stream
never takes the daemon down), treats a stream that ends normally as a failure too, resets on
a healthy run, and sleeps on the running loop's clock so replays in virtual time retry in
virtual time; those libraries' decorators fit one-shot calls that give up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_s: float = 0.1
    max_s: float = 5.0
    healthy_after_s: float | None = None  # default: ten times the cap

    def start(self, rng: Callable[[], float] = random.random) -> Backoff:
        return Backoff(self, rng)


class Backoff:
    """The state of one retrying loop under a `BackoffPolicy`."""

    __slots__ = ("_current", "_healthy_ns", "_policy", "_rng", "_started_ns", "failures")

    def __init__(self, policy: BackoffPolicy, rng: Callable[[], float] = random.random) -> None:
        self._policy = policy
        self._rng = rng
        self._current = policy.initial_s
        healthy = policy.healthy_after_s
        if healthy is None:
            healthy = policy.max_s * 10
        self._healthy_ns = int(healthy * 1e9)
        self._started_ns = time.monotonic_ns()
        self.failures = 0

    def attempt(self) -> None:
        """An attempt starts now (a connect, a run of a stream)."""
        self._started_ns = time.monotonic_ns()

    def reset(self) -> None:
        """The last attempt succeeded: the next failure waits the initial delay again."""
        self._current = self._policy.initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt, after a failure (or the end of a run)."""
        if time.monotonic_ns() - self._started_ns > self._healthy_ns:
            self.reset()  # it had been healthy for a long while
        delay = self._current * (0.5 + self._rng())
        self._current = min(self._policy.max_s, self._current * 2)
        self.failures += 1
        return delay

    async def sleep(self) -> float:
        """Wait `next_delay()` on the running loop's clock; returns the delay waited."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
