"""Calibrate the paper fill model against live orders resting in the simulator's matching engine.

Two steps, each reproducible on its own:

    # 1. live runs on the synthetic simulator, recorded (what the daemon saw and sent):
    .venv/bin/python bench/calibrate_paper.py record --seeds 101,102
    # 2. the fit: paper fills of the recorded orders against their live fills
    .venv/bin/python bench/calibrate_paper.py fit
    # and what a 100 ms book cannot show, on the recorded Binance data and in the simulator:
    .venv/bin/python bench/calibrate_paper.py excursions
    # and the live fills of the recordings that the public stream does not explain:
    .venv/bin/python bench/calibrate_paper.py unseen
    # and who joins the touch, on the recorded Binance data and in the simulator:
    .venv/bin/python bench/calibrate_paper.py touch

`record` runs the daemon live (real orders through ccxt.pro / the WS-API into the simulator's
book, filled by its matching engine) with the study's strategy, and writes one gzip JSON-lines
file a run under `--dir` (default bench/results/paper_calibration/): a meta row (instrument,
regime, seed), then the maker market's public events (book updates and trades) as they
arrived, the orders sent (place, replace, cancel, with send times) and the venue's answers
(order updates and fills). Calibration seeds are kept apart from the seeds of the comparison
in docs/paper-vs-live.md (7, 8, 9).

`fit` reads every recording in `--dir`, runs the paper venue over each (the public market,
the same orders: `mm_daemon.venues.paper_calibration`), chooses the queue probability function
on the orders the public book never showed past fair value, searches the exposure parameters
whose paper fills match the live ones with it, prints the table per exposure-depth bucket and
writes `--out` (default bench/results/paper_calibration.json) with the fitted values. The
defaults of `paper.*` in mm_daemon/config/sim.py are these values.

`excursions` compares the recorded Binance spot mid (its real-time bookTicker) with the
simulator's, each looked at through a book that updates every 100 ms: how often the mid moved,
and how often it went beyond both ends of an interval without either showing it (what no paper
model fed that book can see). It writes bench/results/paper_excursions.json.

`touch` samples the recorded BTCUSDT spot and USD-M touch (real-time bookTicker) and the
simulator's, without orders of ours, every 50 ms: how often a side's size grew at an unchanged
price (someone joined it), how often its price moved, its median size and the share of one-tick
spreads (`--without-joiners`: the simulator's books before makers joined the touch). Then one
live run per `--live-regimes` with the matching engine wrapped: each of our orders classed by
where it rested (ahead of every other order of its side, joining the best price, behind it) with
its fills. It writes bench/results/paper_touch.json.

`unseen` reads the recordings in `--dir`: of the live fills of orders the public book never
showed past the mid, how many came in an update window where a public trade printed through
their price, at it, or neither; and how many filled orders followed another of their side in
the same window. It writes bench/results/paper_unseen.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import itertools
import json
import platform
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import uvloop

from mm_daemon.config import parse_config
from mm_daemon.core.exposure import ExposureParams
from mm_daemon.core.queue import QueueProbability
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Fill,
    InstrumentKind,
    OrderRequest,
    OrderUpdate,
    Side,
    Trade,
)
from mm_daemon.engine.daemon import Daemon
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.log import configure_logging
from mm_daemon.sim.runner import start_simulator
from mm_daemon.venues.paper_calibration import (
    DEPTH_BUCKETS_BPS,
    Recording,
    fit,
    recording_from_rows,
    score,
    unseen_fills,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import CellSpec, daemon_config_data, live_environ, sim_config

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DIR = RESULTS / "paper_calibration"
PROBABILITIES = {
    "fixed 0.5": QueueProbability("fixed", fixed_share_ahead=0.5),
    "power 0.5": QueueProbability("power", power_exponent=0.5),
    "power 0.75": QueueProbability("power", power_exponent=0.75),
    "power 1": QueueProbability("power", power_exponent=1.0),
    "power 2": QueueProbability("power", power_exponent=2.0),
    "power 3": QueueProbability("power", power_exponent=3.0),
    "log": QueueProbability("log"),
}


# -- record ------------------------------------------------------------------------------------


class _Recorder:
    """Rows of one live run: the maker market's events and our order traffic."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def market(self, event: object) -> None:
        if isinstance(event, BookDelta | BookSnapshot):
            self.rows.append(
                {
                    "k": "book",
                    "t": event.ts_local_ns,
                    "e": event.ts_exchange_ns,
                    "snap": isinstance(event, BookSnapshot),
                    "b": event.bids,
                    "a": event.asks,
                }
            )
        elif isinstance(event, Trade):
            self.rows.append(
                {
                    "k": "trade",
                    "t": event.ts_local_ns,
                    "e": event.ts_exchange_ns,
                    "id": event.trade_id,
                    "p": event.price_ticks,
                    "q": event.size_lots,
                    "s": int(event.aggressor),
                }
            )

    def execution(self, event: object) -> None:
        if isinstance(event, Fill):
            self.rows.append(
                {
                    "k": "fill",
                    "t": event.ts_local_ns,
                    "e": event.ts_exchange_ns,
                    "id": event.client_order_id,
                    "tid": event.trade_id,
                    "s": int(event.side),
                    "p": event.price_ticks,
                    "q": event.size_lots,
                }
            )
        elif isinstance(event, OrderUpdate):
            self.rows.append(
                {
                    "k": "upd",
                    "t": event.ts_local_ns,
                    "e": event.ts_exchange_ns,
                    "id": event.client_order_id,
                    "st": event.status.value,
                    "s": int(event.side),
                    "p": event.price_ticks,
                    "q": event.size_lots,
                    "f": event.filled_lots,
                }
            )

    def sent(self, kind: str, request: OrderRequest | None, **extra: str) -> None:
        row: dict[str, Any] = {"k": kind, "t": time.time_ns(), **extra}
        if request is not None:
            row |= {
                "id": request.client_order_id,
                "s": int(request.side),
                "p": request.price_ticks,
                "q": request.size_lots,
            }
        self.rows.append(row)


