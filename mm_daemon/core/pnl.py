"""Exact P&L attribution: where every unit of quote currency came from.

Money is kept as integers of one atom, 1e-18 of the quote currency, so the components add up
to the total exactly, not merely to within rounding. Prices are integer ticks times the tick
size read as its decimal (0.01 is exactly 1/100); sizes integer lots times the lot (and
contract) size read the same way; fair values are taken to 1e-9 quote (`fair_nanos`), fees to
one atom. With tick and lot sizes of at most 9 decimals every product is a whole number of
atoms. Reads convert to `Fraction` (exact) or float; nothing here runs on a book update.

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
- funding = sum of the funding payments booked on perpetual positions (received positive,
  paid negative), each as the venue settled it (live) or as the paper venue would have.
- total = cash flow + positions marked at current fair values
        = sum over fills of (-s_i * x_i * p_i - f_i) + sum of funding payments
          + sum over instruments of q_v * F_v(now).

Identity (by construction, term by term): for each fill,
  -s x p - f + s x F(now) = [s x (E - p)] + [-f] + [s x (R(now) - R_i)]
                            + [s x ((F(now) - R(now)) - (E - R_i))]
where the first two brackets are spread capture and fees for a quoting fill and together the
hedge cost for a hedge fill; so spread capture + fees + hedge cost + inventory P&L + basis P&L
+ funding = total, exactly (a funding payment is cash, and its own component). Inventory P&L
counts base units as held on every venue (the hedge ratio is a risk weight, not a P&L one): a
hedge that moves less than one-to-one shows up as basis P&L.
A venue with no fair value yet is marked at its position's average cost.

`Attribution.export_state()` / `restore_state()` carry the accumulated sums as plain,
JSON-safe values (integers of unbounded size as decimal strings) so a restarted process
continues with exactly the same components.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

__all__ = [
    "ATOMS_PER_QUOTE",
    "ATOM_DECIMALS",
    "COMPONENTS",
    "Attribution",
    "InstrumentScale",
    "PnlBreakdown",
    "atoms_to_fraction",
    "decimal_fraction",
    "fair_nanos",
    "to_atoms",
]

COMPONENTS = ("spread_capture", "fees", "inventory", "hedge_cost", "basis", "funding")
"""The attribution components, in display order (metric label values of mm_pnl_quote)."""

ATOM_DECIMALS = 18
ATOMS_PER_QUOTE = 1_000_000_000_000_000_000  # 10**ATOM_DECIMALS
FAIR_DECIMALS = 9
_NANOS = 1_000_000_000  # 10**FAIR_DECIMALS


def decimal_fraction(value: float) -> Fraction:
    """The decimal a float was written as (0.01 -> 1/100): for tick, lot and contract sizes."""
    return Fraction(repr(float(value)))


def fair_nanos(fair_value: float) -> int:
    """A fair value in 1e-9 quote per base, the precision the attribution works at."""
    return round(fair_value * _NANOS)


def to_atoms(amount_quote: float) -> int:
    """A quote amount (a fee) as the decimal it prints as, in atoms."""
    scaled = Decimal(repr(float(amount_quote))).scaleb(ATOM_DECIMALS)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class InstrumentScale:
    """Integer conversions of one instrument: atoms per (lot x tick) and per (lot x 1e-9)."""

    atoms_per_lot_tick: int
    atoms_per_lot_nano: int

    @classmethod
    def of(
        cls, tick_size: float, lot_size: float, contract_size_base: float = 1.0
    ) -> InstrumentScale:
        base_per_lot = decimal_fraction(lot_size) * decimal_fraction(contract_size_base)
        per_tick = decimal_fraction(tick_size) * base_per_lot * ATOMS_PER_QUOTE
        per_nano = base_per_lot * ATOMS_PER_QUOTE / _NANOS
        if per_tick.denominator != 1 or per_nano.denominator != 1:
            raise ValueError(
                f"tick {tick_size} and lot {lot_size} x contract size {contract_size_base} "
                f"need more than {ATOM_DECIMALS} decimals of quote"
            )
        return cls(int(per_tick), int(per_nano))


def atoms_to_fraction(atoms: int) -> Fraction:
    return Fraction(atoms, ATOMS_PER_QUOTE)


@dataclass(frozen=True, slots=True)
class PnlBreakdown:
    """P&L by component, exact, in atoms (1e-18 quote). `total` is the components' sum."""

    spread_capture_atoms: int
    fees_atoms: int
    inventory_atoms: int
    hedge_cost_atoms: int
    basis_atoms: int
    total_atoms: int
    funding_atoms: int = 0

    @property
    def spread_capture(self) -> Fraction:
        return atoms_to_fraction(self.spread_capture_atoms)

    @property
    def fees(self) -> Fraction:
        return atoms_to_fraction(self.fees_atoms)

    @property
    def inventory(self) -> Fraction:
        return atoms_to_fraction(self.inventory_atoms)

    @property
    def hedge_cost(self) -> Fraction:
        return atoms_to_fraction(self.hedge_cost_atoms)

    @property
    def basis(self) -> Fraction:
        return atoms_to_fraction(self.basis_atoms)

    @property
    def funding(self) -> Fraction:
        return atoms_to_fraction(self.funding_atoms)

    @property
    def total(self) -> Fraction:
        return atoms_to_fraction(self.total_atoms)

    def components_sum_atoms(self) -> int:
        return (
            self.spread_capture_atoms
            + self.fees_atoms
            + self.inventory_atoms
            + self.hedge_cost_atoms
            + self.basis_atoms
            + self.funding_atoms
        )

    def components_sum(self) -> Fraction:
        return atoms_to_fraction(self.components_sum_atoms())

    def as_floats(self) -> dict[str, float]:
        """Components and "total" in quote, keyed by the mm_pnl_quote component label."""
        scale = ATOMS_PER_QUOTE
        return {
            "spread_capture": self.spread_capture_atoms / scale,
            "fees": self.fees_atoms / scale,
            "inventory": self.inventory_atoms / scale,
            "hedge_cost": self.hedge_cost_atoms / scale,
            "basis": self.basis_atoms / scale,
            "funding": self.funding_atoms / scale,
            "total": self.total_atoms / scale,
        }


