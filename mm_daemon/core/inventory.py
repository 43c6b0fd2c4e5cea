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

Restart: `Ledger.export_state()` is the whole state as plain JSON-safe values (integers of
unbounded size as decimal strings, floats as the floats they are); `restore_state()` continues
from it exactly. A fill's entry marks (`entry_marks`) are what the attribution measures it
from; a journal that keeps them with the fill can book it again later (`on_fill(fill, marks)`)
to exactly the same result, whatever the fair values are by then.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mm_daemon.core.pnl import (
    ATOMS_PER_QUOTE,
    Attribution,
    InstrumentScale,
    PnlBreakdown,
    atoms_to_fraction,
    decimal_fraction,
    fair_nanos,
    to_atoms,
)
from mm_daemon.core.types import Fill, Instrument, Liquidity, Side

if TYPE_CHECKING:
    from mm_daemon.core.hedging import HedgeIntent

__all__ = ["FillMarks", "FillStats", "Ledger", "Position"]

_ZERO = Fraction(0)
_HEDGE_DECISIONS_KEPT = 4096
_NANOS = 1_000_000_000


class Position:
    """One instrument's position on one venue, with average cost and exact P&L.

    Cost and realized P&L are integers of the instrument's money unit (one tick times one lot:
    the smallest amount a price times a size can be). Reducing a position keeps the average
    cost, with the remaining cost rounded to that unit; realized P&L takes whatever the rounding
    leaves, so realized + unrealized stays exact.
    """

    __slots__ = (
        "_cost_units",
        "_fee_atoms",
        "_quote_flow_atoms",
        "_realized_units",
        "base_per_lot",
        "base_per_lot_float",
        "instrument",
        "lots",
        "scale",
        "tick",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.lots = 0  # signed: long > 0
        self.tick = decimal_fraction(instrument.tick_size)  # quote per tick
        self.base_per_lot = decimal_fraction(instrument.lot_size) * decimal_fraction(
            instrument.contract_size_base
        )
        self.base_per_lot_float = float(self.base_per_lot)
        self.scale = InstrumentScale.of(
            instrument.tick_size, instrument.lot_size, instrument.contract_size_base
        )
        self._cost_units = 0  # signed lots held times their average cost in ticks
        self._realized_units = 0  # lots x ticks
        self._fee_atoms = 0
        self._quote_flow_atoms = 0

    @property
    def base_exact(self) -> Fraction:
        return self.lots * self.base_per_lot

    @property
    def base(self) -> float:
        """Base-currency position (spot: base balance change; perp: contracts * size)."""
        return float(self.lots * self.base_per_lot)

    @property
    def cost_basis(self) -> Fraction:
        """Signed base held times its average cost, in quote."""
        return atoms_to_fraction(self._cost_units * self.scale.atoms_per_lot_tick)

    @property
    def realized(self) -> Fraction:
        """Price P&L of the closed quantity, in quote; fees excluded."""
        return atoms_to_fraction(self._realized_units * self.scale.atoms_per_lot_tick)

    @property
    def fees(self) -> Fraction:
        """Fees paid, in quote (negative: rebates received)."""
        return atoms_to_fraction(self._fee_atoms)

    @property
    def quote_flow(self) -> Fraction:
        """Change of the quote balance: -(s * x * p) - fee over all fills, in quote."""
        return atoms_to_fraction(self._quote_flow_atoms)

    @property
    def avg_cost(self) -> float | None:
        """Average cost of the open position in quote per base; None when flat."""
        if self.lots == 0:
            return None
        return float(self.cost_basis / self.base_exact)

    def unrealized(self, fair_value: float) -> Fraction:
        """Open position marked at `fair_value` (to 1e-9), against its average cost."""
        return self.unrealized_at_nanos(fair_nanos(fair_value))

    def unrealized_at_nanos(self, mark_nanos: int) -> Fraction:
        scale = self.scale
        atoms = (
            self.lots * mark_nanos * scale.atoms_per_lot_nano
            - self._cost_units * scale.atoms_per_lot_tick
        )
        return atoms_to_fraction(atoms)

    def export_state(self) -> dict[str, Any]:
        """Position, cost and P&L sums; the scale it was counted in, to check on restore."""
        inst = self.instrument
        return {
            "venue": inst.venue,
            "symbol": inst.symbol,
            "tick_size": repr(float(inst.tick_size)),
            "lot_size": repr(float(inst.lot_size)),
            "contract_size_base": repr(float(inst.contract_size_base)),
            "lots": self.lots,
            "cost_units": str(self._cost_units),
            "realized_units": str(self._realized_units),
            "fee_atoms": str(self._fee_atoms),
            "quote_flow_atoms": str(self._quote_flow_atoms),
        }

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Raise ValueError when `state` was counted in other ticks or lots than this position."""
        inst = self.instrument
        counted = (state["tick_size"], state["lot_size"], state["contract_size_base"])
        now = (
            repr(float(inst.tick_size)),
            repr(float(inst.lot_size)),
            repr(float(inst.contract_size_base)),
        )
        if counted != now:
            raise ValueError(
                f"position {inst.venue} {inst.symbol} was counted with tick, lot and contract "
                f"size {', '.join(counted)}; the instrument now has {', '.join(now)}"
            )

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue from `export_state()` (checked first: a ValueError changes nothing)."""
        self.check_state(state)
        self.lots = int(state["lots"])
        self._cost_units = int(state["cost_units"])
        self._realized_units = int(state["realized_units"])
        self._fee_atoms = int(state["fee_atoms"])
        self._quote_flow_atoms = int(state["quote_flow_atoms"])

    def apply(self, side: Side, price_ticks: int, size_lots: int, fee_atoms: int) -> None:
        held = self.lots
        delta = side * size_lots
        flow_units = delta * price_ticks
        self._fee_atoms += fee_atoms
        self._quote_flow_atoms -= flow_units * self.scale.atoms_per_lot_tick + fee_atoms
        cost = self._cost_units
        if held == 0 or (held > 0) == (delta > 0):
            new_cost = cost + flow_units
        elif abs(delta) <= abs(held):
            # Reduce: keep the average cost on what remains (rounded to the money unit).
            new_cost = _div_round(cost * (held + delta), held)
        else:
            # Flip: close everything, open the remainder at this price.
            new_cost = (held + delta) * price_ticks
        # Cash paid minus cost added is what the fill realized (zero when adding).
        self._realized_units += new_cost - cost - flow_units
        self._cost_units = new_cost
        self.lots = held + delta


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient


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

    def add(self, side: Side, liquidity: Liquidity, base: float, quote: float) -> None:
        if side is Side.BUY:
            self.buys += 1
        else:
            self.sells += 1
        if liquidity is Liquidity.MAKER:
            self.maker += 1
        else:
            self.taker += 1
        self.volume_base += base
        self.volume_quote += quote

    def plus(self, other: FillStats) -> FillStats:
        return FillStats(
            self.buys + other.buys,
            self.sells + other.sells,
            self.maker + other.maker,
            self.taker + other.taker,
            self.volume_base + other.volume_base,
            self.volume_quote + other.volume_quote,
        )

    def export_state(self) -> dict[str, Any]:
        return asdict(self)

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self.buys = int(state["buys"])
        self.sells = int(state["sells"])
        self.maker = int(state["maker"])
        self.taker = int(state["taker"])
        self.volume_base = float(state["volume_base"])
        self.volume_quote = float(state["volume_quote"])


@dataclass(frozen=True, slots=True)
class FillMarks:
    """What a fill is measured from: its entry mark and the reference's, in 1e-9 quote.

    `hedge` says whether it books as a hedge fill (hedge cost) or a quoting fill (spread
    capture and fees). See `mm_daemon.core.pnl` for the definitions.
    """

    entry_nanos: int
    entry_reference_nanos: int
    hedge: bool


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
        "_reference_key",
        "_weights",
        "hedge_stats",
        "max_abs_net_exposure_base",
        "net_exposure_base",
        "quote_stats",
        "reference",
        "stats_by_instrument",
    )

    def __init__(
        self,
        reference: Instrument,
        netting_weights: dict[str, float] | None = None,
        hedge_client_id_prefix: str = "hdg-",
    ) -> None:
        self.reference = reference
        self._reference_key = (reference.venue, reference.symbol)
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
        self.stats_by_instrument: dict[tuple[str, str], FillStats] = {}
        self.add_instrument(reference)

    # -- setup ---------------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> Position:
        """Register an instrument (fills on unknown instruments are refused)."""
        key = (instrument.venue, instrument.symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(instrument)
            self._attribution.add_instrument(key, position.scale)
            self.stats_by_instrument[key] = FillStats()
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
        self.on_hedge_decision(
            intent.request.client_order_id, intent.fair_value, intent.reference_fair_value
        )

    def on_hedge_decision(
        self, client_order_id: str, fair_value: float, reference_fair_value: float
    ) -> None:
        """The same as `on_hedge_intent`, from the values a journal keeps of it."""
        decisions = self._hedge_decisions
        decisions[client_order_id] = _HedgeDecision(fair_value, reference_fair_value)
        if len(decisions) > _HEDGE_DECISIONS_KEPT:
            decisions.popitem(last=False)

    def entry_marks(self, fill: Fill) -> FillMarks:
        """What `on_fill(fill)` would measure the fill from now (changes nothing)."""
        key = (fill.venue, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            raise KeyError(f"fill on an unregistered instrument {fill.venue} {fill.symbol}")
        decision = self._hedge_decisions.get(fill.client_order_id)
        hedge = decision is not None or fill.client_order_id.startswith(self._hedge_prefix)
        if decision is not None:
            entry = fair_nanos(decision.fair_value)
            entry_reference = fair_nanos(decision.reference_fair_value)
        else:
            fair = self._fair.get(key)
            if fair is None:
                entry = _div_round(
                    fill.price_ticks * position.tick.numerator * _NANOS, position.tick.denominator
                )
            else:
                entry = fair_nanos(fair)
            reference_fair = self._fair.get(self._reference_key)
            entry_reference = entry if reference_fair is None else fair_nanos(reference_fair)
        if key == self._reference_key:
            entry_reference = entry
        return FillMarks(entry, entry_reference, hedge)

    def on_fill(self, fill: Fill, marks: FillMarks | None = None) -> float:
        """Book a fill; return its edge against its entry mark, s * x * (E - p), in quote.

        `marks` (from `entry_marks`, kept by a journal) books it as of then; by default the
        marks are taken now.
        """
        key = (fill.venue, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            raise KeyError(f"fill on an unregistered instrument {fill.venue} {fill.symbol}")
        if marks is None:
            marks = self.entry_marks(fill)
        hedge = marks.hedge
        fee_atoms = to_atoms(fill.fee_quote)
        signed_lots = fill.side * fill.size_lots
        position.apply(fill.side, fill.price_ticks, fill.size_lots, fee_atoms)
        edge = self._attribution.add_fill(
            key,
            signed_lots=signed_lots,
            price_ticks=fill.price_ticks,
            fee_atoms=fee_atoms,
            entry_nanos=marks.entry_nanos,
            entry_reference_nanos=marks.entry_reference_nanos,
            hedge=hedge,
        )
        base = fill.size_lots * position.instrument.lots_to_base(1)
        quote = base * position.instrument.ticks_to_price(fill.price_ticks)
        for stats in (
            self.hedge_stats if hedge else self.quote_stats,
            self.stats_by_instrument[key],
        ):
            stats.add(fill.side, fill.liquidity, base, quote)
        self._update_net_exposure()
        return edge / ATOMS_PER_QUOTE

    def on_funding(self, venue: str, symbol: str, amount_quote: float) -> None:
        """Book a funding payment on a perpetual position (received > 0, paid < 0): its own
        P&L component, cash in the total; positions and exposure do not change."""
        key = (venue, symbol)
        if key not in self._positions:
            raise KeyError(f"funding on an unregistered instrument {venue} {symbol}")
        self._attribution.add_funding(key, to_atoms(amount_quote))

    # -- restart -------------------------------------------------------------------------

    def export_state(self, *, hedge_decisions: bool = True) -> dict[str, Any]:
        """Everything the ledger has counted, as plain JSON-safe values.

        Without `hedge_decisions` the remembered hedge decisions are left out (a journal keeps
        them as records of their own and feeds them back with `on_hedge_decision`).
        """
        state: dict[str, Any] = {
            "reference": [self.reference.venue, self.reference.symbol],
            "positions": [position.export_state() for position in self._positions.values()],
            "attribution": self._attribution.export_state(),
            "fair_values": [
                [venue, symbol, fair] for (venue, symbol), fair in sorted(self._fair.items())
            ],
            "netting_weights": dict(self._weights),
            "max_abs_net_exposure_base": self.max_abs_net_exposure_base,
            "quote_stats": self.quote_stats.export_state(),
            "hedge_stats": self.hedge_stats.export_state(),
            "stats_by_instrument": [
                [venue, symbol, stats.export_state()]
                for (venue, symbol), stats in self.stats_by_instrument.items()
            ],
        }
        if hedge_decisions:
            state["hedge_decisions"] = [
                [client_order_id, decision.fair_value, decision.reference_fair_value]
                for client_order_id, decision in self._hedge_decisions.items()
            ]
        return state

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue exactly from `export_state()`.

        The instruments must be registered with the same tick, lot and contract sizes (a fill
        counted in other units cannot be carried over); registered instruments the state does
        not mention start flat. Raises ValueError, before changing anything, when the state is of
        another reference, names an unregistered instrument or was counted in other units.
        """
        reference = tuple(state["reference"])
        if reference != self._reference_key:
            raise ValueError(
                f"ledger state is of {' '.join(reference)}, this ledger of "
                f"{' '.join(self._reference_key)}"
            )
        rows = state["positions"]
        for row in rows:
            position = self._positions.get((row["venue"], row["symbol"]))
            if position is None:
                raise ValueError(
                    f"ledger state holds a position on {row['venue']} {row['symbol']}, "
                    "an instrument this ledger does not trade"
                )
            position.check_state(row)
        self._attribution.restore_state(state["attribution"])
        restored = {(row["venue"], row["symbol"]): row for row in rows}
        for key, position in self._positions.items():
            row = restored.get(key)
            if row is None:
                position.restore_state(Position(position.instrument).export_state())
            else:
                position.restore_state(row)
        self._fair = {(venue, symbol): float(fair) for venue, symbol, fair in state["fair_values"]}
        self._weights = {venue: float(w) for venue, w in state["netting_weights"].items()}
        self._hedge_decisions.clear()
        for client_order_id, fair, reference_fair in state.get("hedge_decisions", ()):
            self.on_hedge_decision(client_order_id, float(fair), float(reference_fair))
        self.quote_stats.restore_state(state["quote_stats"])
        self.hedge_stats.restore_state(state["hedge_stats"])
        for stats in self.stats_by_instrument.values():
            stats.restore_state(FillStats().export_state())
        for venue, symbol, stats_state in state.get("stats_by_instrument", ()):
            instrument_stats = self.stats_by_instrument.get((venue, symbol))
            if instrument_stats is not None:
                instrument_stats.restore_state(stats_state)
        self._update_net_exposure()
        self.max_abs_net_exposure_base = float(state["max_abs_net_exposure_base"])

    # -- reads ---------------------------------------------------------------------------

    def position(self, venue: str, symbol: str) -> Position:
        return self._positions[(venue, symbol)]

    def positions(self) -> tuple[Position, ...]:
        return tuple(self._positions.values())

    def trade_cash_quote(self, venue: str, symbol: str) -> float:
        """The quote the instrument's trades paid (negative) or received, fees included."""
        return self._attribution.trade_cash_atoms((venue, symbol)) / ATOMS_PER_QUOTE

    def inventory_by_venue(self) -> dict[str, float]:
        """Base position per venue (summed over its instruments): mm_inventory_base{venue}."""
        result: dict[str, float] = {}
        for (venue, _), position in self._positions.items():
            result[venue] = result.get(venue, 0.0) + position.base
        return result

    def mark_nanos(self, venue: str, symbol: str) -> int:
        """Current mark in 1e-9 quote: the fair value, else the average cost, else 0."""
        fair = self._fair.get((venue, symbol))
        if fair is not None:
            return fair_nanos(fair)
        position = self._positions[(venue, symbol)]
        if position.lots != 0:
            return round(position.cost_basis / position.base_exact * _NANOS)
        return 0

    def mark(self, venue: str, symbol: str) -> Fraction:
        """Current mark in quote per base (see `mark_nanos`)."""
        return Fraction(self.mark_nanos(venue, symbol), _NANOS)

    def pnl(self, instruments: Collection[tuple[str, str]] | None = None) -> PnlBreakdown:
        """The exact P&L attribution at the latest fair values: of every instrument, or of
        those named by (venue, symbol) (a quoted market's own share); the parts add up to the
        whole exactly."""
        marks = {key: self.mark_nanos(*key) for key in self._positions}
        return self._attribution.breakdown(marks, marks[self._reference_key], instruments)

    def realized(self) -> Fraction:
        return sum((p.realized for p in self._positions.values()), _ZERO)

    def unrealized(self) -> Fraction:
        total = _ZERO
        for key, position in self._positions.items():
            total += position.unrealized_at_nanos(self.mark_nanos(*key))
        return total

    def fees(self) -> Fraction:
        return sum((p.fees for p in self._positions.values()), _ZERO)

    def _update_net_exposure(self) -> None:
        net = 0.0
        for (venue, _), position in self._positions.items():
            if position.lots:
                net += position.lots * position.base_per_lot_float * self._weights.get(venue, 1.0)
        self.net_exposure_base = net
        self.max_abs_net_exposure_base = max(self.max_abs_net_exposure_base, abs(net))
