"""Positions per venue and instrument, net exposure across venues, and P&L.

Feed the ledger, in event order: fair values (`on_fair_value`), hedge decisions
(`on_hedge_intent`, before the hedge order is sent) and fills (`on_fill`). Read
`net_exposure_base` (the quote engine skews on it and the hedger hedges it), positions, and the
exact P&L attribution (`pnl()`, see `mm_daemon.core.pnl` for the definitions).

- A position is held in integer lots; its base amount is lots times the lot size times the
  contract size, so spot and linear perpetuals add up in the same base currency.
- Net exposure = sum over instruments of base position times the venue's netting weight
  (base units of exposure per base unit held there: 1 on the quoted venue; on the hedge venue,
  one over the hedge ratio, so a hedge of `ratio` units per unit of exposure nets to zero).
- Each position keeps an average cost: fills on the side of the position add to it at their
  price; fills against it realize (price - average cost) on the closed part; a fill larger than
  the position closes it and opens the remainder at the fill price. Realized and unrealized P&L
  exclude fees, which are kept per position; realized + unrealized - fees over all positions is
  the total P&L of the attribution, exactly.
- Positions count from zero at start: starting balances are working capital, not inventory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from mm_daemon.core.pnl import Attribution, PnlBreakdown, decimal_fraction, to_fraction
from mm_daemon.core.types import Fill, Instrument, Liquidity, Side

if TYPE_CHECKING:
    from mm_daemon.core.hedging import HedgeIntent

__all__ = ["FillStats", "Ledger", "Position"]

_ZERO = Fraction(0)
_HEDGE_DECISIONS_KEPT = 4096


class Position:
    """One instrument's position on one venue, with average cost and exact P&L in quote units."""

    __slots__ = (
        "_base_per_lot",
        "_tick",
        "cost_basis",
        "fees",
        "instrument",
        "lots",
        "quote_flow",
        "realized",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.lots = 0  # signed: long > 0
        self.cost_basis = _ZERO  # signed base held times its average cost
        self.realized = _ZERO  # price P&L of closed quantity, fees excluded
        self.fees = _ZERO  # fees paid (negative: rebates received)
        self.quote_flow = _ZERO  # change of the quote balance: -(s * x * p) - fee
        self._tick = decimal_fraction(instrument.tick_size)
        self._base_per_lot = decimal_fraction(instrument.lot_size) * decimal_fraction(
            instrument.contract_size_base
        )

    @property
    def base_exact(self) -> Fraction:
        return self.lots * self._base_per_lot

    @property
    def base(self) -> float:
        """Base-currency position (spot: base balance change; perp: contracts * size)."""
        return float(self.lots * self._base_per_lot)

    @property
    def avg_cost(self) -> float | None:
        """Average cost of the open position in quote per base; None when flat."""
        if self.lots == 0:
            return None
        return float(self.cost_basis / self.base_exact)

    def unrealized(self, fair_value: float) -> Fraction:
        """Open position marked at `fair_value`, against its average cost."""
        return self.base_exact * to_fraction(fair_value) - self.cost_basis

    def price_of(self, price_ticks: int) -> Fraction:
        return price_ticks * self._tick

    def base_of(self, lots: int) -> Fraction:
        return lots * self._base_per_lot

    def apply(self, side: Side, price_ticks: int, size_lots: int, fee: Fraction) -> None:
        price = price_ticks * self._tick
        held = self.base_exact
        delta = side * size_lots * self._base_per_lot
        self.fees += fee
        self.quote_flow -= delta * price + fee
        if held == 0 or (held > 0) == (delta > 0):
            self.cost_basis += delta * price
        else:
            avg = self.cost_basis / held
            if abs(delta) <= abs(held):
                # Reduce: -delta of the position is closed at `price`.
                self.realized -= delta * (price - avg)
                self.cost_basis += delta * avg
            else:
                # Flip: close everything, open the remainder at `price`.
                self.realized += held * (price - avg)
                self.cost_basis = (held + delta) * price
        self.lots += side * size_lots


@dataclass(slots=True)
class FillStats:
    """Counts and volumes of one kind of fill (quoting or hedging)."""

    buys: int = 0
    sells: int = 0
    maker: int = 0
    taker: int = 0
    volume_base: float = 0.0
    volume_quote: float = 0.0

    @property
    def count(self) -> int:
        return self.buys + self.sells


@dataclass(frozen=True, slots=True)
class _HedgeDecision:
    fair_value: float
    reference_fair_value: float


class Ledger:
    """Positions, net exposure and P&L attribution across venues.

    `reference` is the quoted instrument: inventory P&L is measured on its fair value.
    `netting_weights` maps a venue to its netting weight (default 1).
    """

    __slots__ = (
        "_attribution",
        "_fair",
        "_hedge_decisions",
        "_hedge_prefix",
        "_positions",
        "_weights",
        "hedge_stats",
        "max_abs_net_exposure_base",
        "net_exposure_base",
        "quote_stats",
        "reference",
    )

    def __init__(
        self,
        reference: Instrument,
        netting_weights: dict[str, float] | None = None,
        hedge_client_id_prefix: str = "hdg-",
    ) -> None:
        self.reference = reference
        self._weights: dict[str, float] = dict(netting_weights or {})
        self._hedge_prefix = hedge_client_id_prefix
        self._positions: dict[tuple[str, str], Position] = {}
        self._fair: dict[tuple[str, str], float] = {}
        self._hedge_decisions: OrderedDict[str, _HedgeDecision] = OrderedDict()
        self._attribution = Attribution()
        self.net_exposure_base = 0.0
        self.max_abs_net_exposure_base = 0.0
        self.quote_stats = FillStats()
        self.hedge_stats = FillStats()
        self.add_instrument(reference)

    # -- setup ---------------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> Position:
        """Register an instrument (fills on unknown instruments are refused)."""
        key = (instrument.venue, instrument.symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(instrument)
        return position

    def set_netting_weight(self, venue: str, weight: float) -> None:
        """Exposure per base unit held on `venue` (e.g. 1 / the hedger's rolling beta)."""
        self._weights[venue] = weight
        self._update_net_exposure()

    def netting_weight(self, venue: str) -> float:
        return self._weights.get(venue, 1.0)

    # -- events --------------------------------------------------------------------------

    def on_fair_value(self, venue: str, symbol: str, fair_value: float) -> None:
        self._fair[(venue, symbol)] = fair_value

    def on_hedge_intent(self, intent: HedgeIntent) -> None:
        """Remember the fair values at a hedge decision, for the hedge-cost attribution."""
        decisions = self._hedge_decisions
        decisions[intent.request.client_order_id] = _HedgeDecision(
            intent.fair_value, intent.reference_fair_value
        )
        if len(decisions) > _HEDGE_DECISIONS_KEPT:
            decisions.popitem(last=False)

    def on_fill(self, fill: Fill) -> Fraction:
        """Book a fill; return its edge against its entry mark, s * x * (E - p), in quote."""
        key = (fill.venue, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            raise KeyError(f"fill on an unregistered instrument {fill.venue} {fill.symbol}")
        price = position.price_of(fill.price_ticks)
        decision = self._hedge_decisions.get(fill.client_order_id)
        hedge = decision is not None or fill.client_order_id.startswith(self._hedge_prefix)
        if decision is not None:
            entry = to_fraction(decision.fair_value)
            entry_reference = to_fraction(decision.reference_fair_value)
        else:
            fair = self._fair.get(key)
            entry = price if fair is None else to_fraction(fair)
            reference_fair = self._fair.get((self.reference.venue, self.reference.symbol))
            entry_reference = entry if reference_fair is None else to_fraction(reference_fair)
        if key == (self.reference.venue, self.reference.symbol):
            entry_reference = entry
        fee = to_fraction(fill.fee_quote)
        signed_base = fill.side * position.base_of(fill.size_lots)
        position.apply(fill.side, fill.price_ticks, fill.size_lots, fee)
        edge = self._attribution.add_fill(
            key,
            signed_base=signed_base,
            price=price,
            fee=fee,
            entry_mark=entry,
            entry_reference=entry_reference,
            hedge=hedge,
        )
        stats = self.hedge_stats if hedge else self.quote_stats
        if fill.side is Side.BUY:
            stats.buys += 1
        else:
            stats.sells += 1
        if fill.liquidity is Liquidity.MAKER:
            stats.maker += 1
        else:
            stats.taker += 1
        base = float(abs(signed_base))
        stats.volume_base += base
        stats.volume_quote += base * float(price)
        self._update_net_exposure()
        return edge

    # -- reads ---------------------------------------------------------------------------

    def position(self, venue: str, symbol: str) -> Position:
        return self._positions[(venue, symbol)]

    def positions(self) -> tuple[Position, ...]:
        return tuple(self._positions.values())

    def inventory_by_venue(self) -> dict[str, float]:
        """Base position per venue (summed over its instruments): mm_inventory_base{venue}."""
        result: dict[str, float] = {}
        for (venue, _), position in self._positions.items():
            result[venue] = result.get(venue, 0.0) + position.base
        return result

    def mark(self, venue: str, symbol: str) -> Fraction:
        """Current mark of an instrument: its fair value, else its last fill price, else 0."""
        fair = self._fair.get((venue, symbol))
        if fair is not None:
            return to_fraction(fair)
        position = self._positions[(venue, symbol)]
        if position.lots != 0 and position.cost_basis != 0:
            return position.cost_basis / position.base_exact
        return _ZERO

    def pnl(self) -> PnlBreakdown:
        """The exact P&L attribution at the latest fair values."""
        marks = {key: self.mark(*key) for key in self._positions}
        reference_now = marks[(self.reference.venue, self.reference.symbol)]
        return self._attribution.breakdown(marks, reference_now)

    def realized(self) -> Fraction:
        return sum((p.realized for p in self._positions.values()), _ZERO)

    def unrealized(self) -> Fraction:
        total = _ZERO
        for key, position in self._positions.items():
            total += position.base_exact * self.mark(*key) - position.cost_basis
        return total

    def fees(self) -> Fraction:
        return sum((p.fees for p in self._positions.values()), _ZERO)

    def _update_net_exposure(self) -> None:
        net = 0.0
        for (venue, _), position in self._positions.items():
            if position.lots:
                net += position.base * self._weights.get(venue, 1.0)
        self.net_exposure_base = net
        self.max_abs_net_exposure_base = max(self.max_abs_net_exposure_base, abs(net))
