"""Capture files written by `mm-daemon record` read back as the replay reads recorded captures."""

from __future__ import annotations

from pathlib import Path

import orjson

from mm_daemon.binance.capture import (
    CaptureRecorder,
    FrameKind,
    capture_files,
    envelope_payload,
    read_raw_frames,
)
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT

DEPTH = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":7,"b":[["60000.00","0.5"]],"a":[]}'
TRADE = b'{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"60000.01","q":"0.1","T":2,"m":true}'
SNAPSHOT = {"lastUpdateId": 4, "bids": [["60000.00", "0.4"]], "asks": [["60000.01", "1.0"]]}


def test_recorded_frames_read_back_in_order_with_their_kinds_times_and_bytes(
    tmp_path: Path,
) -> None:
    recorder = CaptureRecorder(tmp_path, started_ns=1_723_161_255_000_000_000)
    writer = recorder.writer(BTC_USDT_SPOT)
    writer.frame(b"btcusdt@depth@100ms", b'{"result":null,"id":1}', 10)  # our SUBSCRIBE's answer
    writer.frame(b"btcusdt@depth@100ms", DEPTH, 11)
    writer.snapshot(SNAPSHOT, 12)
    writer.frame(b"btcusdt@trade", TRADE, 13)
    recorder.close()
    (path,) = capture_files(tmp_path, "spot", "btcusdt")
    assert path.name == "btcusdt_20240808T235415.gz"
    frames = list(read_raw_frames([path]))
    assert [(ns, kind) for ns, kind, _, _ in frames] == [
        (11, FrameKind.DEPTH),
        (12, FrameKind.SNAPSHOT),
        (13, FrameKind.TRADE),
    ]
    assert envelope_payload(frames[0][3]) == DEPTH
    assert orjson.loads(frames[1][3]) == SNAPSHOT
    assert envelope_payload(frames[2][3]) == TRADE
    assert (writer.frames, writer.snapshots) == (2, 1)


def test_each_market_gets_its_own_file_in_its_dialect_folder(tmp_path: Path) -> None:
    recorder = CaptureRecorder(tmp_path, started_ns=1_723_161_255_000_000_000)
    assert recorder.writer(BTC_USDT_SPOT) is recorder.writer(BTC_USDT_SPOT)
    recorder.writer(BTC_USDT_PERP)
    recorder.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gz")) == [
        "spot/btcusdt_20240808T235415.gz",
        "usdm/btcusdt_20240808T235415.gz",
    ]
