"""Binance's book-sync procedure, one implementation for every reader of Binance depth.

Binance documents it for spot and USD-M alike:
1. subscribe to `<symbol>@depth@100ms` and buffer the diffs;
2. fetch the REST snapshot `depth?limit=1000` (lastUpdateId `L`);
3. drop buffered diffs with `u <= L` (spot) / `u < L` (USD-M); the first kept one straddles `L`
   (USD-M: or links to it through `pu == L`);
4. then every diff continues the previous one (`U == prev_u + 1` spot, `pu == prev_u` USD-M).
A gap or a crossed book starts over at 2 (buffering again).

`BinanceDepthSync` is that state machine for one symbol, with no I/O and no clock: it is handed
diffs and snapshots and says what to do with them. The per-diff continuity checks are the core
book's (`mm_daemon.core.book.SequenceRule.BINANCE_SPOT` / `BINANCE_USDM`), so the live reader
(`mm_daemon.venues.binance_stream`), the replay of recordings and the simulator's replay book
(`mm_daemon.sim.replay`) all run this same code.
"""

from __future__ import annotations

from mm_daemon.core.book import ApplyResult, Book, SequenceRule
from mm_daemon.core.types import BookDelta, BookLevels, BookSnapshot, Instrument

__all__ = ["BinanceDepthSync"]


class BinanceDepthSync:
    """Binance's book-sync procedure for one symbol; pure (no I/O, no clock).

    `on_delta` returns what the caller should do with a parsed diff:
    - `ApplyResult.APPLIED`: applied to `book`; emit it;
    - `ApplyResult.SKIPPED`: buffered (awaiting a snapshot) or older than the book; emit nothing;
    - `GAP` / `CROSSED`: the book is out of sync; the diff is kept in the buffer and the caller
      must fetch a new snapshot (`awaiting_snapshot` is now true).
    `on_snapshot` loads a REST snapshot and replays the buffer; it returns APPLIED when the book
    is in sync (emit `snapshot_event`), or GAP/CROSSED when the snapshot does not join the
    buffered diffs (fetch again).
    """

    __slots__ = ("_buffer", "awaiting_snapshot", "book", "instrument", "replayed", "usdm", "venue")

    MAX_BUFFER = 10_000

    def __init__(
        self, instrument: Instrument, venue: str, *, usdm: bool, book: Book | None = None
    ) -> None:
        self.instrument = instrument
        self.venue = venue
        self.usdm = usdm
        rule = SequenceRule.BINANCE_USDM if usdm else SequenceRule.BINANCE_SPOT
        if book is None:
            book = Book(rule)
        book.rule = rule
        self.book = book
        self._buffer: list[BookDelta] = []
        self.awaiting_snapshot = True
        self.replayed: list[BookDelta] = []  # the buffered diffs the last snapshot applied

    def reset(self) -> None:
        """Forget the book (e.g. the connection dropped): buffer until the next snapshot."""
        self.book.invalidate()
        self._buffer.clear()
        self.awaiting_snapshot = True

    def on_delta(self, delta: BookDelta) -> ApplyResult:
        if self.awaiting_snapshot:
            buf = self._buffer
            buf.append(delta)
            if len(buf) > self.MAX_BUFFER:
                del buf[: len(buf) // 2]
            return ApplyResult.SKIPPED
        result = self.book.update(
            delta.first_update_id,
            delta.last_update_id,
            delta.prev_update_id,
            delta.bids,
            delta.asks,
        )
        if result >= ApplyResult.GAP:
            self.out_of_sync(result, delta)
        return result

    def out_of_sync(self, result: ApplyResult, delta: BookDelta) -> None:
        """The book broke on `delta` (GAP: keep it, it is newer than the book; CROSSED: it was
        applied): buffer from here until the next snapshot."""
        self.book.invalidate()
        self.awaiting_snapshot = True
        self._buffer.clear()
        if result == ApplyResult.GAP:
            self._buffer.append(delta)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def first_buffered_id(self) -> int | None:
        return self._buffer[0].first_update_id if self._buffer else None

    def on_snapshot(self, last_update_id: int, bids: BookLevels, asks: BookLevels) -> ApplyResult:
        book = self.book
        replayed = self.replayed = []
        result = book.load(last_update_id, bids, asks)
        if result:
            return result
        for delta in self._buffer:
            result = book.update(
                delta.first_update_id,
                delta.last_update_id,
                delta.prev_update_id,
                delta.bids,
                delta.asks,
            )
            if result >= ApplyResult.GAP:
                # The snapshot does not join the buffered diffs: keep buffering, fetch again.
                book.invalidate()
                replayed.clear()
                return result
            if result is ApplyResult.APPLIED:
                replayed.append(delta)
        self._buffer.clear()
        self.awaiting_snapshot = False
        return ApplyResult.APPLIED

    def snapshot_event(self, ts_exchange_ns: int, ts_local_ns: int) -> BookSnapshot:
        """The synced book as a BookSnapshot (emitted after a (re)sync)."""
        book = self.book
        return BookSnapshot(
            self.venue,
            self.instrument.symbol,
            ts_exchange_ns,
            ts_local_ns,
            book.update_id,
            book.bids(),
            book.asks(),
        )
