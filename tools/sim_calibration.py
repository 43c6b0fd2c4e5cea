"""Figures the synthetic market's second asset is calibrated on, read from the recorded captures.

    python tools/sim_calibration.py [--data-dir DIR]

Rebuilds every recorded book (BTCUSDT and ETHUSDT, spot and USD-M) with Binance's sync rules and
samples its mid at every whole second of the collector's clock (one clock for every file), then
prints, per dialect: the correlation of BTC's and ETH's 1 s log mid returns, their standard
deviations, the BTC/ETH price ratio, and per market the trade rate, the median trade notional, the
touch size and the span of 20 levels; and per asset the USD-M minus spot basis of the 1 s mids.
`mm_daemon.sim.market_params` quotes these figures where it uses them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_daemon.binance.capture import (  # noqa: E402  after the path set-up
    FrameKind,
    default_data_dir,
    iter_frames,
)
from mm_daemon.binance.markets import Dialect, recorded_instrument  # noqa: E402
from mm_daemon.sim.replay import ReplayBook  # noqa: E402

_NS = 1_000_000_000
_SYMBOLS = ("btcusdt", "ethusdt")
_DIALECTS: tuple[Dialect, ...] = ("spot", "usdm")


@dataclass(slots=True)
class MarketStats:
    mids: dict[int, float] = field(default_factory=dict)  # whole second -> mid at that second
    trade_notionals: list[float] = field(default_factory=list)
    touch_base: list[float] = field(default_factory=list)
    span20_ticks: list[float] = field(default_factory=list)
    seconds: float = 0.0


def read_market(data_dir: Path, dialect: Dialect, symbol: str) -> MarketStats:
    inst = recorded_instrument(dialect, symbol, dialect)
    book = ReplayBook(inst, dialect)
    stats = MarketStats()
    first_ns = last_ns = 0
    second = -1
    updates = 0
    for frame in iter_frames(data_dir, dialect, symbol):
        first_ns = first_ns or frame.local_ns
        last_ns = frame.local_ns
        now_second = frame.local_ns // _NS
        if book.synced and now_second > second:
            # The book as it stood at each whole second passed since the last frame.
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                mid = (bid[0] + ask[0]) * inst.tick_size / 2.0
                for s in range(max(second + 1, now_second - 60), now_second + 1):
                    stats.mids[s] = mid
        second = now_second
        if frame.kind is FrameKind.SNAPSHOT:
            book.apply_snapshot(frame.data)
        elif frame.kind is FrameKind.DEPTH:
            if book.apply_depth(frame.data) is not None and book.synced:
                updates += 1
                if updates % 10 == 0:
                    _sample_depth(book, inst.lot_size, stats)
        elif frame.kind is FrameKind.TRADE and frame.data.get("X", "MARKET") == "MARKET":
            stats.trade_notionals.append(float(frame.data["p"]) * float(frame.data["q"]))
    stats.seconds = (last_ns - first_ns) / _NS
    return stats


def _sample_depth(book: ReplayBook, lot: float, stats: MarketStats) -> None:
    bids, asks, _ = book.depth(20)
    if len(bids) == 20 and len(asks) == 20:
        stats.touch_base.append((bids[0][1] + asks[0][1]) / 2.0 * lot)
        spread_bid = bids[0][0] - bids[-1][0]
        spread_ask = asks[-1][0] - asks[0][0]
        stats.span20_ticks.append((spread_bid + spread_ask) / 2.0)


def log_returns(mids: dict[int, float], seconds: list[int]) -> list[float]:
    return [math.log(mids[b] / mids[a]) for a, b in itertools.pairwise(seconds)]


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = parser.parse_args()
    if not (args.data_dir / "spot").is_dir():
        sys.stderr.write(f"no recorded captures under {args.data_dir} (set MMD_DATA_DIR)\n")
        return 2
    markets = {(d, s): read_market(args.data_dir, d, s) for d in _DIALECTS for s in _SYMBOLS}
    out(f"{'dialect':8} {'seconds':>7} {'corr 1s':>8} {'sd BTC bps':>10} {'sd ETH bps':>10} "
          f"{'BTC/ETH':>8}")  # fmt: skip
    for dialect in _DIALECTS:
        btc = markets[(dialect, "btcusdt")].mids
        eth = markets[(dialect, "ethusdt")].mids
        seconds = sorted(set(btc) & set(eth))
        rb, re_ = log_returns(btc, seconds), log_returns(eth, seconds)
        out(
            f"{dialect:8} {len(rb):7d} {statistics.correlation(rb, re_):8.3f} "
            f"{statistics.pstdev(rb) * 1e4:10.3f} {statistics.pstdev(re_) * 1e4:10.3f} "
            f"{statistics.median(btc[s] / eth[s] for s in seconds):8.2f}"
        )
    out()
    out(f"{'market':15} {'trades/s':>8} {'med notional':>12} {'touch base':>10} "
          f"{'20 lvl ticks':>12}")  # fmt: skip
    for (dialect, symbol), stats in markets.items():
        out(
            f"{dialect + ' ' + symbol:15} {len(stats.trade_notionals) / stats.seconds:8.1f} "
            f"{statistics.median(stats.trade_notionals):12.1f} "
            f"{statistics.median(stats.touch_base):10.4f} "
            f"{statistics.median(stats.span20_ticks):12.0f}"
        )
    out()
    for symbol in _SYMBOLS:
        spot = markets[("spot", symbol)].mids
        perp = markets[("usdm", symbol)].mids
        basis = [(perp[s] / spot[s] - 1.0) * 1e4 for s in sorted(set(spot) & set(perp))]
        out(
            f"{symbol} basis (USD-M minus spot, 1 s mids): {statistics.mean(basis):+.2f} "
            f"+- {statistics.pstdev(basis):.2f} bps over {len(basis)} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
