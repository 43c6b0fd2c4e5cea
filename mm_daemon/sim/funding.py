"""Funding on the simulator's USD-M venue: mark price, funding rate, settlements, income.

What Binance does (USD-M futures docs and support articles on funding rates):
- the premium index of a symbol is sampled through the interval:
  P = (max(0, impact bid - index) - max(0, index - impact ask)) / index,
  averaged with weights growing through the interval (the last sample weighs most);
- the rate F = P + clamp(I - P, -0.05 %, +0.05 %), I being the interest rate of 0.01 % per 8 h
  (0.03 % a day); symbols with a shorter funding interval scale F by interval / 8 h; the result
  is clamped between the symbol's cap and floor;
- `<symbol>@markPrice` (every 3 s) and `<symbol>@markPrice@1s` publish the mark price, the
  index price, the estimated settle price, the rate the next settlement will apply (`r`, an
  estimate until then) and the next funding time (`T`);
- funding settles every 8 h at 00:00, 08:00 and 16:00 UTC on the positions open then:
  amount = -position x mark price x rate (longs pay when the rate is positive); each
  settlement moves the wallet balance, is pushed on the user-data stream as `ACCOUNT_UPDATE`
  with reason `FUNDING_FEE` (a cross-margin position: the balance only, no position entry) and
  is listed by `GET /fapi/v1/income` with incomeType FUNDING_FEE, a `tranId` and the funding
  time.

What the simulator does:
- the index is the synthetic market's latent fair price of the asset (the price every venue's
  book is built around; replayed venues have none and use their own mid, so their premium is
  zero); the impact bid and ask are the best bid and ask (the books are thin enough that the
  impact notional of 200 USDT x leverage sits at the touch); the mark price is the book's mid,
  the price the venue already marks positions at;
- premium samples every second, weighted 1, 2, 3, ... through the interval; rate as above,
  or a configured constant (`sim.funding.fixed_rate`) for tests that need a known one;
- settlements on interval boundaries since the Unix epoch (8 h: Binance's three times of day;
  `sim.funding.interval_seconds` shortens it for tests), with the rate and mark price of the
  last update published before the funding time, amounts rounded to 8 decimals;
- income records of funding only (the venue's trades are in `userTrades`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mm_daemon.core.funding import funding_amount
from mm_daemon.sim.matching import BACKGROUND_API_KEY

if TYPE_CHECKING:
    from mm_daemon.sim.venue import SimVenue, VenueSymbol

__all__ = [
    "EIGHT_HOURS_NS",
    "FundingParams",
    "IncomeRecord",
    "MarkState",
    "VenueFunding",
    "mark_price_update",
]

_S = 1_000_000_000
_MS = 1_000_000
EIGHT_HOURS_NS = 8 * 3600 * _S
_SAMPLE_NS = _S
_SLOW_STREAM_EVERY = 3  # `@markPrice` is every 3 s, `@markPrice@1s` every second


@dataclass(frozen=True, slots=True)
class FundingParams:
    interval_ns: int = EIGHT_HOURS_NS
    interest_rate: float = 0.0001  # per 8 h, Binance's
    premium_clamp: float = 0.0005  # the +-0.05 % clamp of (interest - premium)
    rate_cap: float = 0.0075  # |rate| at most this, per interval
    fixed_rate: float | None = None  # every settlement at this rate (tests)

    def __post_init__(self) -> None:
        if self.interval_ns < _S:
            raise ValueError("the funding interval is at least one second")


@dataclass(frozen=True, slots=True)
class MarkState:
    """What one `markPriceUpdate` publishes."""

    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time_ns: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class IncomeRecord:
    symbol: str
    income: float
    asset: str
    time_ms: int
    tran_id: int
    income_type: str = "FUNDING_FEE"

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "incomeType": self.income_type,
            "income": f"{self.income:.8f}",
            "asset": self.asset,
            "info": self.income_type,
            "time": self.time_ms,
            "tranId": self.tran_id,
            "tradeId": "",
        }


@dataclass(slots=True)
class _PremiumAverage:
    weighted_sum: float = 0.0
    weights: int = 0

    def add(self, premium: float) -> None:
        self.weights += 1
        self.weighted_sum += self.weights * premium

    @property
    def value(self) -> float:
        if not self.weights:
            return 0.0
        return self.weighted_sum / (self.weights * (self.weights + 1) / 2)


def next_funding_time_ns(now_ns: int, interval_ns: int) -> int:
    """The first interval boundary after `now_ns` (boundaries counted from the Unix epoch)."""
    return (now_ns // interval_ns + 1) * interval_ns


def mark_price_update(sym: VenueSymbol, state: MarkState) -> dict[str, Any]:
    """Binance's `markPriceUpdate` event of one symbol."""
    return {
        "e": "markPriceUpdate",
        "E": state.ts_ns // _MS,
        "s": sym.instrument.exchange_symbol,
        "p": f"{state.mark_price:.8f}",
        "i": f"{state.index_price:.8f}",
        "P": f"{state.mark_price:.8f}",
        "r": f"{state.funding_rate:.8f}",
        "T": state.next_funding_time_ns // _MS,
    }


