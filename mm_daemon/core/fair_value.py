"""Fair value from a book: mid, microprice, or a cross-venue reference with an EWMA basis.

Unit: fair value is a float in (fractional) ticks of the quoted instrument. The quote engine
works in ticks, so it rounds a fair value straight to prices (`floor`/`ceil` for bid/ask) with no
float-price round trip; `Instrument.tick_size * fv` gives the price when one is needed.

The cross-venue model prices the quoted market off another venue's mid (e.g. the perpetual that
hedges a spot quote): `fv = ref_mid + basis`, where `ref_mid` is the reference venue's mid
converted into the quoted instrument's ticks and `basis` is a time-aware EWMA of
`own_mid - ref_mid`, updated whenever the quoted market's own mid changes. Until both mids have
been seen it falls back to the quoted market's own mid.
"""

from __future__ import annotations

import math

from mm_daemon.core.book import Book

__all__ = ["CrossVenueFairValue", "EwmaBasis", "microprice_ticks", "mid_ticks"]

_LN2 = math.log(2.0)


def mid_ticks(book: Book) -> float | None:
    """(best bid + best ask) / 2 in ticks; None while a side is empty."""
    return book.mid_ticks()


def microprice_ticks(book: Book) -> float | None:
    """Size-weighted touch: (bid * ask_size + ask * bid_size) / (bid_size + ask_size)."""
    return book.microprice_ticks()


class EwmaBasis:
    """Time-aware EWMA of a basis series: each observation weighs by the time it stood.

    The weight of the previous estimate decays by 2^(-dt / halflife), so irregular sampling
    gives the same answer as regular sampling of the same path.
    """

    __slots__ = ("_halflife_ns", "_last_ns", "_value")

    def __init__(self, halflife_ns: int) -> None:
        if halflife_ns <= 0:
            raise ValueError("halflife_ns must be positive")
        self._halflife_ns = halflife_ns
        self._value: float | None = None
        self._last_ns = 0

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, basis: float, ts_ns: int) -> float:
        prev = self._value
        if prev is None:
            self._value = prev = basis
        else:
            dt = ts_ns - self._last_ns
            if dt > 0:  # an observation at the same instant adds no weight
                alpha = 1.0 - math.exp(-_LN2 * dt / self._halflife_ns)
                prev += alpha * (basis - prev)
                self._value = prev
        self._last_ns = max(ts_ns, self._last_ns)
        return prev


class CrossVenueFairValue:
    """`ref_mid + EWMA(own_mid - ref_mid)` in the quoted instrument's ticks.

    `ref_ticks_per_own_tick` converts the reference venue's ticks into the quoted venue's
    (reference tick size / quoted tick size; e.g. 0.1 / 0.01 = 10 for BTC USD-M vs spot).
    """

    __slots__ = ("_basis", "_own_mid", "_ratio", "_ref_mid")

    def __init__(self, halflife_ns: int, ref_ticks_per_own_tick: float) -> None:
        self._basis = EwmaBasis(halflife_ns)
        self._ratio = ref_ticks_per_own_tick
        self._own_mid: float | None = None
        self._ref_mid: float | None = None

    @property
    def basis_ticks(self) -> float | None:
        """The smoothed basis (own minus reference), in quoted ticks."""
        return self._basis.value

    def on_own_mid(self, own_mid_ticks: float, ts_ns: int) -> None:
        self._own_mid = own_mid_ticks
        if self._ref_mid is not None:
            self._basis.update(own_mid_ticks - self._ref_mid, ts_ns)

    def on_ref_mid(self, ref_mid_ref_ticks: float) -> None:
        """The reference venue's mid, in the reference venue's own ticks."""
        self._ref_mid = ref_mid_ref_ticks * self._ratio

    def value(self) -> float | None:
        ref = self._ref_mid
        basis = self._basis.value
        if ref is not None and basis is not None:
            return ref + basis
        return self._own_mid