def _tap(daemon: Daemon, recorder: _Recorder) -> None:
    """Record the maker market's events and order traffic of the portfolio the daemon builds.

    The daemon has no event tap of its own; this wraps the portfolio's handlers and the maker
    execution's calls on the instance, before the daemon binds them to its streams."""
    build = daemon._build_portfolio

    def build_and_tap() -> Portfolio:
        portfolio = build()
        (maker,) = portfolio.markets  # the benchmark quotes one market
        key = (maker.instrument.venue, maker.instrument.symbol)
        on_market, on_execution = portfolio.on_market_event, portfolio.on_execution_event

        def market(event: Any) -> None:
            if (event.venue, event.symbol) == key:
                recorder.market(event)
            on_market(event)

        def execution(event: Any) -> None:
            if (event.venue, event.symbol) == key:
                recorder.execution(event)
            on_execution(event)

        portfolio.on_market_event = market  # type: ignore[method-assign]  # the tap, see above
        portfolio.on_execution_event = execution  # type: ignore[method-assign]  # the tap
        exe = maker.orders.execution
        place, replace_, cancel = exe.place, exe.replace, exe.cancel

        async def tapped_place(request: OrderRequest) -> None:
            recorder.sent("place", request)
            await place(request)

        async def tapped_replace(old_client_order_id: str, request: OrderRequest) -> None:
            recorder.sent("replace", request, old=old_client_order_id)
            await replace_(old_client_order_id, request)

        async def tapped_cancel(symbol: str, client_order_id: str) -> None:
            recorder.sent("cancel", None, id=client_order_id)
            await cancel(symbol, client_order_id)

        exe.place = tapped_place  # type: ignore[method-assign]  # the tap
        exe.replace = tapped_replace  # type: ignore[method-assign]  # the tap
        exe.cancel = tapped_cancel  # type: ignore[method-assign]  # the tap
        return portfolio

    daemon._build_portfolio = build_and_tap  # type: ignore[method-assign]  # the tap


