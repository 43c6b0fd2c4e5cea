"""Exact P&L attribution: where every unit of quote currency came from.

Money is kept as `fractions.Fraction` in quote units, so the components add up to the total
exactly, not merely to within rounding. Prices come from integer ticks times the tick size read
as its decimal (0.01 is exactly 1/100); sizes from integer lots times the lot (and contract)
size read the same way; fair values and fees as the decimals they print as. Fractions
are only computed on fills and when the P&L is read, never on a book update.

Definitions (a fill i: side s_i = +1 buy / -1 sell, base quantity x_i, price p_i, fee f_i
(positive a cost, negative a rebate), on instrument v; F_v(t) the fair value of v at time t;
R(t) the reference fair value: the quoted instrument's):

- entry mark E_i: the fair value the fill is measured from. For a quoting fill (any fill that
  is not a hedge) E_i = F_v(fill time); for a hedge fill E_i = F_v(decision time), the hedge
  instrument's fair value when the hedge was decided. R_i is the reference fair value at the
  same moment. Where no fair value is known yet, the fill price stands in for it.
- spread capture = sum over quoting fills of s_i * x_i * (E_i - p_i): buying below fair value
  or selling above it earns; a taker fill that crosses the spread shows here as a loss.
- fees = -(sum of f_i over quoting fills): negative is a cost, positive a net rebate.
- hedge cost = sum over hedge fills of s_i * x_i * (E_i - p_i) - f_i: the price paid through
  the hedge fair value at decision (slippage, spread, and the move while the order was in
  flight) plus the hedge fees. Normally negative.
- inventory P&L = sum over fills of s_i * x_i * (R(now) - R_i): the mark-to-market change, on
  the reference price, of everything held since it was acquired. It is the reference price move
  times the inventory held, integrated over the holding periods; a flat book earns none.
- basis P&L = sum over fills of s_i * x_i * ((F_v(now) - R(now)) - (E_i - R_i)): the change of
  each venue's fair value relative to the reference while its position was held (zero on the
  quoted instrument itself; on the hedge venue, the spread between the venues moving, including
  any gap between the hedge ratio and a true one-to-one move).
- total = cash flow + positions marked at current fair values
        = sum over fills of (-s_i * x_i * p_i - f_i) + sum over instruments of q_v * F_v(now).

Identity (by construction, term by term): for each fill,
  -s x p - f + s x F(now) = [s x (E - p)] + [-f] + [s x (R(now) - R_i)]
                            + [s x ((F(now) - R(now)) - (E - R_i))]
so spread capture + fees + hedge cost + inventory P&L + basis P&L = total, exactly.
Funding payments on perpetuals are not included.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "COMPONENTS",
    "Attribution",
    "PnlBreakdown",
    "decimal_fraction",
    "to_fraction",
]

COMPONENTS = ("spread_capture", "fees", "inventory", "hedge_cost", "basis")
"""The attribution components, in display order (metric label values of mm_pnl_quote)."""

_ZERO = Fraction(0)


def decimal_fraction(value: float) -> Fraction:
    """The decimal a float was written as (0.01 -> 1/100): for tick, lot and contract sizes."""
    return Fraction(repr(float(value)))


def to_fraction(value: float) -> Fraction:
    """A fair value or fee as the decimal it prints as (101.2 -> 506/5), exactly."""
    return Fraction(repr(float(value)))


@dataclass(frozen=True, slots=True)
class PnlBreakdown:
    """P&L by component, exact, in quote units. `total` equals the sum of the components."""

    spread_capture: Fraction
    fees: Fraction
    inventory: Fraction
    hedge_cost: Fraction
    basis: Fraction
    total: Fraction

    def components_sum(self) -> Fraction:
        return self.spread_capture + self.fees + self.inventory + self.hedge_cost + self.basis

    def as_floats(self) -> dict[str, float]:
        """Components and "total" as floats, keyed by the mm_pnl_quote component label."""
        return {
            "spread_capture": float(self.spread_capture),
            "fees": float(self.fees),
            "inventory": float(self.inventory),
            "hedge_cost": float(self.hedge_cost),
            "basis": float(self.basis),
            "total": float(self.total),
        }


class _Marks:
    """Per-instrument sums that let inventory and basis P&L be evaluated at any later time."""

    __slots__ = ("cash", "entry", "entry_reference", "quantity")

    def __init__(self) -> None:
        self.quantity = _ZERO  # signed base units held: sum of s * x
        self.cash = _ZERO  # sum of -s * x * p - f
        self.entry = _ZERO  # sum of s * x * E
        self.entry_reference = _ZERO  # sum of s * x * R_i


class Attribution:
    """Accumulates fills into the attribution components; evaluates them at given fair values.

    Instruments are keys chosen by the caller (the ledger uses (venue, symbol)).
    """

    __slots__ = ("_fees", "_hedge_cost", "_marks", "_spread_capture")

    def __init__(self) -> None:
        self._marks: dict[tuple[str, str], _Marks] = {}
        self._spread_capture = _ZERO
        self._fees = _ZERO
        self._hedge_cost = _ZERO

    def add_fill(
        self,
        key: tuple[str, str],
        *,
        signed_base: Fraction,
        price: Fraction,
        fee: Fraction,
        entry_mark: Fraction,
        entry_reference: Fraction,
        hedge: bool,
    ) -> Fraction:
        """Book one fill; return its own edge, s * x * (E - p), before fees."""
        marks = self._marks.get(key)
        if marks is None:
            marks = self._marks[key] = _Marks()
        edge = signed_base * (entry_mark - price)
        if hedge:
            self._hedge_cost += edge - fee
        else:
            self._spread_capture += edge
            self._fees -= fee
        marks.quantity += signed_base
        marks.cash -= signed_base * price + fee
        marks.entry += signed_base * entry_mark
        marks.entry_reference += signed_base * entry_reference
        return edge

    def breakdown(
        self, marks_now: dict[tuple[str, str], Fraction], reference_now: Fraction
    ) -> PnlBreakdown:
        """The components at current fair values `marks_now` (one per instrument with fills)."""
        inventory = _ZERO
        basis = _ZERO
        total = _ZERO
        for key, marks in self._marks.items():
            mark = marks_now[key]
            inventory += marks.quantity * reference_now - marks.entry_reference
            basis += marks.quantity * (mark - reference_now) - (marks.entry - marks.entry_reference)
            total += marks.cash + marks.quantity * mark
        return PnlBreakdown(
            spread_capture=self._spread_capture,
            fees=self._fees,
            inventory=inventory,
            hedge_cost=self._hedge_cost,
            basis=basis,
            total=total,
        )
