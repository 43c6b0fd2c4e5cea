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

Layout for speed: one dict price->size per side plus a heap of the side's prices (asks as
they are, bids negated, so both heaps hold the best price on top). A size change touches only
the dict; a new level is one heappush; a removed level is only a dict delete: its heap entry is
dropped lazily when it reaches the top (and the heap is rebuilt from the dict when stale entries
outnumber live ones). The best price of each side is kept after every update, so touch queries
are attribute reads. Nothing is sorted per update; sorted depth is computed on demand.
"""

from __future__ import annotations

from enum import IntEnum
from heapq import heapify, heappop, heappush, nlargest, nsmallest

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
        "_ask_heap",
        "_asks",
        "_best_ask",
        "_best_bid",
        "_bid_heap",
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
        self._bid_heap: list[int] = []  # negated prices: -heap[0] is the best bid (or stale)
        self._ask_heap: list[int] = []  # prices: heap[0] is the best ask (or stale)
        self._best_bid: int | None = None
        self._best_ask: int | None = None
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
        self._bid_heap = [-px for px in self._bids]
        self._ask_heap = list(self._asks)
        heapify(self._bid_heap)
        heapify(self._ask_heap)
        self._last_update_id = update_id
        self._first_pending = True
        self._refresh_best()
        bb = self._best_bid
        ba = self._best_ask
        if bb is not None and ba is not None and bb >= ba:
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
        result = self.begin_update(first_id, last_id, prev_id)
        if result:
            return result
        if bids:
            book = self._bids
            heap = self._bid_heap
            for px, sz in bids:
                if sz:
                    if px not in book:
                        heappush(heap, -px)
                    book[px] = sz
                else:
                    book.pop(px, None)
        if asks:
            book = self._asks
            heap = self._ask_heap
            for px, sz in asks:
                if sz:
                    if px not in book:
                        heappush(heap, px)
                    book[px] = sz
                else:
                    book.pop(px, None)
        return self.finish_update()

    def begin_update(self, first_id: int, last_id: int, prev_id: int) -> ApplyResult:
        """Sequence check of a diff. On APPLIED the ids have advanced: write the levels (as
        `update` does, through `sides()`), then call `finish_update`. Parsers that apply levels
        while parsing them use this pair to avoid a second pass over the levels."""
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
        return _APPLIED

    def sides(self) -> tuple[dict[int, int], list[int], dict[int, int], list[int]]:
        """(bids, bid heap, asks, ask heap) for writing levels between begin/finish_update.

        A level write is: size > 0: push the price (bids negated) on the heap if it is not in
        the dict, then set it; size 0: pop it from the dict (the heap entry goes lazily).
        """
        return self._bids, self._bid_heap, self._asks, self._ask_heap

    def finish_update(self) -> ApplyResult:
        """Trim stale heap tops, refresh the touch, check for a crossed book."""
        book = self._bids
        heap = self._bid_heap
        if len(heap) > 2 * len(book) + 256:
            heap = self._bid_heap = [-px for px in book]
            heapify(heap)
        while heap and -heap[0] not in book:
            heappop(heap)
        bb = self._best_bid = -heap[0] if heap else None
        book = self._asks
        heap = self._ask_heap
        if len(heap) > 2 * len(book) + 256:
            heap = self._ask_heap = list(book)
            heapify(heap)
        while heap and heap[0] not in book:
            heappop(heap)
        ba = self._best_ask = heap[0] if heap else None
        if bb is not None and ba is not None and bb >= ba:
            self._synced = False
            return _CROSSED
        return _APPLIED

    def set_touch(self, best_bid: int | None, best_ask: int | None) -> ApplyResult:
        """`finish_update` for a writer that trimmed the heaps itself (the compiled level
        writer): take the best prices it found, check for a crossed book."""
        self._best_bid = best_bid
        self._best_ask = best_ask
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            self._synced = False
            return _CROSSED
        return _APPLIED

    def _refresh_best(self) -> None:
        bheap = self._bid_heap
        bids = self._bids
        while bheap and -bheap[0] not in bids:
            heappop(bheap)
        self._best_bid = -bheap[0] if bheap else None
        aheap = self._ask_heap
        asks = self._asks
        while aheap and aheap[0] not in asks:
            heappop(aheap)
        self._best_ask = aheap[0] if aheap else None

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
        return self._best_bid

    @property
    def best_ask_ticks(self) -> int | None:
        return self._best_ask

    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None on an empty side."""
        px = self._best_bid
        return None if px is None else (px, self._bids[px])

    def best_ask(self) -> tuple[int, int] | None:
        px = self._best_ask
        return None if px is None else (px, self._asks[px])

    def mid_ticks(self) -> float | None:
        """Mid in (fractional) ticks, or None while a side is empty."""
        bid = self._best_bid
        ask = self._best_ask
        if bid is None or ask is None:
            return None
        return (bid + ask) * 0.5

    def microprice_ticks(self) -> float | None:
        """Touch prices weighted by the opposite side's size: leans toward the thinner side."""
        bid = self._best_bid
        ask = self._best_ask
        if bid is None or ask is None:
            return None
        bid_sz = self._bids[bid]
        ask_sz = self._asks[ask]
        return (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz)

    def spread_ticks(self) -> int | None:
        bid = self._best_bid
        ask = self._best_ask
        if bid is None or ask is None:
            return None
        return ask - bid

    def size_at(self, price_ticks: int) -> int:
        """Resting size at a price on either side (0 when no level)."""
        return self._bids.get(price_ticks) or self._asks.get(price_ticks, 0)

    def bid_size_at(self, price_ticks: int) -> int:
        return self._bids.get(price_ticks, 0)

    def ask_size_at(self, price_ticks: int) -> int:
        return self._asks.get(price_ticks, 0)

    def bids(self, n: int | None = None) -> BookLevels:
        """Up to n bid levels, best first (all when n is None); O(levels) per call."""
        book = self._bids
        prices = sorted(book, reverse=True) if n is None else nlargest(n, book)
        return tuple((px, book[px]) for px in prices)

    def asks(self, n: int | None = None) -> BookLevels:
        book = self._asks
        prices = sorted(book) if n is None else nsmallest(n, book)
        return tuple((px, book[px]) for px in prices)

    def depth(self, n: int) -> tuple[BookLevels, BookLevels]:
        """(bids, asks), n levels each, best first."""
        return self.bids(n), self.asks(n)

    def level_count(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)