async def record_run(spec: CellSpec) -> list[dict[str, Any]]:
    """One live run on the simulator; returns its rows (meta first)."""
    recorder = _Recorder()
    sim = await start_simulator(sim_config(spec))
    try:
        config = parse_config(daemon_config_data(spec, sim), environ=live_environ(spec))
        daemon = Daemon(config)
        _tap(daemon, recorder)
        with redirect_stdout(io.StringIO()):
            await daemon.run(spec.seconds)
        if daemon.portfolio is None:
            raise RuntimeError("the daemon did not trade")
        maker = daemon.portfolio.markets[0].instrument
        instrument = dataclasses.asdict(maker)
        instrument["kind"] = maker.kind.value
    finally:
        await sim.stop()
    meta = {
        "k": "meta",
        "regime": spec.market,
        "seed": spec.seed,
        "seconds": spec.seconds,
        "model": spec.model,
        "quoting": spec.extra.get("quoting", {}),
        "instrument": instrument,
    }
    return [meta, *recorder.rows]


def _record_one(spec: CellSpec, path: Path) -> str:
    configure_logging("error", "json")
    rows = uvloop.run(record_run(spec))
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    fills = sum(1 for r in rows if r["k"] == "fill")
    return f"{path.name}: {len(rows)} rows, {fills} live fills"


def cmd_record(args: argparse.Namespace) -> None:
    for regime in args.regimes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            spec = CellSpec(
                regime, args.model, hedging=False, seconds=args.seconds, mode="live", seed=seed
            )
            path = args.dir / f"{regime}-{seed}.jsonl.gz"
            print(_record_one(spec, path), flush=True)


# -- excursions: what a 100 ms book cannot show, on Binance and in the simulator ---------------

EXCURSION_TICKS = (0, 25, 50, 100, 150, 200, 300)


def excursion_figures(mids: Sequence[float], every: int) -> dict[str, float]:
    """Of mids sampled on a fine grid, looked at every `every` samples (a batched book): the
    share of intervals whose mid changed, and per distance d the chance that the mid went more
    than d ticks beyond both ends of an interval (per interval and side) without either end
    showing it."""
    intervals = changed = 0
    beyond = dict.fromkeys(EXCURSION_TICKS, 0)
    for i in range(0, len(mids) - every, every):
        segment = mids[i : i + every + 1]
        first, last = segment[0], segment[-1]
        inner = segment[1:-1] or [first]
        down = min(first, last) - min(inner)
        up = max(inner) - max(first, last)
        intervals += 1
        changed += last != first
        for d in EXCURSION_TICKS:
            beyond[d] += (down > d) + (up > d)
    figures = {"intervals": float(intervals), "mid_changed": changed / max(1, intervals)}
    for d, n in beyond.items():
        figures[f"beyond_{d}"] = n / max(1, 2 * intervals)
    return figures


def binance_spot_mids(grid_ns: int) -> list[float] | None:
    """The recorded BTCUSDT spot mid (real-time bookTicker, ticks) on a grid; None without the
    data."""
    touches = binance_touch("spot", grid_ns)
    return None if touches is None else [(bid + ask) / 2.0 for bid, _, ask, _ in touches]


def simulator_mids(regime: str, seconds: float, seed: int) -> list[float]:
    """The synthetic spot market's mid (no orders of ours) after each of its steps."""
    from mm_daemon.sim.market_params import SPOT_VENUE  # noqa: PLC0415  only this subcommand

    return [
        (bid[0] + ask[0]) / 2.0
        for bid, ask, _ in simulator_touches(regime, seconds, seed, SPOT_VENUE)
    ]


def cmd_excursions(args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, float]] = {}
    mids = binance_spot_mids(5_000_000)
    if mids is None:
        print("no recorded captures (MMD_DATA_DIR): Binance skipped")
    else:
        rows["binance spot BTCUSDT"] = excursion_figures(mids, 20)  # 5 ms grid, 100 ms book
    for regime in ("calm", "volatile", "trending"):
        step_ms = 50  # the synthetic market's step: a 100 ms book sees every second one
        rows[f"simulator {regime}"] = excursion_figures(
            simulator_mids(regime, args.seconds, args.seed), 100 // step_ms
        )
    head = f"{'market':<22} {'intervals':>9} {'mid moved':>9} " + " ".join(
        f"{'>' + str(d):>6}" for d in EXCURSION_TICKS
    )
    print(head)
    for name, f in rows.items():
        print(
            f"{name:<22} {f['intervals']:>9.0f} {f['mid_changed']:>9.2f} "
            + " ".join(f"{f[f'beyond_{d}']:>6.3f}" for d in EXCURSION_TICKS)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"ticks": EXCURSION_TICKS, "markets": rows}, indent=2) + "\n")


