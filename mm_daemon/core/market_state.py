"""`MarketState`: one market's local book, fair value and estimators, fed by its event stream.

Pure and synchronous. The daemon (and replay, and paper execution) keeps one per
(venue, symbol) and calls `on_event` with every market event of that market:

    state = MarketState(instrument, fair_value_model="microprice", rule=SequenceRule.NONE)
    result = state.on_event(event)       # ApplyResult for book events, APPLIED otherwise
    state.fair_value_ticks               # float, fractional ticks of this instrument (or None)
    state.volatility.value               # fraction per sqrt(second)
    state.intensity_fit(now_ns)          # IntensityFit(A, k) or None

Time base: every estimator runs on `ts_local_ns` (our receipt clock), so the caller asks for
fits on the same clock (`time.time_ns()` live). Exchange timestamps would mix two clocks: a
replay of recorded data carries the recording's times while the daemon's clock is today's.
    state.flow_imbalance                 # [-1, 1] signed trade flow
    state.touch_imbalance                # [-1, 1] touch size imbalance
    state.stale                          # last MarketStatus said stale

Book sharing: the market-data adapter already keeps a sequence-checked `Book` per symbol and
applies every delta before emitting it. Passing that book in (`book=adapter.book(symbol)`,
`book_is_shared=True`) makes the state read it instead of applying each event a second time.
Without a shared book the state applies snapshots and deltas itself (replay, tests).

Cross-venue fair value: build the quoted market's state with `reference=<the other venue's
MarketState>`; the reference's mid is read whenever the quoted state recomputes, and
`on_reference_update()` recomputes after an event on the reference venue.

`MarketStates` keeps every market's state by (venue, symbol) and routes each event to its
state, recomputing the cross-venue states that reference it:

    states = MarketStates()
    hedge = states.add(MarketState(perp_instrument, fair_value_model="mid"))
    maker = states.add(MarketState(spot_instrument, fair_value_model="cross_venue",
                                   reference=hedge))
    changed = states.on_event(event)     # the MarketState the event belonged to (or None)
"""

from __future__ import annotations

from collections.abc import Iterator

from mm_daemon.core.book import ApplyResult, Book, SequenceRule
from mm_daemon.core.estimators import (
    EwmaVolatility,
    IntensityFit,
    TradeFlowImbalance,
    TradeIntensity,
    touch_imbalance,
)
from mm_daemon.core.fair_value import CrossVenueFairValue
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Instrument,
    MarketEvent,
    MarketStatus,
    Trade,
)

__all__ = ["FairValueKind", "MarketState", "MarketStates"]

_NS = 1_000_000_000
FairValueKind = str  # "mid" | "microprice" | "cross_venue" (the config's FairValueModel values)


