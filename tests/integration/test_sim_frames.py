"""The simulator's frames have the keys, key order, value types and number formatting of the
real Binance frames recorded in the captures (spot and USD-M: depth, trade, bookTicker, REST
depth snapshot)."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

SPOT = "sim-spot"
PERP = "sim-perp"
FILES = {SPOT: "spot/btcusdt_20240808.gz", PERP: "usdm/btcusdt_20240808.gz"}
STREAMS = {
    SPOT: ("btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"),
    PERP: ("btcusdt@depth@0ms", "btcusdt@trade", "btcusdt@bookTicker"),
}
_DECIMAL = re.compile(r"^-?\d+\.(\d+)$")


def _data_dir() -> Path | None:
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() and (path / "usdm").is_dir() else None


DATA = _data_dir()
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(DATA is None, reason="recorded captures absent (set MMD_DATA_DIR)"),
]


@pytest.fixture
def market_speed() -> float:
    return 5.0


def shape(value: Any) -> Any:
    """What a frame looks like without its values: keys in order, types, and the decimals of
    numbers sent as strings. A list of strings (a [price, qty] level) keeps every element;
    any other list is represented by its first element (None when empty)."""
    if isinstance(value, dict):
        return ("dict", tuple((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        if value and all(isinstance(item, str) for item in value):
            return ("strs", tuple(shape(item) for item in value))
        return ("list", shape(value[0]) if value else None)
    if isinstance(value, str):
        match = _DECIMAL.match(value)
        return f"decimal.{len(match.group(1))}" if match else "str"
    return type(value).__name__


def same_shape(left: Any, right: Any) -> bool:
    """Shapes equal, where an empty list matches any list (it has no element to compare)."""
    if isinstance(left, tuple) and isinstance(right, tuple) and left[0] == right[0]:
        if left[0] == "list":
            return left[1] is None or right[1] is None or same_shape(left[1], right[1])
        if left[0] == "dict":
            return len(left[1]) == len(right[1]) and all(
                lk == rk and same_shape(lv, rv)
                for (lk, lv), (rk, rv) in zip(left[1], right[1], strict=True)
            )
    return bool(left == right)


def _complete(frame: dict[str, Any]) -> bool:
    data = frame.get("data", frame)
    return all(data.get(side) for side in ("b", "a", "bids", "asks") if side in data)


def _some_levels(frame: dict[str, Any]) -> bool:
    data = frame.get("data", frame)
    sides = [side for side in ("b", "a") if side in data]
    return not sides or any(data[side] for side in sides)


def _recorded(venue: str) -> dict[str, dict[str, Any]]:
    """The first complete recorded frame of each stream, and the REST snapshot."""
    assert DATA is not None
    wanted = {*STREAMS[venue], "snapshot"}
    found: dict[str, dict[str, Any]] = {}
    with gzip.open(DATA / FILES[venue], "rb") as fh:
        for line in fh:
            frame = orjson.loads(line[line.index(b" ") + 1 :])
            name = frame.get("stream", "snapshot" if "lastUpdateId" in frame else None)
            if name in wanted and name not in found and _complete(frame):
                found[name] = frame
            if len(found) == len(wanted):
                break
    return found


async def _simulated(endpoint: Any, streams: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    url = endpoint.ws + "/stream?streams=" + "/".join(streams)
    async with aiohttp.ClientSession() as session:
        async with session.get(endpoint.rest + _depth_path(endpoint)) as resp:
            found["snapshot"] = await resp.json(loads=orjson.loads)
        async with session.ws_connect(url) as ws:
            while len(found) < len(streams) + 1:
                msg = await asyncio.wait_for(ws.receive(), 20)
                frame = orjson.loads(msg.data)
                if frame["stream"] not in found and _some_levels(frame):
                    found[frame["stream"]] = frame
    return found


def _depth_path(endpoint: Any) -> str:
    prefix = "/api/v3" if endpoint.dialect == "spot" else "/fapi/v1"
    return prefix + "/depth?symbol=BTCUSDT&limit=1000"


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_simulator_frames_match_the_recorded_binance_frames_field_for_field(
    venue: str, sim: Any
) -> None:
    recorded = _recorded(venue)
    simulated = await _simulated(sim.endpoint(venue), STREAMS[venue])
    assert set(simulated) == set(recorded)
    for name, frame in recorded.items():
        assert same_shape(shape(simulated[name]), shape(frame)), name