class _Marks:
    """Per-instrument sums that let inventory and basis P&L be evaluated at any later time."""

    __slots__ = (
        "cash",
        "entry",
        "entry_reference",
        "fees",
        "funding",
        "hedge_cost",
        "lots",
        "scale",
        "spread_capture",
    )

    def __init__(self, scale: InstrumentScale) -> None:
        self.scale = scale
        self.lots = 0  # signed lots held: sum of s * x
        self.cash = 0  # atoms: sum of -s * x * p - f
        self.entry = 0  # lots x nanos: sum of s * x * E
        self.entry_reference = 0  # lots x nanos: sum of s * x * R_i
        # This instrument's share of the fill-time components, atoms (the attribution's own
        # totals are their sums over instruments).
        self.spread_capture = 0
        self.fees = 0
        self.hedge_cost = 0
        self.funding = 0


class Attribution:
    """Accumulates fills into the attribution components; evaluates them at given fair values.

    Instruments are keys chosen by the caller (the ledger uses (venue, symbol)), registered
    with their scale before their first fill.
    """

    __slots__ = ("_fees", "_funding", "_hedge_cost", "_marks", "_spread_capture")

    def __init__(self) -> None:
        self._marks: dict[tuple[str, str], _Marks] = {}
        self._spread_capture = 0
        self._fees = 0
        self._hedge_cost = 0
        self._funding = 0

    def add_instrument(self, key: tuple[str, str], scale: InstrumentScale) -> None:
        if key not in self._marks:
            self._marks[key] = _Marks(scale)

    def add_fill(
        self,
        key: tuple[str, str],
        *,
        signed_lots: int,
        price_ticks: int,
        fee_atoms: int,
        entry_nanos: int,
        entry_reference_nanos: int,
        hedge: bool,
    ) -> int:
        """Book one fill; return its own edge, s * x * (E - p) before fees, in atoms."""
        marks = self._marks[key]
        scale = marks.scale
        paid = signed_lots * price_ticks * scale.atoms_per_lot_tick
        edge = signed_lots * entry_nanos * scale.atoms_per_lot_nano - paid
        if hedge:
            self._hedge_cost += edge - fee_atoms
            marks.hedge_cost += edge - fee_atoms
        else:
            self._spread_capture += edge
            self._fees -= fee_atoms
            marks.spread_capture += edge
            marks.fees -= fee_atoms
        marks.lots += signed_lots
        marks.cash -= paid + fee_atoms
        marks.entry += signed_lots * entry_nanos
        marks.entry_reference += signed_lots * entry_reference_nanos
        return edge

    def trade_cash_atoms(self, key: tuple[str, str]) -> int:
        """What `key`'s trades paid and received, fees included (funding left out), in atoms."""
        marks = self._marks.get(key)
        return 0 if marks is None else marks.cash - marks.funding

    def add_funding(self, key: tuple[str, str], amount_atoms: int) -> None:
        """Book one funding payment on `key`'s position (received > 0, paid < 0), in atoms."""
        marks = self._marks[key]
        marks.cash += amount_atoms
        marks.funding += amount_atoms
        self._funding += amount_atoms

    def export_state(self) -> dict[str, Any]:
        """The accumulated sums, JSON-safe: integers as decimal strings (they exceed 2**53)."""
        return {
            "spread_capture_atoms": str(self._spread_capture),
            "fees_atoms": str(self._fees),
            "hedge_cost_atoms": str(self._hedge_cost),
            "funding_atoms": str(self._funding),
            "instruments": [
                {
                    "venue": venue,
                    "symbol": symbol,
                    "lots": marks.lots,
                    "cash_atoms": str(marks.cash),
                    "entry": str(marks.entry),
                    "entry_reference": str(marks.entry_reference),
                    "spread_capture_atoms": str(marks.spread_capture),
                    "fees_atoms": str(marks.fees),
                    "hedge_cost_atoms": str(marks.hedge_cost),
                    "funding_atoms": str(marks.funding),
                }
                for (venue, symbol), marks in self._marks.items()
            ],
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue from `export_state()`; its instruments must be registered already.

        Registered instruments the state does not mention start from zero. Raises ValueError
        (nothing changed) when the state names an instrument that is not registered.
        """
        rows = [(row["venue"], row["symbol"], row) for row in state["instruments"]]
        for venue, symbol, _ in rows:
            if (venue, symbol) not in self._marks:
                raise ValueError(f"attribution state holds {venue} {symbol}, not registered here")
        spread_capture = int(state["spread_capture_atoms"])
        fees = int(state["fees_atoms"])
        hedge_cost = int(state["hedge_cost_atoms"])
        # States written before funding was booked hold none.
        funding = int(state.get("funding_atoms", 0))
        restored = {
            (venue, symbol): (
                int(row["lots"]),
                int(row["cash_atoms"]),
                int(row["entry"]),
                int(row["entry_reference"]),
                int(row["spread_capture_atoms"]),
                int(row["fees_atoms"]),
                int(row["hedge_cost_atoms"]),
                int(row.get("funding_atoms", 0)),
            )
            for venue, symbol, row in rows
        }
        for key, marks in self._marks.items():
            (
                marks.lots,
                marks.cash,
                marks.entry,
                marks.entry_reference,
                marks.spread_capture,
                marks.fees,
                marks.hedge_cost,
                marks.funding,
            ) = restored.get(key, (0, 0, 0, 0, 0, 0, 0, 0))
        self._spread_capture = spread_capture
        self._fees = fees
        self._hedge_cost = hedge_cost
        self._funding = funding

    def breakdown(
        self,
        marks_nanos: dict[tuple[str, str], int],
        reference_nanos: int,
        keys: Collection[tuple[str, str]] | None = None,
    ) -> PnlBreakdown:
        """The components at current fair values (in nanos, one per registered instrument):
        of every instrument, or of the instruments `keys` names only."""
        if keys is not None:
            return self._breakdown_of(marks_nanos, reference_nanos, keys)
        inventory = 0
        basis = 0
        total = 0
        for key, marks in self._marks.items():
            mark = marks_nanos[key]
            per_nano = marks.scale.atoms_per_lot_nano
            inventory += (marks.lots * reference_nanos - marks.entry_reference) * per_nano
            basis += (
                marks.lots * (mark - reference_nanos) - (marks.entry - marks.entry_reference)
            ) * per_nano
            total += marks.cash + marks.lots * mark * per_nano
        return PnlBreakdown(
            spread_capture_atoms=self._spread_capture,
            fees_atoms=self._fees,
            inventory_atoms=inventory,
            hedge_cost_atoms=self._hedge_cost,
            basis_atoms=basis,
            total_atoms=total,
            funding_atoms=self._funding,
        )

    def _breakdown_of(
        self,
        marks_nanos: dict[tuple[str, str], int],
        reference_nanos: int,
        keys: Collection[tuple[str, str]],
    ) -> PnlBreakdown:
        spread = fees = hedge = inventory = basis = total = funding = 0
        for key in keys:
            marks = self._marks[key]
            mark = marks_nanos[key]
            per_nano = marks.scale.atoms_per_lot_nano
            spread += marks.spread_capture
            fees += marks.fees
            hedge += marks.hedge_cost
            funding += marks.funding
            inventory += (marks.lots * reference_nanos - marks.entry_reference) * per_nano
            basis += (
                marks.lots * (mark - reference_nanos) - (marks.entry - marks.entry_reference)
            ) * per_nano
            total += marks.cash + marks.lots * mark * per_nano
        return PnlBreakdown(spread, fees, inventory, hedge, basis, total, funding)
