"""`mm-daemon record` then `mm-daemon replay` on what it wrote: the workflow of recording a
market (here the embedded simulator, as config/default.yaml runs it) to tune against later."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mm_daemon.binance.capture import CaptureRecorder
from mm_daemon.config import parse_config
from mm_daemon.engine.entry import record
from mm_daemon.sim.runner import SimulatorHandle
from tests.support import eventually

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config" / "default.yaml"
RECORD_SECONDS = 6


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mm_daemon", *args],
        cwd=REPO,
        env={**os.environ, "MMD_METRICS__PORT": "0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_recording_replays_gap_free_with_the_daemon_trading_on_it(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    recorded = cli(
        "record", "--config", str(DEFAULT), "--out", str(folder),
        "--duration", str(RECORD_SECONDS),
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    written = recorded.stdout.splitlines()
    assert len(written) == 4  # BTC and ETH, spot and perpetual: one capture file each
    assert all(" 1 snapshot(s)" in line for line in written)
    summary = tmp_path / "summary.json"
    replayed = cli(
        "replay", "--config", str(DEFAULT), "--data-dir", str(folder),
        "--summary-json", str(summary),
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    lines = [json.loads(x) for x in replayed.stderr.splitlines() if x.startswith("{")]
    synced = sorted((x["venue"], x["symbol"]) for x in lines if x["event"] == "book synced")
    assert synced == [
        ("sim-perp", "BTC/USDT:USDT"),
        ("sim-perp", "ETH/USDT:USDT"),
        ("sim-spot", "BTC/USDT"),
        ("sim-spot", "ETH/USDT"),
    ]
    # Every frame continued the one before it: no gap, no resync, no warning.
    assert [x for x in lines if x["level"] in {"warning", "error"}] == []
    data = json.loads(summary.read_text())
    assert RECORD_SECONDS - 2 < data["duration_seconds"] <= RECORD_SECONDS + 1
    assert data["fills"]["quoting"]["count"] > 0


def test_an_exchange_that_cannot_be_recorded_is_named_in_one_line(tmp_path: Path) -> None:
    result = cli(
        "record", "--config", str(DEFAULT), "--out", str(tmp_path), "--duration", "1",
        env={"MMD_VENUES__SIM_SPOT__EXCHANGE": "bybit"},
    )  # fmt: skip
    assert result.returncode == 2
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1
    assert plain[0].startswith("venues.sim-spot.exchange: 'bybit' cannot be recorded")


async def test_a_book_that_resynced_while_recording_resyncs_in_the_replay(
    sim: SimulatorHandle, admin: Any, tmp_path: Path
) -> None:
    venues = {
        name: {
            "exchange": exchange,
            "endpoint": sim.endpoint(name).rest,
            "maker_fee_bps": 0.0,
            "taker_fee_bps": 4.0,
        }
        for name, exchange in (("sim-spot", "binance"), ("sim-perp", "binanceusdm"))
    }
    markets = [
        {
            "venue": "sim-spot",
            "symbol": "BTC/USDT",
            "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
        }
    ]
    data = {"mode": "paper", "venues": venues, "markets": markets, "metrics": {"enabled": False}}
    config = parse_config(data, environ={})
    folder = tmp_path / "recording"
    recorder = CaptureRecorder(folder)
    recording = asyncio.get_running_loop().create_task(record(config, folder, 6.0, recorder))

    def spot_frames() -> int:
        return sum(w.frames for p, w in recorder.writers.items() if p.startswith("spot/"))

    await eventually(lambda: spot_frames() >= 20, interval_s=0.01, what="20 spot frames")
    await admin.fault("sim-spot", "disconnect")  # the recorder reconnects and resyncs
    writers = await recording
    assert sorted(w.snapshots for w in writers) == [1, 2]  # spot synced twice, perp once
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    replayed = cli("replay", "--config", str(config_path), "--data-dir", str(folder))
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    lines = [json.loads(x) for x in replayed.stderr.splitlines() if x.startswith("{")]
    synced = [x["venue"] for x in lines if x["event"] == "book synced"]
    assert sorted(synced) == ["sim-perp", "sim-spot", "sim-spot"]
