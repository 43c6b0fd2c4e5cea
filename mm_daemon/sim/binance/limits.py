"""Binance's rate limits, enforced by the simulated venue as Binance's API docs state them (the
rules themselves are quoted in `mm_daemon.binance.limits`):

- ORDERS, per account (API key here): every order placed successfully adds one to the count of
  each ORDERS window; on spot, an order's first fill (partial or full) takes one back ("When an
  order is filled for the first time ... your unfilled order count is decremented by one order
  for all intervals of the ORDERS rate limit"); a cancel is no order. A new order past a limit
  answers `-1015` "Too many new orders; current limit is %s orders per %s." with HTTP 429.
- REQUEST_WEIGHT, per IP: every request adds its weight (the endpoint's, from the docs); past the
  limit `-1003` with HTTP 429.
- Windows are fixed on the venue's clock (10 s windows start at :00, :10, ...; a day at 00:00
  UTC). A 429 says how long to wait: the `Retry-After` header (seconds) on REST, `retryAfter`
  (a time in ms) in the WS-API error's `data`: the end of the window that was exceeded.
- "Repeatedly violating rate limits and/or failing to back off after receiving 429s will result
  in an automated IP ban (HTTP status 418)", "from 2 minutes to 3 days": here, the
  `BAN_AFTER_IGNORED`-th request answered 429 while an earlier 429's wait is still running bans
  the IP for `BAN_SECONDS`; a banned IP gets `-1003` "Way too much request weight used; IP banned
  until %s." with 418 for every request until then.
- Usage goes back with every answer: the WS-API `rateLimits` array (the REQUEST_WEIGHT window,
  and the ORDERS windows for an order request), REST `X-MBX-USED-WEIGHT-1M` on every response and
  `X-MBX-ORDER-COUNT-*` on successful order responses.

Requests of the simulator's own market flow do not go through the wire, so they are not counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mm_daemon.binance.limits import (
    BAN_CODE,
    DEFAULT_RATE_LIMITS,
    ORDER_METHODS,
    TOO_MANY_ORDERS,
    TOO_MANY_REQUESTS,
    WS_API_WEIGHTS,
    header_name,
    rate_limit_json,
    request_weight,
)
from mm_daemon.core.budget import LimitKind, RateLimit
from mm_daemon.sim.binance.common import BinanceError
from mm_daemon.sim.matching import ExecType

if TYPE_CHECKING:
    from mm_daemon.binance.markets import Dialect
    from mm_daemon.config import SimLimitsConfig
    from mm_daemon.sim.matching import ExecutionReport
    from mm_daemon.sim.venue import SimVenue

__all__ = [
    "BAN_AFTER_IGNORED",
    "BAN_SECONDS",
    "RateLimiter",
    "WsApiLimits",
    "published_rate_limits",
    "rate_limiter",
]

_MS_PER_NS = 1_000_000
_NS = 1_000_000_000
BAN_AFTER_IGNORED = 5
BAN_SECONDS = 120  # Binance's shortest ban: 2 minutes


@dataclass(slots=True)
class _Windows:
    """One account's (or IP's) count in the current window of each limit."""

    limits: tuple[RateLimit, ...]
    starts: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.starts = [-1] * len(self.limits)
        self.counts = [0] * len(self.limits)

    def roll(self, now_ms: int) -> None:
        for i, limit in enumerate(self.limits):
            interval_ms = limit.interval_ns // _MS_PER_NS
            start = now_ms - now_ms % interval_ms
            if start != self.starts[i]:
                self.starts[i] = start
                self.counts[i] = 0

    def end_ms(self, index: int) -> int:
        return self.starts[index] + self.limits[index].interval_ns // _MS_PER_NS

    def pairs(self) -> list[tuple[RateLimit, int]]:
        return list(zip(self.limits, self.counts, strict=True))


@dataclass(slots=True)
class _Backoff:
    until_ms: int = 0  # the wait of the latest 429
    ignored: int = 0  # requests answered 429 again before it ran out
    banned_until_ms: int = 0


def _interval_text(limit: RateLimit) -> str:
    entry = rate_limit_json(limit)
    return f"{entry['intervalNum']} {entry['interval']}"


class RateLimiter:
    """The rate limits of one simulated venue (see the module docstring)."""

    def __init__(self, limits: tuple[RateLimit, ...], *, decrement_on_fill: bool) -> None:
        self.order_limits = tuple(lim for lim in limits if lim.kind is LimitKind.ORDERS)
        self.weight_limits = tuple(lim for lim in limits if lim.kind is LimitKind.REQUEST_WEIGHT)
        self.decrement_on_fill = decrement_on_fill
        self._orders: dict[str, _Windows] = {}
        self._weight: dict[str, _Windows] = {}
        self._backoff: dict[str, _Backoff] = {}
        self._filled: set[tuple[str, int]] = set()  # (api key, order id) already given back
        self.errors: Counter[str] = Counter()  # limit errors answered, by kind
        """`orders` (-1015), `weight` (-1003, 429) and `banned` (418)."""

    # -- checks ------------------------------------------------------------------------------

    def charge_weight(self, ip: str, weight: int, now_ms: int) -> None:
        """Count a request of `weight` from `ip`; raise the venue's answer past a limit."""
        backoff = self._backoff.get(ip)
        if backoff is not None and now_ms < backoff.banned_until_ms:
            self.errors["banned"] += 1
            until = backoff.banned_until_ms
            raise BinanceError(
                TOO_MANY_REQUESTS,
                f"Way too much request weight used; IP banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans.",
                http_status=BAN_CODE,
                data={"serverTime": now_ms, "retryAfter": until},
                retry_after_s=_seconds(until - now_ms),
            )
        windows = self._windows(self._weight, ip, self.weight_limits, now_ms)
        for i, limit in enumerate(windows.limits):
            windows.counts[i] += weight
            if windows.counts[i] > limit.limit:
                raise self._refusal(
                    ip,
                    "weight",
                    TOO_MANY_REQUESTS,
                    f"Too much request weight used; current limit is {limit.limit} request "
                    f"weight per {_interval_text(limit)}. Please use WebSocket Streams for live "
                    "updates to avoid polling the API.",
                    until_ms=windows.end_ms(i),
                    now_ms=now_ms,
                )

    def reserve_order(self, api_key: str, ip: str, now_ms: int) -> None:
        """Count a new order of `api_key` before it reaches the matching engine (it may fill
        at once, and its first fill gives it back), or raise -1015 past an ORDERS limit."""
        self.check_order(api_key, ip, now_ms)
        self.count_order(api_key, now_ms, 1)

    def release_order(self, api_key: str, now_ms: int) -> None:
        """The order counted by `reserve_order` was refused: it does not count."""
        self.count_order(api_key, now_ms, -1)

    def check_order(self, api_key: str, ip: str, now_ms: int) -> None:
        """Raise -1015 if one more order of `api_key` would pass an ORDERS limit."""
        windows = self._windows(self._orders, api_key, self.order_limits, now_ms)
        for i, limit in enumerate(windows.limits):
            if windows.counts[i] + 1 > limit.limit:
                raise self._refusal(
                    ip,
                    "orders",
                    TOO_MANY_ORDERS,
                    f"Too many new orders; current limit is {limit.limit} orders per "
                    f"{_interval_text(limit)}.",
                    until_ms=windows.end_ms(i),
                    now_ms=now_ms,
                )

    def count_order(self, api_key: str, now_ms: int, orders: int = 1) -> None:
        windows = self._windows(self._orders, api_key, self.order_limits, now_ms)
        for i in range(len(windows.counts)):
            windows.counts[i] = max(0, windows.counts[i] + orders)

    def on_reports(self, reports: list[ExecutionReport], now_ms: int) -> None:
        """Spot: an order's first fill takes it out of its account's unfilled order count."""
        if not self.decrement_on_fill:
            return
        for report in reports:
            if report.exec_type is not ExecType.TRADE:
                continue
            key = (report.api_key, report.order_id)
            if key in self._filled or report.api_key not in self._orders:
                continue
            self._filled.add(key)
            if len(self._filled) > 100_000:
                self._filled.clear()  # bounded; an order's later fills are rare by then
                self._filled.add(key)
            windows = self._windows(self._orders, report.api_key, self.order_limits, now_ms)
            for i in range(len(windows.counts)):
                windows.counts[i] = max(0, windows.counts[i] - 1)

    # -- what answers carry ---------------------------------------------------------------------

    def usage_json(
        self, api_key: str | None, ip: str, now_ms: int, *, orders: bool
    ) -> list[dict[str, Any]]:
        """The `rateLimits` of an answer: the ORDERS windows of an order request, then the
        REQUEST_WEIGHT window."""
        out: list[dict[str, Any]] = []
        if orders and api_key is not None:
            windows = self._windows(self._orders, api_key, self.order_limits, now_ms)
            out.extend(rate_limit_json(lim, n) for lim, n in windows.pairs())
        windows = self._windows(self._weight, ip, self.weight_limits, now_ms)
        out.extend(rate_limit_json(lim, n) for lim, n in windows.pairs())
        return out

    def usage_headers(
        self, api_key: str | None, ip: str, now_ms: int, *, orders: bool
    ) -> dict[str, str]:
        """REST's usage headers: the used weight always, the order counts on an order."""
        headers = {}
        windows = self._windows(self._weight, ip, self.weight_limits, now_ms)
        for limit, count in windows.pairs():
            headers[header_name(limit)] = str(count)
        if orders and api_key is not None:
            windows = self._windows(self._orders, api_key, self.order_limits, now_ms)
            for limit, count in windows.pairs():
                headers[header_name(limit)] = str(count)
        return headers

    # -- internals ------------------------------------------------------------------------------

    def _windows(
        self, table: dict[str, _Windows], key: str, limits: tuple[RateLimit, ...], now_ms: int
    ) -> _Windows:
        windows = table.get(key)
        if windows is None:
            windows = table[key] = _Windows(limits)
        windows.roll(now_ms)
        return windows

    def _refusal(
        self, ip: str, kind: str, code: int, msg: str, *, until_ms: int, now_ms: int
    ) -> BinanceError:
        """A 429 (and its count toward a ban): wait until `until_ms`."""
        self.errors[kind] += 1
        backoff = self._backoff.setdefault(ip, _Backoff())
        if now_ms < backoff.until_ms:
            backoff.ignored += 1
            if backoff.ignored >= BAN_AFTER_IGNORED:
                backoff.banned_until_ms = now_ms + BAN_SECONDS * 1000
                backoff.ignored = 0
        else:
            backoff.ignored = 0
        backoff.until_ms = max(backoff.until_ms, until_ms)
        return BinanceError(
            code,
            msg,
            http_status=429,
            data={"serverTime": now_ms, "retryAfter": until_ms},
            retry_after_s=_seconds(until_ms - now_ms),
        )

    def limit_errors(self) -> int:
        """Every limit error answered (429s and 418s)."""
        return sum(self.errors.values())


