"""Binance's rate limits as the protocol states them, shared by the client and the simulator.

What follows is from Binance's API docs (spot: `rest-api.md` "LIMITS", `web-socket-api.md`
"Rate limits", `faqs/order_count_decrement.md`; USD-M futures: "General Info" and each
endpoint's "Request Weight"):

- Limits come in `exchangeInfo.rateLimits`: `{"rateLimitType": "ORDERS" | "REQUEST_WEIGHT",
  "interval": "SECOND" | "MINUTE" | "HOUR" | "DAY", "intervalNum": n, "limit": l}`. Spot's base
  tier: 100 orders per 10 s and 200,000 per day per account, 6,000 weight per minute per IP;
  USD-M: 300 orders per 10 s and 1,200 per minute per account, 2,400 weight per minute per IP.
- Intervals are fixed: "a 1 MINUTE interval starts every minute ... 1 DAY rate limit resets at
  00:00 UTC every day, and 10 SECOND interval resets at 00, 10, 20... seconds of each minute".
- Spot's ORDERS limit counts *unfilled* orders: "Every successful request to place an order adds
  to the unfilled order count for the current time interval"; "When an order is filled for the
  first time (partially or fully), your unfilled order count is decremented by one order for all
  intervals of the ORDERS rate limit". A cancel is not an order. `order.place` and
  `order.cancelReplace` cost 1 weight and 1 order, `order.cancel` 1 weight.
- USD-M: a new order and a modify cost "1 on 10s order rate limit(X-MBX-ORDER-COUNT-10S); 1 on
  1min order rate limit(X-MBX-ORDER-COUNT-1M); 0 on IP rate limit(x-mbx-used-weight-1m)"; a
  cancel costs 1 weight.
- Usage comes back in every answer: the WS-API's `rateLimits` array (the limits "affected by the
  request", each with its `count`), REST's `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`
  header on every response and `X-MBX-ORDER-COUNT-(intervalNum)(intervalLetter)` on successful
  order responses (interval letters S, M, H, D).
- A breach answers HTTP 429: `-1015` "Too many new orders; current limit is %s orders per %s."
  for the order count, `-1003` for weight; "A Retry-After header is sent with a 418 or 429
  responses and will give the number of seconds required to wait" (the WS-API puts
  `retryAfter`, a time in ms, in the error's `data`). "Repeatedly violating rate limits and/or
  failing to back off after receiving 429s will result in an automated IP ban (HTTP status
  418)", from 2 minutes to 3 days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mm_daemon.binance.markets import Dialect
from mm_daemon.core.budget import ActionCost, LimitKind, RateLimit

__all__ = [
    "BAN_CODE",
    "DEFAULT_RATE_LIMITS",
    "INTERVAL_SECONDS",
    "INVALID_TIMESTAMP",
    "ORDER_COSTS",
    "ORDER_METHODS",
    "REST_ORDER_ENDPOINTS",
    "REST_WEIGHTS",
    "TOO_MANY_ORDERS",
    "TOO_MANY_REQUESTS",
    "WS_API_WEIGHTS",
    "OrderCosts",
    "Weight",
    "default_rate_limits",
    "header_name",
    "interval_ns",
    "rate_limit_json",
    "rate_limits_from_json",
    "request_weight",
    "usage_from_headers",
    "usage_from_json",
]

_NS = 1_000_000_000
INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3_600, "DAY": 86_400}
_LETTERS = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}
_KINDS = {"ORDERS": LimitKind.ORDERS, "REQUEST_WEIGHT": LimitKind.REQUEST_WEIGHT}
_TYPES = {kind: name for name, kind in _KINDS.items()}

TOO_MANY_ORDERS = -1015  # "Too many new orders; current limit is %s orders per %s."
TOO_MANY_REQUESTS = -1003  # "Too much request weight used; ..." (and the ban's message)
INVALID_TIMESTAMP = -1021  # "Timestamp for this request is outside of the recvWindow."
BAN_CODE = 418  # the HTTP status of an IP auto-banned for ignoring 429s


def _limits(*rows: tuple[str, str, int, int]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}
        for kind, interval, num, limit in rows
    )


DEFAULT_RATE_LIMITS: dict[Dialect, tuple[dict[str, Any], ...]] = {
    "spot": _limits(
        ("REQUEST_WEIGHT", "MINUTE", 1, 6_000),
        ("ORDERS", "SECOND", 10, 100),
        ("ORDERS", "DAY", 1, 200_000),
    ),
    "usdm": _limits(
        ("REQUEST_WEIGHT", "MINUTE", 1, 2_400),
        ("ORDERS", "MINUTE", 1, 1_200),
        ("ORDERS", "SECOND", 10, 300),
    ),
}
"""`exchangeInfo.rateLimits` at the base tier of each dialect (what the simulator publishes and
what the client assumes until the venue says otherwise)."""


def default_rate_limits(dialect: Dialect) -> tuple[RateLimit, ...]:
    return rate_limits_from_json(DEFAULT_RATE_LIMITS[dialect])


@dataclass(frozen=True, slots=True)
class OrderCosts:
    """What each order-entry action costs on a dialect (see the module docstring)."""

    place: ActionCost
    replace: ActionCost
    cancel: ActionCost
    query: ActionCost


ORDER_COSTS: dict[Dialect, OrderCosts] = {
    # Spot: a cancel-replace is one message (1 weight, 1 order); openOrders.status of one
    # symbol weighs 6.
    "spot": OrderCosts(ActionCost(1, 1), ActionCost(1, 1), ActionCost(0, 1), ActionCost(0, 6)),
    # USD-M: a replace is a cancel (1 weight) and a new order (1 order, no weight).
    "usdm": OrderCosts(ActionCost(1, 0), ActionCost(1, 1), ActionCost(0, 1), ActionCost(0, 1)),
}

ORDER_METHODS = frozenset({"order.place", "order.cancelReplace", "order.modify"})
"""WS-API methods that place an order (they count toward the ORDERS limits)."""


def _depth_weight_spot(params: Mapping[str, str]) -> int:
    # Binance: "Adjusted based on the limit", 5 up to 100, 25 to 500, 50 to 1000, then 250.
    limit = _int(params.get("limit"), 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _depth_weight_usdm(params: Mapping[str, str]) -> int:
    # USD-M order book: limit 5, 10, 20, 50: 2; 100: 5; 500: 10; 1000: 20.
    limit = _int(params.get("limit"), 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _open_orders_weight(one: int, every: int) -> Callable[[Mapping[str, str]], int]:
    return lambda params: one if params.get("symbol") else every


def _trades_weight(params: Mapping[str, str]) -> int:
    # Spot account trade list: 20, or 5 with orderId.
    return 5 if params.get("orderId") else 20


Weight = int | Callable[[Mapping[str, str]], int]

WS_API_WEIGHTS: dict[Dialect, dict[str, Weight]] = {
    "spot": {
        "ping": 1,
        "time": 1,
        "exchangeInfo": 20,
        "depth": _depth_weight_spot,
        "order.place": 1,
        "order.cancel": 1,
        "order.cancelReplace": 1,
        "order.status": 4,
        "openOrders.status": _open_orders_weight(6, 80),
        "openOrders.cancelAll": 1,
        "account.status": 20,
        "myTrades": _trades_weight,
        "userDataStream.subscribe.signature": 2,
        "userDataStream.unsubscribe": 2,
    },
    "usdm": {
        "ping": 1,
        "time": 1,
        "depth": _depth_weight_usdm,
        "order.place": 0,
        "order.modify": 0,
        "order.cancel": 1,
        "order.status": 1,
        "openOrders.status": _open_orders_weight(1, 40),
        "account.status": 5,
        "account.position": 5,
    },
}
"""Request weight of each WS-API method (spot: `web-socket-api.md`)."""

REST_WEIGHTS: dict[Dialect, dict[tuple[str, str], Weight]] = {
    "spot": {
        ("GET", "/api/v3/ping"): 1,
        ("GET", "/api/v3/time"): 1,
        ("GET", "/api/v3/exchangeInfo"): 20,
        ("GET", "/api/v3/depth"): _depth_weight_spot,
        ("POST", "/api/v3/order"): 1,
        ("GET", "/api/v3/order"): 4,
        ("DELETE", "/api/v3/order"): 1,
        ("POST", "/api/v3/order/cancelReplace"): 1,
        ("GET", "/api/v3/openOrders"): _open_orders_weight(6, 80),
        ("DELETE", "/api/v3/openOrders"): 1,
        ("GET", "/api/v3/account"): 20,
        ("GET", "/api/v3/myTrades"): _trades_weight,
    },
    "usdm": {
        ("GET", "/fapi/v1/ping"): 1,
        ("GET", "/fapi/v1/time"): 1,
        ("GET", "/fapi/v1/exchangeInfo"): 1,
        ("GET", "/fapi/v1/depth"): _depth_weight_usdm,
        ("POST", "/fapi/v1/order"): 0,
        ("PUT", "/fapi/v1/order"): 0,
        ("GET", "/fapi/v1/order"): 1,
        ("DELETE", "/fapi/v1/order"): 1,
        ("GET", "/fapi/v1/openOrders"): _open_orders_weight(1, 40),
        ("DELETE", "/fapi/v1/allOpenOrders"): 1,
        ("GET", "/fapi/v1/userTrades"): 5,
    },
}
"""Request weight of REST endpoints (others weigh 1, USD-M account endpoints 5)."""

REST_ORDER_ENDPOINTS = frozenset(
    {
        ("POST", "/api/v3/order"),
        ("POST", "/api/v3/order/cancelReplace"),
        ("POST", "/fapi/v1/order"),
        ("PUT", "/fapi/v1/order"),
    }
)
"""REST endpoints that place an order (they count toward the ORDERS limits)."""


def request_weight(weight: Weight | None, params: Mapping[str, str], default: int = 1) -> int:
    if weight is None:
        return default
    return weight(params) if callable(weight) else weight


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def interval_ns(interval: str, num: int) -> int:
    """The length of `num` `interval`s (SECOND, MINUTE, HOUR, DAY) in ns."""
    return INTERVAL_SECONDS[interval] * num * _NS


def header_name(rate_limit: RateLimit) -> str:
    """`X-MBX-ORDER-COUNT-10S`, `X-MBX-USED-WEIGHT-1M`: the header carrying its usage."""
    seconds = rate_limit.interval_ns // _NS
    for name, unit in sorted(INTERVAL_SECONDS.items(), key=lambda kv: -kv[1]):
        if seconds % unit == 0:
            suffix = f"{seconds // unit}{_LETTERS[name]}"
            break
    prefix = "X-MBX-ORDER-COUNT-" if rate_limit.kind is LimitKind.ORDERS else "X-MBX-USED-WEIGHT-"
    return prefix + suffix


def _interval_of(rate_limit: RateLimit) -> tuple[str, int]:
    seconds = rate_limit.interval_ns // _NS
    for name, unit in sorted(INTERVAL_SECONDS.items(), key=lambda kv: -kv[1]):
        if seconds % unit == 0:
            return name, seconds // unit
    return "SECOND", seconds


def rate_limit_json(rate_limit: RateLimit, count: int | None = None) -> dict[str, Any]:
    """One `rateLimits` entry (with `count` in an answer, without in exchangeInfo)."""
    interval, num = _interval_of(rate_limit)
    entry: dict[str, Any] = {
        "rateLimitType": _TYPES[rate_limit.kind],
        "interval": interval,
        "intervalNum": num,
        "limit": rate_limit.limit,
    }
    if count is not None:
        entry["count"] = count
    return entry


def _rate_limit(entry: Any) -> RateLimit | None:
    if not isinstance(entry, Mapping):
        return None
    kind = _KINDS.get(str(entry.get("rateLimitType")))
    interval = str(entry.get("interval"))
    if kind is None or interval not in INTERVAL_SECONDS:
        return None
    try:
        num = int(entry.get("intervalNum", 1))
        limit = int(entry.get("limit", 0))
    except (TypeError, ValueError):
        return None
    if num <= 0 or limit <= 0:
        return None
    return RateLimit(kind, interval_ns(interval, num), limit)


def rate_limits_from_json(entries: Iterable[Any]) -> tuple[RateLimit, ...]:
    """The limits of an `exchangeInfo.rateLimits` array (RAW_REQUESTS and unknown ones left
    out)."""
    out = [limit for limit in map(_rate_limit, entries) if limit is not None]
    return tuple(out)


def usage_from_json(entries: Any) -> list[tuple[RateLimit, int]]:
    """(limit, count) of each entry of a WS-API answer's `rateLimits`; malformed ones skipped."""
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        limit = _rate_limit(entry)
        if limit is None:
            continue
        try:
            count = int(entry["count"])
        except (KeyError, TypeError, ValueError):
            continue
        out.append((limit, count))
    return out


def usage_from_headers(
    headers: Mapping[str, str], limits: Iterable[RateLimit]
) -> list[tuple[RateLimit, int]]:
    """(limit, count) of each of `limits` whose usage header a REST answer carries."""
    lowered = {k.lower(): v for k, v in headers.items()}
    out = []
    for limit in limits:
        raw = lowered.get(header_name(limit).lower())
        if raw is None:
            continue
        try:
            out.append((limit, int(raw)))
        except ValueError:
            continue
    return out
