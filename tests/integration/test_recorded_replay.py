"""`mm-daemon replay`: the daemon on the recorded Binance captures, in virtual time.

The recorded frames go through the live adapter's own reader (`NativeStream`) into the same
trader, order manager, paper execution and hedger as a live run; the loop's clock jumps from
frame to frame. The tests run the real command as a process (and the adapter in process for the
book check); they skip, saying why, where the captures are absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from mm_daemon.binance.capture import FrameKind
from mm_daemon.config import load_config
from mm_daemon.core.types import BookDelta, MarketEvent, MarketStatus
from mm_daemon.engine.entry import open_recorded
from mm_daemon.venues.recorded import RecordedMarketData
from tests.integration.conftest import data_dir

REPO = Path(__file__).resolve().parents[2]
REPLAY_CONFIG = REPO / "config" / "replay.yaml"
OVERLAP_SECONDS = 345.9  # spot and perpetual captures overlap 2024-08-08 23:54:17 -> 00:00:01
PNL_COMPONENTS = ("spread_capture", "fees", "inventory", "hedge_cost", "basis")

DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="the recorded captures are not here")


def replay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mm_daemon", "replay", *args],
        cwd=REPO,
        env={**os.environ, **(env or {}), **({"MMD_DATA_DIR": str(DATA)} if DATA else {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("replay") / "summary.json"
    result = replay("--config", str(REPLAY_CONFIG), "--summary-json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run summary" in result.stdout
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@needs_data
def test_replay_covers_the_whole_overlap_of_the_captures(summary: dict[str, Any]) -> None:
    assert summary["duration_seconds"] == pytest.approx(OVERLAP_SECONDS, abs=1.0)


@needs_data
def test_replay_quotes_fills_and_hedges_on_the_recorded_flow(summary: dict[str, Any]) -> None:
    quoting = summary["fills"]["quoting"]
    assert quoting["count"] > 100
    assert quoting["buys"] > 0
    assert quoting["sells"] > 0
    assert quoting["taker"] == 0  # post-only quotes
    assert summary["hedging"]["orders"] > 0
    assert abs(summary["net_exposure_base"]) <= 0.1  # inventory.limit_base
    assert summary["markouts_bps"]["1s"]["count"] == quoting["count"]


@needs_data
def test_replay_pnl_components_add_up_to_the_total(summary: dict[str, Any]) -> None:
    pnl = summary["pnl_quote"]
    assert sum(pnl[c] for c in PNL_COMPONENTS) == pytest.approx(pnl["total"], abs=1e-6)


@needs_data
def test_replay_is_deterministic(summary: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "again.json"
    result = replay("--config", str(REPLAY_CONFIG), "--summary-json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(out.read_text()) == summary


@needs_data
def test_duration_replays_only_the_first_seconds(tmp_path: Path) -> None:
    out = tmp_path / "short.json"
    result = replay("--config", str(REPLAY_CONFIG), "--duration", "30", "--summary-json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(out.read_text())["duration_seconds"] == pytest.approx(30.0, abs=0.01)


@needs_data
def test_replay_log_lines_carry_the_recorded_time() -> None:
    result = replay("--config", str(REPLAY_CONFIG), "--duration", "30")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    fills = [line for line in lines if line["event"] == "fill"]
    assert fills
    # The captures run from 2024-08-08 23:54 UTC; the first 30 s stay inside that minute range.
    assert all(line["timestamp"].startswith("2024-08-08T23:5") for line in fills)


def test_exchange_without_captures_ends_in_one_line_naming_the_field() -> None:
    result = replay(
        "--config", str(REPLAY_CONFIG), env={"MMD_VENUES__BINANCE_SPOT__EXCHANGE": "bybit"}
    )
    assert result.returncode == 2
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1
    assert plain[0].startswith("venues.binance-spot.exchange: 'bybit' has no recorded captures")
    assert "Traceback" not in result.stderr


def test_missing_captures_end_in_one_line_naming_the_folder(tmp_path: Path) -> None:
    result = replay("--config", str(REPLAY_CONFIG), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == [
        f"markets.0.symbol: no spot capture of BTCUSDT under {tmp_path} "
        "(--data-dir or MMD_DATA_DIR names the folder)"
    ]


def touch_checked(market: RecordedMarketData, checked: dict[str, int]) -> Any:
    """`market.on_recorded`, then: the book's touch equals the recorded bookTicker of the same
    update id (kept by id: a 100 ms depth batch can arrive after the ticker of its last
    update, so the comparison waits until the book gets there)."""
    handle = market.on_recorded
    tickers: dict[int, tuple[float, float]] = {}
    inst = next(iter(market.instruments.values()))

    def on_recorded(kind: FrameKind, raw: bytes, local_ns: int) -> None:
        handle(kind, raw, local_ns)
        if kind is FrameKind.BOOK_TICKER:
            ticker = orjson.loads(raw)["data"]
            tickers[ticker["u"]] = (float(ticker["b"]), float(ticker["a"]))
        book = market.book(inst.symbol)
        touch = tickers.pop(book.update_id, None)
        if touch is not None:
            assert book.best_bid()[0] == inst.price_to_ticks(touch[0])  # type: ignore[index]
            assert book.best_ask()[0] == inst.price_to_ticks(touch[1])  # type: ignore[index]
            checked[market.venue] += 1

    return on_recorded


@needs_data
def test_replayed_books_equal_every_recorded_book_ticker_of_the_same_update() -> None:
    assert DATA is not None
    config = load_config(REPLAY_CONFIG, environ={})
    loop, markets = open_recorded(config, DATA)
    checked = {m.venue: 0 for m in markets.markets}
    events: list[MarketEvent] = []

    for market in markets.markets:
        market.on_recorded = touch_checked(market, checked)  # type: ignore[method-assign]

    try:
        played = loop.run_until_complete(markets.play_into(events.append))
    finally:
        loop.close()
    assert played > 100_000
    # Both books synced once and never went stale; every shared update id matched.
    statuses = [(e.venue, e.stale, e.reason) for e in events if isinstance(e, MarketStatus)]
    assert statuses == [
        ("binance-spot", False, "synced"),
        ("binance-usdm", False, "synced"),
    ]
    assert checked["binance-spot"] > 500, checked
    assert checked["binance-usdm"] > 600, checked
    assert sum(isinstance(e, BookDelta) for e in events) > 5_000


# -- sweeps ---------------------------------------------------------------------------------------


@needs_data
def test_sweep_replays_every_combination_with_its_values(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    result = replay(
        "--config", str(REPLAY_CONFIG), "--duration", "60",
        "--set", "quoting.spread_bps=0.5,4", "--set", "hedging.mode=off,threshold",
        "--jobs", "2", "--summary-json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    runs = json.loads(out.read_text())
    assert [r["set"] for r in runs] == [
        {"quoting.spread_bps": "0.5", "hedging.mode": "off"},
        {"quoting.spread_bps": "0.5", "hedging.mode": "threshold"},
        {"quoting.spread_bps": "4", "hedging.mode": "off"},
        {"quoting.spread_bps": "4", "hedging.mode": "threshold"},
    ]
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["quoting.spread_bps", "hedging.mode", "P&L"]
    assert len(table) == 2 + len(runs)
    fills = [r["summary"]["fills"]["quoting"]["count"] for r in runs]
    assert fills[2] < fills[0]  # a wider spread fills less, all else equal
    assert fills[3] < fills[1]
    assert runs[0]["summary"]["hedging"]["orders"] == 0  # hedging off
    assert runs[2]["summary"]["hedging"]["orders"] == 0


@needs_data
def test_a_sweep_row_equals_the_single_replay_with_the_same_override(tmp_path: Path) -> None:
    swept, single = tmp_path / "sweep.json", tmp_path / "single.json"
    sweep = replay(
        "--config", str(REPLAY_CONFIG), "--duration", "30",
        "--set", "quoting.model=fixed,glft", "--summary-json", str(swept),
    )  # fmt: skip
    one = replay(
        "--config", str(REPLAY_CONFIG), "--duration", "30", "--summary-json", str(single),
        env={"MMD_QUOTING__MODEL": "glft"},
    )  # fmt: skip
    assert sweep.returncode == one.returncode == 0, sweep.stderr[-2000:] + one.stderr[-2000:]
    assert json.loads(swept.read_text())[1]["summary"] == json.loads(single.read_text())


def test_a_sweep_value_the_config_refuses_is_named_before_any_replay() -> None:
    result = replay(
        "--config", str(REPLAY_CONFIG), "--set", "quoting.spread_bps=1,wide",
    )  # fmt: skip
    assert result.returncode == 2
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1
    assert plain[0].startswith("quoting.spread_bps: ")
    assert plain[0].endswith("(with quoting.spread_bps=wide)")


@needs_data
@pytest.mark.parametrize(
    ("config", "environ", "fees_bps"),
    [
        # endpoint: sim -> the simulator's fees, as a run on the embedded simulator charges.
        ("default.yaml", {}, [(0.0, 4.0), (0.0, 2.0)] * 2),  # BTC, then ETH
        # another endpoint without configured fees -> Binance's published ones.
        (
            "replay.yaml",
            {
                "MMD_VENUES__BINANCE_SPOT__MAKER_FEE_BPS": "null",
                "MMD_VENUES__BINANCE_SPOT__TAKER_FEE_BPS": "null",
                "MMD_VENUES__BINANCE_USDM__MAKER_FEE_BPS": "null",
                "MMD_VENUES__BINANCE_USDM__TAKER_FEE_BPS": "null",
                "MMD_QUOTING__ALLOW_SPREAD_BELOW_FEES": "true",  # 20 bps round trip
            },
            [(10.0, 10.0), (2.0, 5.0)],
        ),
    ],
)
def test_replayed_instruments_charge_the_fees_a_live_run_would(
    config: str, environ: dict[str, str], fees_bps: list[tuple[float, float]]
) -> None:
    assert DATA is not None
    loaded = load_config(REPO / "config" / config, environ=environ)
    loop, markets = open_recorded(loaded, DATA)
    loop.close()
    instruments = [next(iter(m.instruments.values())) for m in markets.markets]
    assert [
        (round(i.maker_fee_rate * 1e4, 6), round(i.taker_fee_rate * 1e4, 6)) for i in instruments
    ] == fees_bps
