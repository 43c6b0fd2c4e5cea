"""Token bucket for order actions on one venue (the venue's limits, enforced on our side).

Time comes in as ns arguments, so tests drive it with explicit times.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]

_NS = 1_000_000_000


class TokenBucket:
    """`burst` tokens at most, refilled at `rate_per_second`; one order action costs one token."""

    __slots__ = ("_last_ns", "_tokens", "burst", "rate_per_second")

    def __init__(self, rate_per_second: float, burst: int, now_ns: int = 0) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be positive and burst at least 1")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._tokens = float(burst)
        self._last_ns = now_ns

    def _refill(self, now_ns: int) -> None:
        elapsed = now_ns - self._last_ns
        if elapsed > 0:
            self._tokens = min(
                float(self.burst), self._tokens + elapsed * self.rate_per_second / _NS
            )
            self._last_ns = now_ns

    def available(self, now_ns: int) -> float:
        self._refill(now_ns)
        return self._tokens

    def try_take(self, now_ns: int, tokens: int = 1) -> bool:
        """Take `tokens` if the bucket holds them now; False (and take nothing) otherwise."""
        self._refill(now_ns)
        if self._tokens + 1e-9 >= tokens:
            self._tokens -= tokens
            return True
        return False

    def ns_until(self, now_ns: int, tokens: int = 1) -> int:
        """Time until `tokens` are available (0 if they are now)."""
        self._refill(now_ns)
        missing = tokens - self._tokens
        if missing <= 1e-9:
            return 0
        return int(missing * _NS / self.rate_per_second) + 1
