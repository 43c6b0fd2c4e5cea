"""Fault injection state of one simulator venue.

Faults are applied by the venue's streams and REST layer: `disconnect` drops every websocket
(abruptly, as a network failure), `gap` skips the next `count` depth messages (the update ids
they carried never reach the client, so its book must resync), `stall` stops every stream for
`seconds` (frames produced meanwhile are dropped, as after a real outage), `delay` holds every
frame for `seconds` before delivering it, `http_error` answers REST with 429 + Retry-After
(`count` 429, the default) or with that 5xx status (`count` 500..599) for `seconds`,
`reject_orders` rejects the next `count` orders, `halt` stops trading for `seconds` (0: until
a `resume`), `resume` ends a halt. Every query takes the current time in ns (no clock here).

A venue lists several symbols: `gap`, `stall`, `halt`, `resume` and `reject_orders` may name
one (`symbol`, the venue's id such as ETHUSDT) and then touch only its streams or orders; without
one, `gap`, `stall`, `halt` and `resume` apply to every symbol (each skips its next `count`
depth messages) and `reject_orders` rejects the venue's next `count` orders whatever their
symbol. `disconnect`, `delay` and `http_error` act on connections and REST: the whole venue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["FAULT_KINDS", "SYMBOL_FAULT_KINDS", "FaultKind", "FaultSpec", "FaultState"]

FaultKind = Literal[
    "disconnect", "gap", "stall", "delay", "http_error", "reject_orders", "halt", "resume"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
SYMBOL_FAULT_KINDS = frozenset({"gap", "stall", "halt", "resume", "reject_orders"})
"""The faults that may name a symbol (the others act on the whole venue)."""
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: FaultKind
    seconds: float = 0.0
    count: int = 1
    symbol: str | None = None  # the venue's id of the one symbol it touches, e.g. ETHUSDT

    def __post_init__(self) -> None:
        if self.symbol is not None and self.kind not in SYMBOL_FAULT_KINDS:
            raise ValueError(f"{self.kind} acts on the whole venue: it takes no symbol")

    @classmethod
    def parse(cls, data: object) -> FaultSpec:
        """Validate the JSON body of `POST /admin/faults`; raises ValueError naming the problem."""
        if not isinstance(data, dict):
            raise TypeError("body must be a JSON object with kind, seconds, count, symbol")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        seconds = data.get("seconds", 0.0)
        count = data.get("count", 1)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("seconds must be a number >= 0")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("count must be an integer >= 0")
        symbol = data.get("symbol")
        if symbol is not None and (not isinstance(symbol, str) or not symbol):
            raise ValueError("symbol must be the venue's id of a symbol, e.g. ETHUSDT")
        return cls(kind, float(seconds), count, symbol.upper() if symbol else None)


class FaultState:
    """Which faults are active; every query takes the current time in ns."""

    __slots__ = (
        "_halt_until_ns",
        "_http_status",
        "_http_until_ns",
        "delay_ns",
        "delay_until_ns",
        "gaps_pending",
        "rejects_pending",
        "stall_until_ns",
    )

    def __init__(self) -> None:
        self.gaps_pending = 0
        self.rejects_pending = 0
        self.delay_ns = 0
        self.delay_until_ns = 0
        self.stall_until_ns = 0
        self._http_until_ns = 0
        self._http_status = 429
        self._halt_until_ns = 0

    def apply(self, spec: FaultSpec, now_ns: int) -> None:
        """Record a fault (disconnect is carried out by the venue itself)."""
        until = now_ns + int(spec.seconds * _NS)
        if spec.kind == "gap":
            self.gaps_pending += max(1, spec.count)
        elif spec.kind == "reject_orders":
            self.rejects_pending += max(1, spec.count)
        elif spec.kind == "stall":
            self.stall_until_ns = max(self.stall_until_ns, until)
        elif spec.kind == "delay":
            self.delay_ns = int(spec.seconds * _NS)
            self.delay_until_ns = until
        elif spec.kind == "http_error":
            self._http_until_ns = until
            self._http_status = spec.count if 500 <= spec.count <= 599 else 429
        elif spec.kind == "halt":
            # seconds 0 halts until a `resume`
            self._halt_until_ns = until if spec.seconds > 0 else 2**62
        elif spec.kind == "resume":
            self._halt_until_ns = 0

    def stalled(self, now_ns: int) -> bool:
        return now_ns < self.stall_until_ns

    def delayed(self, now_ns: int) -> bool:
        return now_ns < self.delay_until_ns

    def http_error(self, now_ns: int) -> tuple[int, float] | None:
        """(status, retry_after_seconds) while REST answers errors, else None."""
        if now_ns < self._http_until_ns:
            return self._http_status, (self._http_until_ns - now_ns) / _NS
        return None

    def halted(self, now_ns: int) -> bool:
        return now_ns < self._halt_until_ns

    def take_gap(self) -> bool:
        """True (and one less pending) when the next depth message must be skipped."""
        if self.gaps_pending:
            self.gaps_pending -= 1
            return True
        return False

    def take_reject(self) -> bool:
        if self.rejects_pending:
            self.rejects_pending -= 1
            return True
        return False

    def snapshot(self, now_ns: int) -> dict[str, object]:
        return {
            "gaps_pending": self.gaps_pending,
            "rejects_pending": self.rejects_pending,
            "stalled": self.stalled(now_ns),
            "delayed": self.delayed(now_ns),
            "http_error": self.http_error(now_ns) is not None,
            "halted": self.halted(now_ns),
        }
