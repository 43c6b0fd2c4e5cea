"""Binance's market-data frames into core events: depth diffs, trades, REST snapshots.

A frame goes from bytes to integer ticks and lots without floats staying around: the compiled
readers (`mm_daemon._levels`, built by setup.py where a C compiler is at hand) take a plain
frame straight to integers; anything they do not recognise goes through orjson and the parsers
below, which also say what is malformed (`FrameError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple, cast

from mm_daemon.core.types import BookDelta, BookLevels, Instrument, Side, Trade

ApplySide = Callable[[Any, dict[int, int], list[int], bool, float, float], BookLevels]


class FrameParser(NamedTuple):
    """The compiled frame readers (`mm_daemon._levels`): whole Binance frames into integers.

    Each returns None for a frame it does not recognise as a plain frame of its kind for the
    symbol (other events, escapes, floats, odd nesting, text that is not plain decimal); the
    stream then takes its general path (orjson), which also counts what is malformed.
    """

    parse_depth: Callable[[bytes, bytes, float, float], DepthFields | None]
    parse_trade: Callable[[bytes, bytes, float, float], TradeFields | None]
    apply_levels: Callable[
        [BookLevels, BookLevels, dict[int, int], list[int], dict[int, int], list[int]],
        tuple[int | None, int | None],
    ]
    """Writes both sides' levels and trims their heaps (`Book.finish_update` but the crossed
    check); returns the touch for `Book.set_touch`."""


DepthFields = tuple[int, int, int, int, BookLevels, BookLevels]
"""(E in ms, U, u, pu or -1, bids, asks) of a depthUpdate, levels in ticks and lots."""
TradeFields = tuple[int, int, int, int, bool]
"""(T in ms, trade id, price in ticks, size in lots, buyer is maker) of a trade."""

compiled_apply_side: ApplySide | None
compiled_frame_parser: FrameParser | None
try:  # the compiled hot path (setup.py builds it where a C compiler is at hand)
    from mm_daemon import _levels

    compiled_apply_side = _levels.apply_side
    compiled_frame_parser = FrameParser(
        _levels.parse_depth, _levels.parse_trade, _levels.apply_levels
    )
except ImportError:  # pragma: no cover  depends on the build
    compiled_apply_side = None
    compiled_frame_parser = None

__all__ = [
    "ApplySide",
    "DepthFields",
    "FrameError",
    "FrameParser",
    "LevelParser",
    "TradeFields",
    "compiled_apply_side",
    "compiled_frame_parser",
    "new_book_delta",
    "new_trade",
    "parse_depth_event",
    "parse_levels",
    "parse_snapshot",
    "parse_trade_event",
    "shared_parser",
]

NS_PER_MS = 1_000_000
_SELL = Side.SELL
_BUY = Side.BUY


def _slot_setters(cls: type, expected: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot descriptors' setters of a frozen slotted dataclass, in field order.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`; setting the
    same fields through the slot descriptors, on an instance made with `object.__new__`, builds
    an ordinary instance (same class, equal to one built by the constructor) at about half the
    cost, which counts on the per-frame path. The field names are checked at import so a change
    in `core.types` fails loudly instead of filling the wrong fields.
    """
    names = tuple(f.name for f in fields(cls))
    if names != expected:
        raise RuntimeError(f"{cls.__name__} fields changed: {names}")
    return tuple(getattr(cls, name).__set__ for name in names)


def _delta_constructor() -> Callable[..., BookDelta]:
    """`BookDelta(...)` through its slot setters (see `_slot_setters`)."""
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = _slot_setters(
        BookDelta,
        (
            "venue",
            "symbol",
            "ts_exchange_ns",
            "ts_local_ns",
            "first_update_id",
            "last_update_id",
            "prev_update_id",
            "bids",
            "asks",
        ),
    )
    new = object.__new__

    def make(  # noqa: PLR0917  one argument per BookDelta field, as its constructor
        venue: str,
        symbol: str,
        ts_exchange_ns: int,
        ts_local_ns: int,
        first_update_id: int,
        last_update_id: int,
        prev_update_id: int,
        bids: BookLevels,
        asks: BookLevels,
    ) -> BookDelta:
        delta: BookDelta = new(BookDelta)
        s0(delta, venue)
        s1(delta, symbol)
        s2(delta, ts_exchange_ns)
        s3(delta, ts_local_ns)
        s4(delta, first_update_id)
        s5(delta, last_update_id)
        s6(delta, prev_update_id)
        s7(delta, bids)
        s8(delta, asks)
        return delta

    return make


def _trade_constructor() -> Callable[..., Trade]:
    """`Trade(...)` through its slot setters (see `_slot_setters`)."""
    s0, s1, s2, s3, s4, s5, s6, s7 = _slot_setters(
        Trade,
        (
            "venue",
            "symbol",
            "ts_exchange_ns",
            "ts_local_ns",
            "trade_id",
            "price_ticks",
            "size_lots",
            "aggressor",
        ),
    )
    new = object.__new__

    def make(  # noqa: PLR0917  one argument per Trade field, as its constructor
        venue: str,
        symbol: str,
        ts_exchange_ns: int,
        ts_local_ns: int,
        trade_id: int,
        price_ticks: int,
        size_lots: int,
        aggressor: Side,
    ) -> Trade:
        trade: Trade = new(Trade)
        s0(trade, venue)
        s1(trade, symbol)
        s2(trade, ts_exchange_ns)
        s3(trade, ts_local_ns)
        s4(trade, trade_id)
        s5(trade, price_ticks)
        s6(trade, size_lots)
        s7(trade, aggressor)
        return trade

    return make