# -- touch: who else quotes at the touch, on Binance and in the simulator ---------------------

TOUCH_GRID_NS = 50_000_000  # the synthetic market's step; Binance sampled on the same grid


def touch_figures(samples: Sequence[tuple[int, float, int, float]]) -> dict[str, float]:
    """From (bid, bid size, ask, ask size) samples every 50 ms: how often a side's touch grew
    at an unchanged price (per second, per side: someone joined it), how often its price
    changed, the median touch size (base, over samples and sides) and the share of samples
    with a one-tick spread."""
    grew = moved = 0
    one_tick = sum(1 for bid, _, ask, _ in samples if ask - bid == 1)
    for (b0, bs0, a0, as0), (b1, bs1, a1, as1) in itertools.pairwise(samples):
        grew += (b1 == b0 and bs1 > bs0) + (a1 == a0 and as1 > as0)
        moved += (b1 != b0) + (a1 != a0)
    sizes = sorted(size for sample in samples for size in (sample[1], sample[3]))
    seconds = max(1, len(samples) - 1) * TOUCH_GRID_NS / 1e9
    return {
        "seconds": seconds,
        "joins_per_s_side": grew / seconds / 2,
        "moves_per_s_side": moved / seconds / 2,
        "median_touch_base": sizes[len(sizes) // 2] if sizes else 0.0,
        "one_tick_spread_share": one_tick / len(samples) if samples else 0.0,
    }


# The recorded BTCUSDT books: (files, ticks per quote unit).
RECORDED_TOUCH = {
    "spot": (("spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"), 100),
    "usdm": (("usdm/btcusdt_20240808.gz",), 10),
}


def binance_touch(
    venue: str, grid_ns: int = TOUCH_GRID_NS
) -> list[tuple[int, float, int, float]] | None:
    """A recorded BTCUSDT touch (real-time bookTicker; prices in ticks, sizes in base) on a
    grid; None without the data."""
    from mm_daemon.binance.capture import default_data_dir, read_capture  # noqa: PLC0415

    data = default_data_dir()
    if not data.is_dir():
        return None
    names, per_unit = RECORDED_TOUCH[venue]
    samples: list[tuple[int, float, int, float]] = []
    t_next: int | None = None
    touch = (0, 0.0, 0, 0.0)
    for ts, raw in read_capture(*(data / name for name in names)):
        if b"bookTicker" not in raw[:64]:
            continue
        p = json.loads(raw)["data"]
        while t_next is not None and t_next < ts:
            samples.append(touch)
            t_next += grid_ns
        bid, ask = round(float(p["b"]) * per_unit), round(float(p["a"]) * per_unit)
        touch = (bid, float(p["B"]), ask, float(p["A"]))
        if t_next is None:
            t_next = ts
    return samples


def simulator_touches(
    regime: str, seconds: float, seed: int, venue: str, *, joiners: bool = True
) -> Iterator[tuple[tuple[int, int], tuple[int, int], float]]:
    """A synthetic BTC book's best bid and ask (ticks, lots; no orders of ours) after each of
    the market's steps, with its base per lot; without `joiners`, as the simulator was before
    its touch was joined. BTC alone, as the benchmarks run the simulator."""
    from mm_daemon.sim.market import SyntheticMarket  # noqa: PLC0415  only these subcommands
    from mm_daemon.sim.market_params import (  # noqa: PLC0415  needs the market
        DEFAULT_ASSETS,
        MarketParams,
        build_engines,
        default_instruments,
    )

    btc = [i for i in default_instruments() if i.base == "BTC"]
    engines = build_engines(btc)
    params = MarketParams(
        regime=regime,  # type: ignore[arg-type]  # a regime name from the command line
        assets=tuple(a for a in DEFAULT_ASSETS if a.base == "BTC"),
    )
    if not joiners:
        venues = {n: dataclasses.replace(f, join_rate_per_s=0.0) for n, f in params.venues.items()}
        params = dataclasses.replace(params, venues=venues)
    market = SyntheticMarket(params, btc, seed)
    (inst,) = [i for i in btc if i.venue == venue]
    engine = engines[(venue, inst.exchange_symbol)]
    base_per_lot = inst.lot_size * inst.contract_size_base
    step = market.params.step_ns
    for k in range(1, round(seconds * 1e9 / step) + 1):
        market.advance(engines, k * step)
        bid, ask = engine.best_bid(), engine.best_ask()
        if bid is not None and ask is not None:
            yield bid, ask, base_per_lot


def simulator_touch(
    regime: str, seconds: float, seed: int, venue: str, *, joiners: bool = True
) -> list[tuple[int, float, int, float]]:
    """`simulator_touches` as (bid, bid size, ask, ask size), sizes in base."""
    return [
        (bid[0], bid[1] * per_lot, ask[0], ask[1] * per_lot)
        for bid, ask, per_lot in simulator_touches(regime, seconds, seed, venue, joiners=joiners)
    ]


TOUCH_CLASSES = ("ahead", "joined", "behind")  # where a live order rested, see below


def live_touch_positions(regime: str, seed: int, seconds: float) -> dict[str, dict[str, int]]:
    """One live run; each of our orders classed where it rested in the simulator's book (ahead
    of every other order on its side, joining the best price, or behind it), with its fills."""
    from mm_daemon.sim.matching.engine import MatchingEngine  # noqa: PLC0415

    classes: dict[int, str] = {}
    out = {c: {"orders": 0, "fills": 0, "partial_fills": 0, "lots": 0} for c in TOUCH_CLASSES}
    rest, apply_fill = MatchingEngine._rest, MatchingEngine.apply_fill

    # The engine's own hooks, wrapped for this measurement only: where a client order entered
    # its queue is known nowhere else.
    def tapped_rest(engine: MatchingEngine, order: Any) -> None:
        if order.account is not None and engine.instrument.kind is InstrumentKind.SPOT:
            best = engine.best_bid() if order.side is Side.BUY else engine.best_ask()
            better = best is None or (order.price - best[0]) * int(order.side) > 0
            c = "ahead" if better else "joined" if order.price == best[0] else "behind"
            classes[order.order_id] = c
            out[c]["orders"] += 1
        rest(engine, order)

    def tapped_fill(engine: MatchingEngine, order: Any, price: int, qty: int, *rest_: Any) -> None:
        c = classes.get(order.order_id)
        if c is not None:
            out[c]["fills"] += 1
            out[c]["partial_fills"] += qty < order.orig
            out[c]["lots"] += qty
        apply_fill(engine, order, price, qty, *rest_)

    MatchingEngine._rest = tapped_rest  # type: ignore[method-assign]
    MatchingEngine.apply_fill = tapped_fill  # type: ignore[method-assign]
    try:
        spec = CellSpec(
            regime, "linear_skew", hedging=False, seconds=seconds, mode="live", seed=seed
        )
        uvloop.run(record_run(spec))
    finally:
        MatchingEngine._rest = rest  # type: ignore[method-assign]
        MatchingEngine.apply_fill = apply_fill  # type: ignore[method-assign]
    return out


def cmd_touch(args: argparse.Namespace) -> None:
    from mm_daemon.sim.market_params import PERP_VENUE, SPOT_VENUE  # noqa: PLC0415

    rows: dict[str, dict[str, float]] = {}
    for recorded, venue in (("spot", SPOT_VENUE), ("usdm", PERP_VENUE)):
        binance = binance_touch(recorded)
        if binance is None:
            print("no recorded captures (MMD_DATA_DIR): Binance skipped")
        else:
            rows[f"binance {recorded} BTCUSDT"] = touch_figures(binance)
        for regime in ("calm", "volatile", "trending"):
            rows[f"simulator {regime} {recorded}"] = touch_figures(
                simulator_touch(regime, args.seconds, args.seed, venue, joiners=args.joiners)
            )
    print(
        f"{'market':<24} {'joins/s':>8} {'moves/s':>8} {'median touch':>13} {'1-tick':>7}"
        "  (per side, 50 ms grid)"
    )
    for name, f in rows.items():
        print(
            f"{name:<24} {f['joins_per_s_side']:>8.2f} {f['moves_per_s_side']:>8.2f}"
            f" {f['median_touch_base']:>13.4f} {f['one_tick_spread_share']:>7.3f}"
        )
    live: dict[str, dict[str, dict[str, int]]] = {}
    configure_logging("error", "json")
    for regime in args.live_regimes.split(",") if args.live_regimes else ():
        live[regime] = live_touch_positions(regime, args.live_seed, args.live_seconds)
    if live:
        print(f"\nlive orders on the simulator (seed {args.live_seed}, {args.live_seconds:.0f} s):")
        print(f"{'regime':<10} {'rested':<8} {'orders':>7} {'fills':>6} {'partial':>8} {'lots':>7}")
        for regime, by_class in live.items():
            for c, r in by_class.items():
                print(
                    f"{regime:<10} {c:<8} {r['orders']:>7} {r['fills']:>6}"
                    f" {r['partial_fills']:>8} {r['lots']:>7}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"markets": rows, "live": live}, indent=2) + "\n")


# -- unseen: live fills the public stream does not explain ---------------------------------------


def cmd_unseen(args: argparse.Namespace) -> None:
    paths = args.recordings or sorted(args.dir.glob("*.jsonl*"))
    rows = {}
    for rec in load_recordings(paths):
        unseen = unseen_fills(rec)
        rows[rec.name] = {"fills": unseen.fills, **dataclasses.asdict(unseen)}
    if not rows:
        raise SystemExit(f"no recordings in {args.dir}")
    rows["all"] = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
    print("live fills of orders the public book never showed past the mid, by the public trades")
    print("of their update window; and filled orders that followed another of their side there")
    head = ("recording", "fills", "through", "at", "no print", "filled", "repeat")
    print(f"{head[0]:<24}" + "".join(f"{h:>9}" for h in head[1:]))
    for name, r in rows.items():
        cells = (r["fills"], r["print_through"], r["print_at"], r["no_print"])
        cells += (r["filled_orders"], r["repeat_orders"])
        print(f"{name:<24}" + "".join(f"{c:>9}" for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


# -- fit ---------------------------------------------------------------------------------------


def load_recordings(paths: Iterable[Path]) -> list[Recording]:
    out = []
    for path in sorted(paths):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        out.append(recording_from_rows(rows, path.name))
    return out


def _bucket_names() -> list[str]:
    edges = [*DEPTH_BUCKETS_BPS, None]
    names = ["not exposed"]
    for lo, hi in itertools.pairwise(edges):
        names.append(f"({lo:g}, {hi:g}] bps" if hi is not None else f"> {lo:g} bps")
    return names


def _markout(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _pooled(buckets: Sequence[Any], lots: str, markout: str) -> float | None:
    pairs = [(getattr(b, markout), getattr(b, lots)) for b in buckets]
    weight = sum(w for m, w in pairs if m is not None)
    return sum(m * w for m, w in pairs if m is not None) / weight if weight else None


def bucket_table(title: str, buckets: Sequence[Any]) -> str:
    lines = [
        title,
        f"  {'past fair value':<17} {'orders':>6} {'live fills':>10} {'paper':>8} "
        f"{'live lots':>10} {'paper':>10} {'lots ratio':>10} {'mk 1s live':>10} {'paper':>6}",
    ]
    for name, b in zip(_bucket_names(), buckets, strict=True):
        ratio = b.paper_lots / b.live_lots if b.live_lots else float("nan")
        lines.append(
            f"  {name:<17} {b.orders:>6} {b.live_fills:>10.0f} {b.paper_fills:>8.1f} "
            f"{b.live_lots:>10.0f} {b.paper_lots:>10.1f} {ratio:>10.2f} "
            f"{_markout(b.live_markout_bps):>10} {_markout(b.paper_markout_bps):>6}"
        )
    lf = sum(b.live_fills for b in buckets)
    pf = sum(b.paper_fills for b in buckets)
    ll = sum(b.live_lots for b in buckets)
    pl = sum(b.paper_lots for b in buckets)
    live_mk = _pooled(buckets, "live_lots", "live_markout_bps")
    paper_mk = _pooled(buckets, "paper_lots", "paper_markout_bps")
    lines.append(
        f"  {'all':<17} {sum(b.orders for b in buckets):>6} {lf:>10.0f} {pf:>8.1f} "
        f"{ll:>10.0f} {pl:>10.1f} {pl / ll if ll else float('nan'):>10.2f} "
        f"{_markout(live_mk):>10} {_markout(paper_mk):>6}"
    )
    return "\n".join(lines)


def cmd_fit(args: argparse.Namespace) -> None:
    paths = list(args.recordings) or sorted(args.dir.glob("*.jsonl*"))
    if not paths:
        raise SystemExit(f"no recordings in {args.dir}: run `record` first")
    recordings = load_recordings(paths)
    seeds = [int(s) for s in args.fit_seeds.split(",")]
    started = time.monotonic()
    for rec in recordings:
        print(
            f"{rec.name}: {len(rec.market)} public events, {len(rec.orders)} orders rested; "
            f"median latencies: entry {rec.entry_latency_ns / 1e6:.2f} ms, cancel "
            f"{rec.cancel_latency_ns / 1e6:.2f} ms, ack {rec.ack_latency_ns / 1e6:.2f} ms, "
            f"reaction to a book update {rec.reaction_ns / 1e6:.2f} ms; "
            f"{rec.live_rejects} post-only rejects, {rec.live_rejects_crossed_next} of them "
            "crossed in the next public book update",
            flush=True,
        )

    def progress(n: int, value: float, params: ExposureParams) -> None:
        if args.verbose:
            print(
                f"  {n:>4} objective {value:.4f}  rate {params.rate_multiplier:.3g} "
                f"+{params.rate_multiplier_per_bps:.3g}/bps  size {params.size_multiplier:.3g} "
                f"+{params.size_multiplier_per_bps:.3g}/bps",
                flush=True,
            )

    start = ExposureParams(
        rate_multiplier=args.start_rate,
        rate_multiplier_per_bps=args.start_rate_per_bps,
        size_multiplier=args.start_size,
        size_multiplier_per_bps=args.start_size_per_bps,
    )
    result = fit(
        recordings,
        start=start,
        probabilities=PROBABILITIES,
        seeds=seeds,
        iterations=args.iterations,
        progress=progress,
    )
    elapsed = time.monotonic() - started
    queue_only, queue_buckets = score(recordings, PROBABILITIES["fixed 0.5"], None)
    e = result.exposure
    print(bucket_table("\nqueue model (fixed 0.5, no exposure)", queue_buckets))
    print(bucket_table("\nexposure model, fitted", result.buckets))
    print(
        "\nqueue probability functions (error on the never-exposed orders, summed over recordings):"
    )
    for name, value in result.probability_scores.items():
        print(f"  {name:<10} {value:.4f}")
    onset = result.onset
    assert onset is not None  # noqa: S101  fit() always fits it
    print(
        f"\nonset: {onset.orders} live post-only orders the next update showed crossed, "
        f"{onset.refused} refused by the venue; refused by where in the window they arrived:"
    )
    for k, (orders, refused, predicted) in enumerate(onset.by_fifth):
        share = refused / orders if orders else 0.0
        print(
            f"  {k * 20:>3}-{k * 20 + 20:<3}% {orders:>6} orders, refused {share:5.2f} "
            f"(fitted shape predicts {predicted:.2f})"
        )
    print(
        f"  shape {onset.shape:.2f}: log-likelihood {onset.log_likelihood:.1f} "
        f"(uniform: {onset.log_likelihood_uniform:.1f})"
    )
    print(
        f"\nfitted: exposure_onset_shape {e.onset_shape:.2f}, "
        f"exposure_rate_multiplier {e.rate_multiplier:.3f}, "
        f"exposure_rate_multiplier_per_bps {e.rate_multiplier_per_bps:.3f}, "
        f"exposure_size_multiplier {e.size_multiplier:.3f}, "
        f"exposure_size_multiplier_per_bps {e.size_multiplier_per_bps:.3f}, "
        f"queue {result.probability}"
    )
    print(
        f"objective {result.objective:.4f} (queue model {queue_only:.4f}); "
        f"{result.evaluations} evaluations in {elapsed:.0f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "recordings": [r.name for r in recordings],
                "live_latencies_ms": {
                    r.name: {
                        "order_entry": r.entry_latency_ns / 1e6,
                        "cancel": r.cancel_latency_ns / 1e6,
                        "ack": r.ack_latency_ns / 1e6,
                        "reaction": r.reaction_ns / 1e6,
                    }
                    for r in recordings
                },
                "live_post_only_rejects": {
                    r.name: {
                        "rejects": r.live_rejects,
                        "crossed_in_next_update": r.live_rejects_crossed_next,
                    }
                    for r in recordings
                },
                "fit_seeds": seeds,
                "onset": dataclasses.asdict(onset),
                "fitted": {
                    "exposure_onset_shape": e.onset_shape,
                    "exposure_rate_multiplier": e.rate_multiplier,
                    "exposure_rate_multiplier_per_bps": e.rate_multiplier_per_bps,
                    "exposure_size_multiplier": e.size_multiplier,
                    "exposure_size_multiplier_per_bps": e.size_multiplier_per_bps,
                    "queue_position": result.probability.kind,
                    "size_decrease_queue_share": result.probability.fixed_share_ahead,
                    "queue_power_exponent": result.probability.power_exponent,
                },
                "objective": result.objective,
                "objective_queue_model": queue_only,
                "queue_probability_objectives": result.probability_scores,
                "buckets": dict(
                    zip(
                        _bucket_names(),
                        [dataclasses.asdict(b) for b in result.buckets],
                        strict=True,
                    )
                ),
                "buckets_queue_model": dict(
                    zip(
                        _bucket_names(), [dataclasses.asdict(b) for b in queue_buckets], strict=True
                    )
                ),
                "evaluations": result.evaluations,
                "elapsed_seconds": round(elapsed, 1),
            },
            indent=2,
        )
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="live runs on the simulator, recorded")
    rec.add_argument("--regimes", default="calm,volatile,trending")
    rec.add_argument("--seeds", default="101,102")
    rec.add_argument("--model", default="linear_skew")
    rec.add_argument("--seconds", type=float, default=60.0)
    rec.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    fit_p = sub.add_parser("fit", help="fit the paper fill model to the recordings")
    fit_p.add_argument("recordings", nargs="*", type=Path, help="files (default: all in --dir)")
    fit_p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    fit_p.add_argument("--out", type=Path, default=RESULTS / "paper_calibration.json")
    fit_p.add_argument("--fit-seeds", default="1,2,3", help="seeds each candidate is run with")
    fit_p.add_argument("--iterations", type=int, default=60)
    fit_p.add_argument("--start-rate", type=float, default=1.0)
    fit_p.add_argument("--start-rate-per-bps", type=float, default=1.0)
    fit_p.add_argument("--start-size", type=float, default=1.0)
    fit_p.add_argument("--start-size-per-bps", type=float, default=1.0)
    fit_p.add_argument("--verbose", action="store_true")
    exc = sub.add_parser(
        "excursions", help="moves a 100 ms book cannot show: Binance against the simulator"
    )
    exc.add_argument("--seconds", type=float, default=600.0, help="of each synthetic regime")
    exc.add_argument("--seed", type=int, default=5)
    exc.add_argument("--out", type=Path, default=RESULTS / "paper_excursions.json")
    tch = sub.add_parser(
        "touch",
        help="who joins the touch: Binance against the simulator, and where live orders rest",
    )
    tch.add_argument("--seconds", type=float, default=600.0, help="of each synthetic regime")
    tch.add_argument("--seed", type=int, default=5)
    tch.add_argument(
        "--without-joiners",
        dest="joiners",
        action="store_false",
        help="the simulator's books as they were before makers joined the touch",
    )
    tch.add_argument("--live-regimes", default="calm,trending", help="'' for none")
    tch.add_argument("--live-seed", type=int, default=7)
    tch.add_argument("--live-seconds", type=float, default=60.0)
    tch.add_argument("--out", type=Path, default=RESULTS / "paper_touch.json")
    uns = sub.add_parser(
        "unseen", help="live fills of never-exposed orders: what the public trades showed"
    )
    uns.add_argument("recordings", nargs="*", type=Path, help="files (default: all in --dir)")
    uns.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    uns.add_argument("--out", type=Path, default=RESULTS / "paper_unseen.json")
    args = parser.parse_args(argv)
    if args.command == "unseen":
        cmd_unseen(args)
    elif args.command == "record":
        cmd_record(args)
    elif args.command == "excursions":
        cmd_excursions(args)
    elif args.command == "touch":
        cmd_touch(args)
    else:
        cmd_fit(args)


if __name__ == "__main__":
    main()
