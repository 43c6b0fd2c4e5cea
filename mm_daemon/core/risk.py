"""Risk limits: the ACTIVE / REDUCING / HALTED state and pre-trade checks on each order.

Pure: P&L, exposure and fair value come in as arguments.

- ACTIVE: quote both sides.
- REDUCING: |net exposure| is at or past the inventory limit: quote only the side that
  brings it back (the quoter reads the state).
- HALTED: P&L fell more than `max_drawdown_quote` below its running peak (when
  `halt_on_drawdown`): cancel everything, quote nothing. A halt latches until `reset()`.

`export_state()` / `restore_state()` carry the state, the halt reason and the drawdown peak
across a restart (a HALTED gate restored stays HALTED).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from mm_daemon.core.types import OrderRequest, Side

__all__ = ["RiskGate", "RiskLimits", "RiskState"]


class RiskState(IntEnum):
    """The value is what the `mm_risk_state` gauge shows."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_open_orders_per_side: int
    max_order_size_lots: int
    price_band_bps: float  # an order price further than this from fair value is refused
    inventory_limit_base: float
    max_drawdown_quote: float
    halt_on_drawdown: bool = True
    max_order_notional_quote: float | None = None  # an order worth more is refused
    max_position_notional_quote: float | None = None  # past it, only orders that reduce pass
    tick_size: float = 0.0  # quote per tick and base per lot: an order's notional
    base_per_lot: float = 0.0


class RiskGate:
    """Tracks the risk state from exposure and P&L; checks each order before it is sent."""

    __slots__ = ("_constraint", "_peak_pnl_quote", "_state", "halted_reason", "limits")

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._state = RiskState.ACTIVE
        self._peak_pnl_quote: float | None = None
        self._constraint = ""  # a limit beyond this market (the portfolio's) that reduces it
        self.halted_reason = ""

    @property
    def state(self) -> RiskState:
        return self._state

    def update(self, net_exposure_base: float, pnl_quote: float) -> RiskState:
        """Re-evaluate the state from the latest net exposure and total P&L."""
        if self._peak_pnl_quote is None or pnl_quote > self._peak_pnl_quote:
            self._peak_pnl_quote = pnl_quote
        if self._state is RiskState.HALTED:
            return self._state
        drawdown = self._peak_pnl_quote - pnl_quote
        if self.limits.halt_on_drawdown and drawdown > self.limits.max_drawdown_quote:
            self.halt(
                f"drawdown {drawdown:.2f} beyond max_drawdown_quote "
                f"{self.limits.max_drawdown_quote:g}"
            )
        elif self._constraint or abs(net_exposure_base) >= self.limits.inventory_limit_base:
            self._state = RiskState.REDUCING
        else:
            self._state = RiskState.ACTIVE
        return self._state

    @property
    def peak_pnl_quote(self) -> float | None:
        """The running P&L peak the drawdown is measured from (None before the first update)."""
        return self._peak_pnl_quote

    @property
    def reason(self) -> str:
        """Why the state is not ACTIVE ("" when it is)."""
        if self._state is RiskState.HALTED:
            return self.halted_reason
        if self._state is RiskState.REDUCING:
            return self._constraint or "inventory limit"
        return ""

    def constrain(self, reason: str) -> None:
        """Hold the market in REDUCING for a limit beyond it (a portfolio limit), from the
        next `update` on; an empty reason lifts it."""
        self._constraint = reason

    def halt(self, reason: str) -> None:
        """Stop quoting until `reset()` (a drawdown, or an operator's kill switch)."""
        self._state = RiskState.HALTED
        self.halted_reason = reason

    def reset(self) -> None:
        """Leave HALTED (the next `update` decides between ACTIVE and REDUCING)."""
        self._state = RiskState.ACTIVE
        self.halted_reason = ""
        self._peak_pnl_quote = None

    def export_state(self) -> dict[str, Any]:
        return {
            "state": self._state.name,
            "halted_reason": self.halted_reason,
            "peak_pnl_quote": self._peak_pnl_quote,
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue from `export_state()`; ValueError (nothing changed) on an unknown state."""
        name = state["state"]
        if name not in RiskState.__members__:
            raise ValueError(f"unknown risk state {name!r}")
        peak = state["peak_pnl_quote"]
        self._peak_pnl_quote = None if peak is None else float(peak)
        self._state = RiskState[name]
        self.halted_reason = str(state["halted_reason"])

    def check(
        self,
        request: OrderRequest,
        fair_ticks: float,
        open_orders_same_side: int,
        net_exposure_base: float = 0.0,
        position_base: float = 0.0,
    ) -> str | None:
        """None when `request` may be sent, else a short reject reason (a metric label).

        `open_orders_same_side` counts live orders on the request's side, excluding any order
        this request replaces. In REDUCING only an order that reduces `net_exposure_base`
        passes. `position_base` is the position held in the request's instrument: an order
        that would carry its notional past `max_position_notional_quote` is refused.
        """
        limits = self.limits
        if self._state is RiskState.HALTED:
            return "halted"
        if request.size_lots <= 0 or request.price_ticks <= 0:
            return "invalid"
        if request.size_lots > limits.max_order_size_lots:
            return "size"
        if open_orders_same_side >= limits.max_open_orders_per_side:
            return "max_open_orders"
        if fair_ticks > 0:
            band = fair_ticks * limits.price_band_bps * 1e-4
            if abs(request.price_ticks - fair_ticks) > band:
                return "price_band"
        reason = self._notional(request, fair_ticks, position_base)
        if reason is not None:
            return reason
        if self._state is RiskState.REDUCING and not _reduces(request.side, net_exposure_base):
            return "reducing"
        return None

    def _notional(
        self, request: OrderRequest, fair_ticks: float, position_base: float
    ) -> str | None:
        limits = self.limits
        if not (limits.tick_size and limits.base_per_lot):
            return None
        price = fair_ticks if fair_ticks > 0 else request.price_ticks
        quote_per_base = price * limits.tick_size
        size_base = request.size_lots * limits.base_per_lot
        cap = limits.max_order_notional_quote
        order_price = request.price_ticks or price
        if cap is not None and order_price * limits.tick_size * size_base > cap:
            return "order_notional"
        cap = limits.max_position_notional_quote
        if cap is not None:
            after = position_base + request.side * size_base
            if abs(after) > abs(position_base) and abs(after) * quote_per_base > cap:
                return "position_notional"
        return None


def _reduces(side: Side, net_exposure_base: float) -> bool:
    return (side is Side.SELL and net_exposure_base > 0) or (
        side is Side.BUY and net_exposure_base < 0
    )