@dataclass(slots=True)
class VenueFunding:
    """Mark prices, funding rates and settlements of one USD-M venue (module docstring).

    `tick(now_ns)` does what is due: a settlement whose time has come, then a premium sample
    and mark price update every second. `index_price` gives a symbol's index (None: its mid).
    """

    venue: SimVenue
    params: FundingParams = field(default_factory=FundingParams)
    index_price: Callable[[VenueSymbol], float | None] = lambda _sym: None
    income: dict[str, list[IncomeRecord]] = field(default_factory=dict)  # by API key
    marks: dict[str, MarkState] = field(default_factory=dict)  # the last published, by symbol
    settlements: int = 0
    _premiums: dict[str, _PremiumAverage] = field(default_factory=dict)
    _next_funding_ns: int = 0
    _next_sample_ns: int = 0
    _samples: int = 0
    _last_tran_id: int = 0

    def next_due_ns(self) -> int:
        """When `tick` next has something to do."""
        if not self._next_funding_ns:
            return 0
        return min(self._next_funding_ns, self._next_sample_ns)

    @property
    def next_funding_ns(self) -> int:
        return self._next_funding_ns

    def tick(self, now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        if not self._next_funding_ns:
            self._next_funding_ns = next_funding_time_ns(now, self.params.interval_ns)
            self._next_sample_ns = now
        if now >= self._next_funding_ns:
            self._settle(self._next_funding_ns, now)
            self._next_funding_ns = next_funding_time_ns(now, self.params.interval_ns)
            self._premiums.clear()
        if now >= self._next_sample_ns:
            self._sample(now)
            self._next_sample_ns = now + _SAMPLE_NS

    # -- rate ----------------------------------------------------------------------------------

    def record_premium(self, symbol: str, premium: float) -> None:
        """One premium index sample of `symbol` in the current interval."""
        self._premiums.setdefault(symbol, _PremiumAverage()).add(premium)

    def rate(self, symbol: str) -> float:
        """The rate the next settlement of `symbol` applies, from the samples so far."""
        p = self.params
        if p.fixed_rate is not None:
            return p.fixed_rate
        premium = self._premiums.get(symbol, _PremiumAverage()).value
        clamp = p.premium_clamp
        per_8h = premium + min(max(p.interest_rate - premium, -clamp), clamp)
        rate = per_8h * p.interval_ns / EIGHT_HOURS_NS
        return round(min(max(rate, -p.rate_cap), p.rate_cap), 8)

    def _sample(self, now_ns: int) -> None:
        self._samples += 1
        slow = self._samples % _SLOW_STREAM_EVERY == 1
        for name, sym in self.venue.symbols.items():
            bid = sym.engine.best_bid()
            ask = sym.engine.best_ask()
            if not bid or not ask:
                continue
            tick = sym.instrument.tick_size
            bid_px, ask_px = bid[0] * tick, ask[0] * tick
            mid = (bid_px + ask_px) / 2
            index = self.index_price(sym) or mid
            premium = (max(0.0, bid_px - index) - max(0.0, index - ask_px)) / index
            self.record_premium(name, premium)
            state = MarkState(mid, index, self.rate(name), self._next_funding_ns, now_ns)
            self.marks[name] = state
            sym.feed.on_mark_price(mark_price_update(sym, state), now_ns, slow=slow)

    # -- settlement ---------------------------------------------------------------------------

    def _settle(self, funding_ns: int, now_ns: int) -> None:
        """Settle every open position at the last published mark and rate."""
        self.settlements += 1
        for account in self.venue.accounts:
            if account.api_key == BACKGROUND_API_KEY:
                continue
            paid: dict[str, float] = {}
            for name, position in account.positions.items():
                state = self.marks.get(name)
                sym = self.venue.symbols.get(name)
                if not position.size_lots or state is None or sym is None:
                    continue
                inst = sym.instrument
                base = position.size_lots * inst.lot_size * inst.contract_size_base
                amount = funding_amount(base, state.mark_price, state.funding_rate)
                if amount == 0.0:
                    continue
                account.balance(inst.quote).free += amount
                self._last_tran_id += 1
                self.income.setdefault(account.api_key, []).append(
                    IncomeRecord(name, amount, inst.quote, funding_ns // _MS, self._last_tran_id)
                )
                paid[inst.quote] = paid.get(inst.quote, 0.0) + amount
            if paid:
                self.venue.send_user_event(
                    account.api_key, self._account_update(account.api_key, paid, now_ns), now_ns
                )

    def _account_update(self, api_key: str, paid: dict[str, float], now_ns: int) -> dict[str, Any]:
        """`ACCOUNT_UPDATE` with reason FUNDING_FEE: a cross position's funding carries the
        balance of the funding asset only, no position entry."""
        account = self.venue.accounts.get(api_key)
        now_ms = now_ns // _MS
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now_ms,
            "T": now_ms,
            "a": {
                "m": "FUNDING_FEE",
                "B": [
                    {
                        "a": asset,
                        "wb": f"{account.balance(asset).total:.8f}",
                        "cw": f"{account.balance(asset).total:.8f}",
                        "bc": "0",
                    }
                    for asset in sorted(paid)
                ],
                "P": [],
            },
        }

    # -- income ------------------------------------------------------------------------------

    def income_records(
        self,
        api_key: str,
        *,
        symbol: str | None,
        income_type: str | None,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> list[IncomeRecord]:
        """`GET /fapi/v1/income`: oldest first from `start_ms` (the latest `limit` without)."""
        rows = [
            r
            for r in self.income.get(api_key, ())
            if (symbol is None or r.symbol == symbol)
            and (income_type is None or r.income_type == income_type)
            and (start_ms is None or r.time_ms >= start_ms)
            and (end_ms is None or r.time_ms <= end_ms)
        ]
        return rows[:limit] if start_ms is not None else rows[-limit:]
