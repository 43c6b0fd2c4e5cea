"""The local L2 order book: integer ticks and lots, sequence checks, crossed-book detection.

`Book.apply_snapshot` and `Book.apply_delta` return an `ApplyResult`; anything other than
`APPLIED` or `SKIPPED` means the book no longer matches the venue and must be resynced from a
fresh snapshot (`needs_resync` stays true until the next snapshot). No exception is raised on
the hot path: the caller decides what a resync means (the adapter refetches the snapshot).

Sequence rules (`SequenceRule`), checked on every delta after a snapshot with id `L`:
- BINANCE_SPOT: deltas with `u <= L` are skipped; the first kept one must straddle
  (`U <= L + 1 <= u`); then every delta must have `U == prev_u + 1`.
- BINANCE_USDM: deltas with `u < L` are skipped; the first kept one must straddle
  (`U <= L <= u`, or link to the snapshot through `pu == L`); then every delta must have
  `pu == prev_u`.
- CONSECUTIVE: generic venues (bybit's `u`, ...): deltas with `u <= L` are skipped, then each
  delta must start at `prev_u + 1` (`first_update_id == prev_last + 1`).
- NONE: no check (the source guarantees continuity itself).

Layout for speed: one dict price->size per side plus a sorted list of the side's keys (asks
ascending, bids stored negated so both lists are best-first). A size change on an existing level
touches only the dict; a new or removed level costs one bisect and one list memmove. Nothing is
sorted per update.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from enum import IntEnum

from mm_daemon.core.types import BookDelta, BookLevels, BookSnapshot

__all__ = ["ApplyResult", "Book", "SequenceRule"]


class SequenceRule(IntEnum):
    NONE = 0
    BINANCE_SPOT = 1
    BINANCE_USDM = 2
    CONSECUTIVE = 3


class ApplyResult(IntEnum):
    APPLIED = 0
    SKIPPED = 1  # older than the snapshot: ignored, book unchanged and still in sync
    GAP = 2  # sequence discontinuity: resync needed
    CROSSED = 3  # best bid >= best ask after applying: resync needed
    NOT_SYNCED = 4  # no snapshot yet, or waiting for one after a gap: resync needed

    @property
    def needs_resync(self) -> bool:
        return self >= ApplyResult.GAP


_APPLIED = ApplyResult.APPLIED
_SKIPPED = ApplyResult.SKIPPED
_GAP = ApplyResult.GAP
_CROSSED = ApplyResult.CROSSED
_NOT_SYNCED = ApplyResult.NOT_SYNCED


class Book:
    """An L2 book for one symbol; prices in ticks, sizes in lots."""

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "_first_pending",
        "_last_update_id",
        "_synced",
        "rule",
    )

    def __init__(self, rule: SequenceRule = SequenceRule.NONE) -> None:
        self.rule = rule
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._bid_keys: list[int] = []  # negated prices, ascending: best bid first
        self._ask_keys: list[int] = []  # prices, ascending: best ask first
        self._last_update_id = -1
        self._synced = False
        self._first_pending = False  # next kept delta is the first after the snapshot

    # -- updates ----------------------------------------------------------------------------

    def apply_snapshot(self, snapshot: BookSnapshot) -> ApplyResult:
        """Replace the book; returns CROSSED (and stays unsynced) if the snapshot is crossed."""
        return self.load(snapshot.update_id, snapshot.bids, snapshot.asks)

    def load(self, update_id: int, bids: BookLevels, asks: BookLevels) -> ApplyResult:
        """Replace the book with these levels (sizes of 0 are ignored)."""
        self._bids = {px: sz for px, sz in bids if sz > 0}
        self._asks = {px: sz for px, sz in asks if sz > 0}
        self._bid_keys = sorted(-px for px in self._bids)
        self._ask_keys = sorted(self._asks)
        self._last_update_id = update_id
        self._first_pending = True
        if self._bid_keys and self._ask_keys and -self._bid_keys[0] >= self._ask_keys[0]:
            self._synced = False
            return _CROSSED
        self._synced = True
        return _APPLIED

    def apply_delta(self, delta: BookDelta) -> ApplyResult:
        """Apply one diff after checking it continues the book."""
        return self.update(
            delta.first_update_id,
            delta.last_update_id,
            delta.prev_update_id,
            delta.bids,
            delta.asks,
        )

    def update(
        self,
        first_id: int,
        last_id: int,
        prev_id: int,
        bids: BookLevels,
        asks: BookLevels,
    ) -> ApplyResult:
        """Apply one diff given as ids and levels (the allocation-free form of apply_delta)."""
        if not self._synced:
            return _NOT_SYNCED
        rule = self.rule
        last = self._last_update_id
        if rule == 1:  # BINANCE_SPOT
            if last_id <= last:
                return _SKIPPED
            ok = first_id <= last + 1 if self._first_pending else first_id == last + 1
        elif rule == 2:  # BINANCE_USDM
            if self._first_pending:
                if last_id < last:
                    return _SKIPPED
                # Straddles the snapshot id, or links to it exactly through `pu`.
                ok = first_id <= last or prev_id == last
            else:
                if last_id <= last:
                    return _SKIPPED
                ok = prev_id == last
        elif rule == 3:  # CONSECUTIVE
            if last_id <= last:
                return _SKIPPED
            ok = first_id == last + 1 or (self._first_pending and first_id <= last + 1)
        else:
            ok = True
        if not ok:
            self._synced = False
            return _GAP
        self._first_pending = False
        self._last_update_id = last_id
        if bids:
            book = self._bids
            keys = self._bid_keys
            for px, sz in bids:
                if sz:
                    if px not in book:
                        insort(keys, -px)
                    book[px] = sz
                elif book.pop(px, 0):
                    del keys[bisect_left(keys, -px)]
        if asks:
            book = self._asks
            keys = self._ask_keys
            for px, sz in asks:
                if sz:
                    if px not in book:
                        insort(keys, px)
                    book[px] = sz
                elif book.pop(px, 0):
                    del keys[bisect_left(keys, px)]
        bk = self._bid_keys
        ak = self._ask_keys
        if bk and ak and -bk[0] >= ak[0]:
            self._synced = False
            return _CROSSED
        return _APPLIED

    def invalidate(self) -> None:
        """Mark the book out of sync (e.g. the stream dropped); the next snapshot restores it."""
        self._synced = False

    # -- queries ----------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def needs_resync(self) -> bool:
        return not self._synced

    @property
    def update_id(self) -> int:
        """The last applied update id (snapshot's lastUpdateId, then each delta's `u`)."""
        return self._last_update_id

    @property
    def best_bid_ticks(self) -> int | None:
        return -self._bid_keys[0] if self._bid_keys else None

    @property
    def best_ask_ticks(self) -> int | None:
        return self._ask_keys[0] if self._ask_keys else None

    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None on an empty side."""
        if not self._bid_keys:
            return None
        px = -self._bid_keys[0]
        return px, self._bids[px]

    def best_ask(self) -> tuple[int, int] | None:
        if not self._ask_keys:
            return None
        px = self._ask_keys[0]
        return px, self._asks[px]

    def mid_ticks(self) -> float | None:
        """Mid in (fractional) ticks, or None while a side is empty."""
        bk = self._bid_keys
        ak = self._ask_keys
        if not bk or not ak:
            return None
        return (ak[0] - bk[0]) * 0.5

    def microprice_ticks(self) -> float | None:
        """Touch prices weighted by the opposite side's size: leans toward the thinner side."""
        bk = self._bid_keys
        ak = self._ask_keys
        if not bk or not ak:
            return None
        bid = -bk[0]
        ask = ak[0]
        bid_sz = self._bids[bid]
        ask_sz = self._asks[ask]
        return (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz)

    def spread_ticks(self) -> int | None:
        bk = self._bid_keys
        ak = self._ask_keys
        if not bk or not ak:
            return None
        return ak[0] + bk[0]

    def size_at(self, price_ticks: int) -> int:
        """Resting size at a price on either side (0 when no level)."""
        return self._bids.get(price_ticks) or self._asks.get(price_ticks, 0)

    def bid_size_at(self, price_ticks: int) -> int:
        return self._bids.get(price_ticks, 0)

    def ask_size_at(self, price_ticks: int) -> int:
        return self._asks.get(price_ticks, 0)

    def bids(self, n: int | None = None) -> BookLevels:
        """Up to n bid levels, best first (all when n is None)."""
        keys = self._bid_keys if n is None else self._bid_keys[:n]
        book = self._bids
        return tuple((-k, book[-k]) for k in keys)

    def asks(self, n: int | None = None) -> BookLevels:
        keys = self._ask_keys if n is None else self._ask_keys[:n]
        book = self._asks
        return tuple((k, book[k]) for k in keys)

    def depth(self, n: int) -> tuple[BookLevels, BookLevels]:
        """(bids, asks), n levels each, best first."""
        return self.bids(n), self.asks(n)

    def level_count(self) -> tuple[int, int]:
        return len(self._bid_keys), len(self._ask_keys)

    def is_crossed(self) -> bool:
        bk = self._bid_keys
        ak = self._ask_keys
        return bool(bk and ak and -bk[0] >= ak[0])