class MarketState:
    """Book + fair value + volatility + trade intensity + imbalance for one market."""

    __slots__ = (
        "_cross",
        "_fv",
        "_last_ts_ns",
        "_model",
        "_owns_book",
        "book",
        "flow",
        "instrument",
        "intensity",
        "last_result",
        "reference",
        "stale",
        "volatility",
    )

    def __init__(
        self,
        instrument: Instrument,
        *,
        fair_value_model: FairValueKind = "microprice",
        rule: SequenceRule = SequenceRule.NONE,
        book: Book | None = None,
        book_is_shared: bool = False,
        reference: MarketState | None = None,
        basis_halflife_ns: int = 60 * _NS,
        volatility_halflife_ns: int = 30 * _NS,
        volatility_min_interval_ns: int = 100_000_000,
        intensity_window_ns: int = 300 * _NS,
        imbalance_halflife_ns: int = 5 * _NS,
    ) -> None:
        if fair_value_model not in {"mid", "microprice", "cross_venue"}:
            raise ValueError(f"unknown fair value model {fair_value_model!r}")
        if fair_value_model == "cross_venue" and reference is None:
            raise ValueError("cross_venue fair value needs a reference MarketState")
        self.instrument = instrument
        self.book = book if book is not None else Book(rule)
        self._owns_book = not (book is not None and book_is_shared)
        self._model = fair_value_model
        self.reference = reference
        self._cross: CrossVenueFairValue | None = None
        if fair_value_model == "cross_venue" and reference is not None:
            ratio = reference.instrument.tick_size / instrument.tick_size
            self._cross = CrossVenueFairValue(basis_halflife_ns, ratio)
        self.volatility = EwmaVolatility(volatility_halflife_ns, volatility_min_interval_ns)
        self.intensity = TradeIntensity(intensity_window_ns)
        self.flow = TradeFlowImbalance(imbalance_halflife_ns)
        self.stale = False
        self._fv: float | None = None
        self._last_ts_ns = 0
        self.last_result = ApplyResult.APPLIED  # of the last book event (see core.book)

    # -- events -----------------------------------------------------------------------------

    def on_event(self, event: MarketEvent) -> ApplyResult:
        """Apply one event; book results say whether a resync is needed (see core.book)."""
        if type(event) is BookDelta:
            if self._owns_book:
                result = self.book.apply_delta(event)
                if result:
                    self.last_result = result
                    return result
            self._recompute(event.ts_local_ns)
            self.last_result = ApplyResult.APPLIED
            return ApplyResult.APPLIED
        if type(event) is Trade:
            self.on_trade(event)
            return ApplyResult.APPLIED
        if type(event) is BookSnapshot:
            if self._owns_book:
                result = self.book.apply_snapshot(event)
                if result:
                    self.last_result = result
                    return result
            self._recompute(event.ts_local_ns)
            self.last_result = ApplyResult.APPLIED
            return ApplyResult.APPLIED
        if type(event) is MarketStatus:
            self.stale = event.stale
        return ApplyResult.APPLIED

    def on_trade(self, trade: Trade) -> None:
        mid = self.book.mid_ticks()
        ts = trade.ts_local_ns
        if mid is not None:
            self.intensity.on_trade(trade.price_ticks, mid, ts)
        self.flow.on_trade(float(trade.size_lots), int(trade.aggressor), ts)

    def on_book_changed(self, ts_ns: int) -> None:
        """Recompute after the shared book was updated outside `on_event`."""
        self._recompute(ts_ns)

    def on_reference_update(self, ts_ns: int) -> None:
        """Recompute the cross-venue fair value after the reference market moved."""
        cross = self._cross
        ref = self.reference
        if cross is None or ref is None:
            return
        ref_mid = ref.book.mid_ticks()
        if ref_mid is not None:
            cross.on_ref_mid(ref_mid)
        fv = cross.value()
        if fv is not None:
            self._fv = fv
            self.volatility.update(fv, ts_ns)

    def _recompute(self, ts_ns: int) -> None:
        self._last_ts_ns = ts_ns
        model = self._model
        book = self.book
        if model == "microprice":
            fv = book.microprice_ticks()
        elif model == "mid":
            fv = book.mid_ticks()
        else:
            cross = self._cross
            own = book.mid_ticks()
            if cross is None or own is None:
                fv = own
            else:
                ref = self.reference
                if ref is not None:
                    ref_mid = ref.book.mid_ticks()
                    if ref_mid is not None:
                        cross.on_ref_mid(ref_mid)
                cross.on_own_mid(own, ts_ns)
                fv = cross.value()
        if fv is not None:
            self._fv = fv
            self.volatility.update(fv, ts_ns)

    # -- queries ----------------------------------------------------------------------------

    @property
    def fair_value_ticks(self) -> float | None:
        """Fair value in fractional ticks of this instrument; None before the book has a touch."""
        return self._fv

    @property
    def fair_value_price(self) -> float | None:
        fv = self._fv
        return None if fv is None else fv * self.instrument.tick_size

    @property
    def basis_ticks(self) -> float | None:
        """Cross-venue model only: smoothed (own mid - reference mid), in this market's ticks."""
        return None if self._cross is None else self._cross.basis_ticks

    @property
    def flow_imbalance(self) -> float:
        return self.flow.value

    @property
    def touch_imbalance(self) -> float:
        bid = self.book.best_bid()
        ask = self.book.best_ask()
        if bid is None or ask is None:
            return 0.0
        return touch_imbalance(bid[1], ask[1])

    def intensity_fit(self, now_ns: int) -> IntensityFit | None:
        return self.intensity.fit(now_ns)


class MarketStates:
    """Every market's `MarketState` by (venue, symbol); routes events, keeps references fresh."""

    __slots__ = ("_dependents", "_states")

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], MarketState] = {}
        self._dependents: dict[tuple[str, str], list[MarketState]] = {}

    def add(self, state: MarketState) -> MarketState:
        """Register a state (its reference, if any, should be added too); returns it."""
        inst = state.instrument
        self._states[(inst.venue, inst.symbol)] = state
        ref = state.reference
        if ref is not None:
            key = (ref.instrument.venue, ref.instrument.symbol)
            self._dependents.setdefault(key, []).append(state)
        return state

    def get(self, venue: str, symbol: str) -> MarketState | None:
        return self._states.get((venue, symbol))

    def __iter__(self) -> Iterator[MarketState]:
        return iter(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def on_event(self, event: MarketEvent) -> MarketState | None:
        """Apply `event` to its market's state (None: no such market); book events on a market
        that others price off also recompute those (`on_reference_update`)."""
        key = (event.venue, event.symbol)
        state = self._states.get(key)
        if state is None:
            return None
        state.on_event(event)
        dependents = self._dependents.get(key)
        if dependents and (type(event) is BookDelta or type(event) is BookSnapshot):
            ts = event.ts_local_ns
            for dependent in dependents:
                dependent.on_reference_update(ts)
        return state
