"""Prices and sizes as Binance prints them: fixed decimals, from integer ticks and lots.

Numbers go out as strings with the venue's decimals (spot market data prints 8,
"64012.34000000"; USD-M prints the instrument's price and quantity precision, "61800.30" /
"0.006"; order entry prints the instrument's own decimals), exactly as the recorded real frames
do. The formatters turn ticks and lots into strings without floats and cache them: the same
prices recur on every depth message and every order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mm_daemon.core.types import Instrument

__all__ = ["NumberFormat"]

# Entries per text or fragment cache, each cleared when full and refilled as used: a few MB a
# venue at most, however long the process runs (prices and sizes in use drift).
_CACHE_LIMIT = 50_000


def _step_digits(step: float, decimals: int) -> int:
    return round(step * 10.0**decimals)


class _FragmentCache(dict[int, bytes]):
    """JSON fragments by key, made on first use (a subscript is the fast path). Cleared when
    full: the prices and sizes in use drift, and a cache that stopped growing would keep the old
    ones and miss the new."""

    make: Callable[[int], bytes]

    def __missing__(self, key: int) -> bytes:
        value = self.make(key)
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[key] = value
        return value


@dataclass(slots=True)
class NumberFormat:
    """Prints ticks and lots as Binance does, with fixed decimals, without going through floats."""

    price_step: int  # one tick in units of 10**-price_decimals
    price_decimals: int
    size_step: int
    size_decimals: int
    _px: dict[int, str]
    _qty: dict[int, str]
    # A level's JSON `["<price>","<qty>"]` is the price fragment `["<price>","` of its level key
    # (+-price ticks) followed by the size fragment `<qty>"]` of its lots: two small caches
    # instead of one keyed by both (whose entries almost never repeat).
    price_fragments: _FragmentCache
    size_fragments: _FragmentCache

    @classmethod
    def for_instrument(
        cls, instrument: Instrument, price_decimals: int, size_decimals: int
    ) -> NumberFormat:
        fmt = cls(
            _step_digits(instrument.tick_size, price_decimals),
            price_decimals,
            _step_digits(instrument.lot_size, size_decimals),
            size_decimals,
            {},
            {},
            _FragmentCache(),
            _FragmentCache(),
        )
        fmt.price_fragments.make = fmt.price_fragment
        fmt.size_fragments.make = fmt.size_fragment
        return fmt

    @staticmethod
    def _fmt(units: int, decimals: int) -> str:
        if decimals == 0:
            return str(units)
        if units < 0:
            return "-" + NumberFormat._fmt(-units, decimals)
        text = str(units).rjust(decimals + 1, "0")
        return text[:-decimals] + "." + text[-decimals:]

    def level(self, item: tuple[int, int]) -> bytes:
        """The JSON level `["<price>","<qty>"]` of (key, lots), key = +-price ticks."""
        key, lots = item
        return self.price_fragments[key] + self.size_fragments[lots]

    def price_fragment(self, key: int) -> bytes:
        """`["<price>","` of a level key (+-price ticks)."""
        return ('["' + self._fmt(abs(key) * self.price_step, self.price_decimals) + '","').encode()

    def size_fragment(self, lots: int) -> bytes:
        """`<qty>"]` of a size in lots."""
        return (self._fmt(lots * self.size_step, self.size_decimals) + '"]').encode()

    def px(self, ticks: int) -> str:
        text = self._px.get(ticks)
        if text is None:
            text = self._fmt(ticks * self.price_step, self.price_decimals)
            if len(self._px) >= _CACHE_LIMIT:
                self._px.clear()
            self._px[ticks] = text
        return text

    def qty(self, lots: int) -> str:
        text = self._qty.get(lots)
        if text is None:
            text = self._fmt(lots * self.size_step, self.size_decimals)
            if len(self._qty) >= _CACHE_LIMIT:
                self._qty.clear()
            self._qty[lots] = text
        return text

    def amount(self, value: float, decimals: int = 8) -> str:
        """A balance or fee (not on a tick grid), with `decimals` decimals."""
        return f"{value:.{decimals}f}"

    def parse_px(self, text: str) -> int | None:
        """Ticks of a price string; None when it is not on the tick grid."""
        return _parse_units(text, self.price_decimals, self.price_step)

    def parse_qty(self, text: str) -> int | None:
        """Lots of a quantity string; None when it is not on the lot grid."""
        return _parse_units(text, self.size_decimals, self.size_step)


_NUMBER_RE = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")


def _parse_units(text: str, decimals: int, step: int) -> int | None:
    text = text.strip()
    if not _NUMBER_RE.match(text):
        return None
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        return None
    scale: int = 10**decimals
    units = int(whole or "0") * scale + int(frac.ljust(decimals, "0") or "0")
    if step <= 0 or units % step:
        return None
    return units // step