class WsApiLimits:
    """The rate-limit steps of one WS-API request: its weight first, then (an order method,
    once the request is authenticated) the order count, and the usage its answer carries."""

    __slots__ = ("_api_key", "_ip", "_limiter", "_method", "_params", "_venue", "orders")

    def __init__(self, venue: SimVenue, ip: str, method: str, params: Any) -> None:
        self._venue = venue
        self._limiter = venue.limiter
        self._ip = ip
        self._method = method
        self._params = (
            {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
        )
        self._api_key: str | None = None
        self.orders = method in ORDER_METHODS

    def before(self) -> None:
        if self._limiter is not None:
            weight = WS_API_WEIGHTS[self._venue.dialect].get(self._method)
            self._limiter.charge_weight(
                self._ip, request_weight(weight, self._params), self._venue.now_ms()
            )

    def before_order(self, api_key: str) -> None:
        self._api_key = api_key
        if self.orders and self._limiter is not None:
            self._limiter.reserve_order(api_key, self._ip, self._venue.now_ms())

    def refused(self) -> None:
        """The order request was refused: its reserved order does not count."""
        if self.orders and self._limiter is not None and self._api_key is not None:
            self._limiter.release_order(self._api_key, self._venue.now_ms())

    def usage(self) -> list[dict[str, Any]]:
        if self._limiter is None:
            return []
        return self._limiter.usage_json(
            self._api_key, self._ip, self._venue.now_ms(), orders=self.orders
        )


def rate_limiter(dialect: Dialect, config: SimLimitsConfig) -> RateLimiter:
    """The limiter of a venue of `dialect` with the configured limits."""
    minute, second = 60 * _NS, _NS
    if dialect == "spot":
        limits = (
            RateLimit(LimitKind.REQUEST_WEIGHT, minute, config.spot_request_weight_per_minute),
            RateLimit(LimitKind.ORDERS, 10 * second, config.spot_orders_per_10_seconds),
            RateLimit(LimitKind.ORDERS, 86_400 * second, config.spot_orders_per_day),
        )
        # Only spot documents the decrement of filled orders.
        return RateLimiter(limits, decrement_on_fill=True)
    limits = (
        RateLimit(LimitKind.REQUEST_WEIGHT, minute, config.perp_request_weight_per_minute),
        RateLimit(LimitKind.ORDERS, minute, config.perp_orders_per_minute),
        RateLimit(LimitKind.ORDERS, 10 * second, config.perp_orders_per_10_seconds),
    )
    return RateLimiter(limits, decrement_on_fill=False)


def published_rate_limits(limiter: RateLimiter | None, dialect: Dialect) -> list[dict[str, Any]]:
    """`exchangeInfo.rateLimits` of a venue: the limits it enforces (or Binance's base tier)."""
    if limiter is None:
        return [dict(entry) for entry in DEFAULT_RATE_LIMITS[dialect]]
    return [rate_limit_json(lim) for lim in (*limiter.weight_limits, *limiter.order_limits)]


def _seconds(ms: int) -> int:
    return max(1, -(-ms // 1000))
