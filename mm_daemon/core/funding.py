"""Funding on a perpetual position, settled from the public mark price stream (paper mode).

Binance settles funding at each funding time (every 8 h: 00:00, 08:00, 16:00 UTC) on the
positions open at that moment: amount = -position x mark price x funding rate, in the margin
asset, so with a positive rate longs pay and shorts receive. Its mark price stream
(`<symbol>@markPrice`, every 1 s or 3 s) carries the rate the next settlement will apply and
when that settlement is (`r`, `T`).

`FundingSettler` watches those updates for one instrument. A settlement is due once an update
shows the announced funding time has passed (its event time reached it, or a later funding time
is announced); it is then settled with the rate and mark price of the last update before the
funding time, on the position held when that update is handled (the paper venue learns of the
settlement within one stream interval of it). Each funding time settles once. Amounts are
rounded to 8 decimals, as Binance's income records are.
"""

from __future__ import annotations

from mm_daemon.core.types import FundingFee, MarkPrice

__all__ = ["FUNDING_DECIMALS", "FundingSettler", "funding_amount"]

FUNDING_DECIMALS = 8


def funding_amount(position_base: float, mark_price: float, rate: float) -> float:
    """What a position receives (> 0) or pays (< 0) at one settlement, to 8 decimals."""
    amount = round(-position_base * mark_price * rate, FUNDING_DECIMALS)
    return amount + 0.0  # no negative zero


class FundingSettler:
    """Settles one perpetual's funding from its mark price updates (see the module docstring)."""

    __slots__ = ("_last", "asset", "settled_through_ns", "symbol", "venue")

    def __init__(self, venue: str, symbol: str, asset: str, *, settled_through_ns: int = 0) -> None:
        self.venue = venue
        self.symbol = symbol
        self.asset = asset
        self.settled_through_ns = settled_through_ns  # funding times up to this one are settled
        self._last: MarkPrice | None = None

    def on_mark_price(self, update: MarkPrice, position_base: float) -> FundingFee | None:
        """Take one update; return the settlement it reveals as due, if any."""
        last = self._last
        due: FundingFee | None = None
        if last is not None and last.next_funding_time_ns > self.settled_through_ns:
            funding_time = last.next_funding_time_ns
            if update.ts_exchange_ns >= funding_time or update.next_funding_time_ns > funding_time:
                self.settled_through_ns = funding_time
                due = FundingFee(
                    venue=self.venue,
                    symbol=self.symbol,
                    funding_time_ns=funding_time,
                    amount_quote=funding_amount(position_base, last.mark_price, last.funding_rate),
                    asset=self.asset,
                    payment_id=str(funding_time // 1_000_000),
                    rate=last.funding_rate,
                    position_base=position_base,
                    mark_price=last.mark_price,
                )
        if (
            update.ts_exchange_ns < update.next_funding_time_ns
            or update.next_funding_time_ns <= self.settled_through_ns
        ):
            # An update stamped at or past a funding time not yet settled must not replace the
            # last one before it: that one holds the rate and mark of the settlement.
            self._last = update
        return due