def _compiled_builder(cls: type, python_builder: Callable[..., Any]) -> Callable[..., Any]:
    """The compiled slot builder for `cls` (same fields, same order as `python_builder`
    checked); `python_builder` where the compiled module is not built."""
    if compiled_frame_parser is None:
        return python_builder
    return cast("Callable[..., Any]", _levels.SlotBuilder(cls, tuple(f.name for f in fields(cls))))


new_book_delta: Callable[..., BookDelta] = _compiled_builder(BookDelta, _delta_constructor())
new_trade: Callable[..., Trade] = _compiled_builder(Trade, _trade_constructor())


class FrameError(ValueError):
    """A frame that is not valid JSON or misses what its kind must carry."""


def parse_levels(raw: list[list[str]], tick: float, lot: float) -> BookLevels:
    """Binance `[["price","qty"], ...]` into (ticks, lots) pairs, order kept."""
    return tuple((round(float(p) / tick), round(float(q) / lot)) for p, q in raw)


def parse_snapshot(raw: Any, instrument: Instrument) -> tuple[int, BookLevels, BookLevels]:
    """(lastUpdateId, bids, asks) of a REST depth snapshot."""
    try:
        tick = instrument.tick_size
        lot = instrument.lot_size
        return (
            int(raw["lastUpdateId"]),
            parse_levels(raw["bids"], tick, lot),
            parse_levels(raw["asks"], tick, lot),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"malformed depth snapshot: {exc!r}") from None


class LevelParser:
    """Binance level strings into (ticks, lots), memoised per string.

    Prices and sizes repeat all the time on a live book (the same levels change again and
    again; "0.000" deletes), so a dict lookup replaces float(), a division and round() for most
    levels: about twice as fast as parsing each string. Each memo is cleared past `max_entries`.
    """

    __slots__ = ("_lot", "_max", "_prices", "_sizes", "_tick")

    def __init__(self, tick: float, lot: float, max_entries: int = 50_000) -> None:
        self._tick = tick
        self._lot = lot
        self._max = max_entries
        self._prices: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def memos(self) -> tuple[dict[str, int], dict[str, int]]:
        """The (price, size) memos, for fused parse-and-apply loops."""
        return self._prices, self._sizes

    @property
    def max_entries(self) -> int:
        return self._max

    def levels(self, raw: list[list[str]]) -> BookLevels:
        prices = self._prices
        sizes = self._sizes
        out: list[tuple[int, int]] = []
        append = out.append
        for p, q in raw:
            px = prices.get(p)
            if px is None:
                px = round(float(p) / self._tick)
                if len(prices) >= self._max:
                    prices.clear()
                prices[p] = px
            sz = sizes.get(q)
            if sz is None:
                sz = round(float(q) / self._lot)
                if len(sizes) >= self._max:
                    sizes.clear()
                sizes[q] = sz
            append((px, sz))
        return tuple(out)


_SHARED_PARSERS: dict[tuple[float, float], LevelParser] = {}


def shared_parser(tick: float, lot: float) -> LevelParser:
    """One memoising parser per (tick, lot), shared by every stream of the process."""
    parser = _SHARED_PARSERS.get((tick, lot))
    if parser is None:
        parser = _SHARED_PARSERS[(tick, lot)] = LevelParser(tick, lot)
    return parser


def parse_depth_event(
    data: Any,
    instrument: Instrument,
    venue: str,
    ts_local_ns: int,
    parser: LevelParser | None = None,
) -> BookDelta:
    """A `depthUpdate` payload (spot or USD-M) as a BookDelta; USD-M's `pu` kept, else -1."""
    if parser is None:
        parser = LevelParser(instrument.tick_size, instrument.lot_size)
    try:
        return BookDelta(
            venue,
            instrument.symbol,
            data["E"] * NS_PER_MS,
            ts_local_ns,
            data["U"],
            data["u"],
            data.get("pu", -1),
            parser.levels(data["b"]),
            parser.levels(data["a"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(f"malformed depthUpdate: {exc!r}") from None


def parse_trade_event(data: Any, instrument: Instrument, venue: str, ts_local_ns: int) -> Trade:
    """A `trade` payload as a Trade; `m` (buyer is maker) means the aggressor sold."""
    try:
        return new_trade(
            venue,
            instrument.symbol,
            data["T"] * NS_PER_MS,
            ts_local_ns,
            int(data["t"]),
            round(float(data["p"]) / instrument.tick_size),
            round(float(data["q"]) / instrument.lot_size),
            _SELL if data["m"] else _BUY,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(f"malformed trade: {exc!r}") from None
