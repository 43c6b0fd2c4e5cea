"""The paper calibration command on a small recording: it fits what the live orders did."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import RECORDING_INSTRUMENT

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
S = 1_000_000_000
ORDERS_AT_S = range(12, 24)  # one bid a second, after 10 s of observed flow


def recording(picked_off: bool) -> list[dict[str, Any]]:
    """A market at 100.00 / 100.01, 5-lot sells and buys printing at its touch every 100 ms,
    whose touch drops to 99.90 / 99.91 from 200 ms to 500 ms after each of our 20-lot bids at
    99.99 rests. Picked off: each bid fills in full 180 ms after
    it rests (live). Otherwise none fills and each is cancelled after 700 ms."""
    rows: list[dict[str, Any]] = [{"k": "meta", "instrument": RECORDING_INSTRUMENT}]
    moved = [(s * S + 200 * MS, s * S + 500 * MS) for s in ORDERS_AT_S]
    for k in range(250):  # a book update every 100 ms for 25 s
        t = k * 100 * MS
        down = any(a <= t < b for a, b in moved)
        bid, ask = (9990, 9991) if down else (10000, 10001)
        levels = {"b": [[bid, 50]], "a": [[ask, 50]]}
        rows.append({"k": "book", "t": t, "e": t, "snap": True, **levels})
        if down:
            continue  # no prints while the touch is away: only exposure can fill our bids
        for n, (side, price) in enumerate(((-1, bid), (1, ask))):
            tt = t + 10 * MS + n
            rows.append(
                {"k": "trade", "t": tt, "e": tt, "id": 2 * k + n, "p": price, "q": 5, "s": side}
            )
    for i, s in enumerate(ORDERS_AT_S):
        sent = s * S
        oid = f"b{i}"
        rows.append({"k": "place", "t": sent, "id": oid, "s": 1, "p": 9999, "q": 20})
        opened = {"k": "upd", "t": sent + MS, "e": sent + MS, "id": oid, "s": 1, "p": 9999}
        rows.append({**opened, "st": "open", "q": 20, "f": 0})
        if picked_off:
            at = sent + 180 * MS
            rows.append(
                {
                    "k": "fill",
                    "t": at,
                    "e": at,
                    "id": oid,
                    "tid": f"f{i}",
                    "s": 1,
                    "p": 9999,
                    "q": 20,
                }
            )
            rows.append({**opened, "t": at, "e": at, "st": "filled", "q": 20, "f": 20})
        else:
            rows.append({"k": "cancel", "t": sent + 700 * MS, "id": oid})
            cancelled = sent + 701 * MS
            rows.append(
                {**opened, "t": cancelled, "e": cancelled, "st": "cancelled", "q": 20, "f": 0}
            )
    return rows


def fit(tmp_path: Path, picked_off: bool) -> dict[str, Any]:
    path = tmp_path / f"{'picked' if picked_off else 'spared'}.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(row) + "\n" for row in recording(picked_off))
    out = tmp_path / f"{path.stem}.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "calibrate_paper.py"),
            "fit",
            str(path),
            "--out",
            str(out),
            "--iterations",
            "40",
            "--fit-seeds",
            "1,2",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_calibration_fills_exposed_bids_that_live_bids_filled_and_spares_those_it_did_not(
    tmp_path: Path,
) -> None:
    picked = fit(tmp_path, picked_off=True)
    spared = fit(tmp_path, picked_off=False)
    exposed = "> 0.3 bps"
    picked_bucket = picked["buckets"][exposed]
    assert picked_bucket["orders"] == len(ORDERS_AT_S)
    assert picked_bucket["live_lots"] == 20 * len(ORDERS_AT_S)
    # The fitted exposure fills most of what the live bids filled, and nothing of the spared.
    assert picked_bucket["paper_lots"] >= 0.7 * picked_bucket["live_lots"]
    assert spared["buckets"][exposed]["paper_lots"] <= 0.1 * picked_bucket["live_lots"]

    def rate_at(fitted: dict[str, float], depth_bps: float) -> float:
        slope = fitted["exposure_rate_multiplier_per_bps"]
        return fitted["exposure_rate_multiplier"] + slope * depth_bps

    # The bids at 99.99 sit 8.5 bps past the moved mid (99.905): the fitted arrival rate there.
    assert rate_at(picked["fitted"], 8.5) > 10 * rate_at(spared["fitted"], 8.5)


def test_the_unseen_command_counts_the_filled_orders_of_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "picked.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(row) + "\n" for row in recording(picked_off=True))
    out = tmp_path / "unseen.json"
    command = [str(ROOT / "bench" / "calibrate_paper.py"), "unseen", str(path), "--out", str(out)]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, timeout=120)
    rows = json.loads(out.read_text())
    # Each bid fills 180 ms after it rests and the next update shows the touch below it: all
    # twelve filled, one a second, none of them unseen by the public book.
    assert rows["all"]["filled_orders"] == len(ORDERS_AT_S)
    assert rows["all"]["repeat_orders"] == 0
    assert rows["all"]["fills"] == 0


def test_the_touch_command_compares_the_simulators_touch_with_binances(tmp_path: Path) -> None:
    from mm_daemon.binance.capture import default_data_dir  # noqa: PLC0415

    out = tmp_path / "touch.json"
    command = [str(ROOT / "bench" / "calibrate_paper.py"), "touch", "--seconds", "60"]
    command += ["--live-regimes", "", "--out", str(out)]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, timeout=300)
    markets = json.loads(out.read_text())["markets"]
    calm = markets["simulator calm spot"]
    # The simulator's calm touch is joined about five times a second a side and holds about
    # 2 BTC, as the recorded one does; it moves about once a second.
    assert 3.5 < calm["joins_per_s_side"] < 7.0
    assert 1.0 < calm["median_touch_base"] < 3.5
    assert 0.5 < calm["moves_per_s_side"] < 2.5
    if default_data_dir().is_dir():
        binance = markets["binance spot BTCUSDT"]
        assert binance["joins_per_s_side"] == pytest.approx(5.14, abs=0.01)
        assert binance["median_touch_base"] == pytest.approx(1.99, abs=0.01)
