"""Funding on the simulator's USD-M venue, seen as a Binance client sees it: the mark price
stream, settlements moving the wallet, the FUNDING_FEE account event and the income history
(through unmodified ccxt).

Settlements every 2 s at a fixed rate of 0.1 %, on a frozen book (speed 0), so the mark price
and the amount of every settlement are known."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from mm_daemon.config import SimConfig
from mm_daemon.sim.runner import SimulatorHandle, VenueEndpoint
from tests.integration.conftest import PERP, TEST_KEY
from tests.support import eventually

RATE = 0.001
INTERVAL_S = 2.0
SYMBOL = "BTC/USDT:USDT"
POSITION_BASE = 0.01
MARK_KEYS = {"e", "E", "s", "p", "i", "P", "r", "T"}


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig.model_validate(
        {"seed": 7, "funding": {"interval_seconds": INTERVAL_S, "fixed_rate": RATE}}
    )


@pytest.fixture
def market_speed() -> float:
    return 0.0


async def _mark_frames(endpoint: VenueEndpoint, stream: str, count: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{endpoint.ws}/market/ws") as ws,
    ):
        await ws.send_str(
            orjson.dumps({"method": "SUBSCRIBE", "params": [stream], "id": 1}).decode()
        )
        async with asyncio.timeout(15):
            async for msg in ws:
                data = orjson.loads(msg.data)
                if data.get("e") == "markPriceUpdate":
                    frames.append(data)
                    if len(frames) == count:
                        break
    return frames


def _mid(sim: SimulatorHandle) -> float:
    sym = sim.venues[PERP].symbols["BTCUSDT"]
    bid, ask = sym.engine.best_bid(), sym.engine.best_ask()
    assert bid is not None
    assert ask is not None
    return (bid[0] + ask[0]) * sym.instrument.tick_size / 2


async def test_mark_price_stream_frames_are_shaped_like_binances(
    sim: SimulatorHandle, perp_endpoint: VenueEndpoint
) -> None:
    (frame,) = await _mark_frames(perp_endpoint, "btcusdt@markPrice@1s", 1)
    assert set(frame) == MARK_KEYS
    assert (frame["e"], frame["s"], frame["r"]) == ("markPriceUpdate", "BTCUSDT", "0.00100000")
    assert float(frame["p"]) == pytest.approx(_mid(sim))
    assert all(isinstance(frame[k], str) for k in ("p", "i", "P", "r"))


async def test_the_next_funding_time_is_the_next_interval_boundary(
    perp_endpoint: VenueEndpoint,
) -> None:
    (frame,) = await _mark_frames(perp_endpoint, "btcusdt@markPrice@1s", 1)
    assert frame["T"] % round(INTERVAL_S * 1000) == 0
    assert 0 < frame["T"] - frame["E"] <= INTERVAL_S * 1000


async def test_the_one_second_stream_updates_every_second_and_the_plain_one_every_three(
    perp_endpoint: VenueEndpoint,
) -> None:
    fast, slow = await asyncio.gather(
        _mark_frames(perp_endpoint, "btcusdt@markPrice@1s", 4),
        _mark_frames(perp_endpoint, "btcusdt@markPrice", 2),
    )
    fast_gaps = [b["E"] - a["E"] for a, b in itertools.pairwise(fast)]
    assert all(700 <= gap <= 1500 for gap in fast_gaps), fast_gaps
    assert 2500 <= slow[1]["E"] - slow[0]["E"] <= 3500


async def _long_position(make_exchange: Any) -> Any:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    await exchange.create_order(SYMBOL, "market", "buy", POSITION_BASE)
    return exchange


async def test_a_settlement_charges_a_long_position_times_mark_price_times_rate(
    sim: SimulatorHandle, make_exchange: Any
) -> None:
    await _long_position(make_exchange)
    funding = sim.venues[PERP].funding
    assert funding is not None
    await eventually(
        lambda: funding.income.get(TEST_KEY), timeout_s=10, what="a funding settlement"
    )
    assert funding.income[TEST_KEY][0].income == round(-POSITION_BASE * _mid(sim) * RATE, 8)


async def test_settlements_move_the_wallet_balance_by_the_income(
    sim: SimulatorHandle, make_exchange: Any
) -> None:
    await _long_position(make_exchange)
    funding = sim.venues[PERP].funding
    assert funding is not None
    wallet = sim.venues[PERP].accounts.get(TEST_KEY).balance("USDT")
    before = wallet.total
    await eventually(
        lambda: len(funding.income.get(TEST_KEY, ())) >= 2, timeout_s=10, what="2 settlements"
    )
    moved = wallet.total - before
    assert moved == pytest.approx(sum(r.income for r in funding.income[TEST_KEY]), abs=1e-9)


async def test_funding_history_through_ccxt_lists_every_settlement(
    sim: SimulatorHandle, make_exchange: Any
) -> None:
    exchange = await _long_position(make_exchange)
    funding = sim.venues[PERP].funding
    assert funding is not None
    await eventually(
        lambda: len(funding.income.get(TEST_KEY, ())) >= 2, timeout_s=10, what="2 settlements"
    )
    history = await exchange.fetch_funding_history(SYMBOL)
    records = funding.income[TEST_KEY][: len(history)]
    assert [(h["id"], h["amount"], h["timestamp"], h["code"]) for h in history] == [
        (str(r.tran_id), r.income, r.time_ms, "USDT") for r in records
    ]


def _signed(params: dict[str, Any]) -> str:
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.digest(TEST_KEY.encode(), query.encode(), "sha256").hex()
    return f"{query}&signature={signature}"


async def test_income_answers_the_time_window_and_limit_oldest_first(
    sim: SimulatorHandle, make_exchange: Any, perp_endpoint: VenueEndpoint
) -> None:
    await _long_position(make_exchange)
    funding = sim.venues[PERP].funding
    assert funding is not None
    await eventually(
        lambda: len(funding.income.get(TEST_KEY, ())) >= 3, timeout_s=12, what="3 settlements"
    )
    first, second, third = funding.income[TEST_KEY][:3]
    query = _signed(
        {
            "incomeType": "FUNDING_FEE",
            "startTime": second.time_ms,
            "endTime": third.time_ms,
            "limit": 1,
        }
    )
    async with (
        aiohttp.ClientSession(headers={"X-MBX-APIKEY": TEST_KEY}) as session,
        session.get(f"{perp_endpoint.rest}/fapi/v1/income?{query}") as response,
    ):
        body = await response.json()
    assert body == [
        {
            "symbol": "BTCUSDT",
            "incomeType": "FUNDING_FEE",
            "income": f"{second.income:.8f}",
            "asset": "USDT",
            "info": "FUNDING_FEE",
            "time": second.time_ms,
            "tranId": second.tran_id,
            "tradeId": "",
        }
    ]
    assert first.time_ms < second.time_ms


async def test_a_settlement_is_pushed_as_account_update_with_reason_funding_fee(
    sim: SimulatorHandle, make_exchange: Any, perp_endpoint: VenueEndpoint
) -> None:
    await _long_position(make_exchange)
    async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": TEST_KEY}) as session:
        async with session.post(f"{perp_endpoint.rest}/fapi/v1/listenKey") as response:
            listen_key = (await response.json())["listenKey"]
        async with session.ws_connect(
            f"{perp_endpoint.ws}/private/ws?listenKey={listen_key}"
        ) as ws:
            async with asyncio.timeout(10):
                async for msg in ws:
                    event = orjson.loads(msg.data)
                    if event.get("e") == "ACCOUNT_UPDATE" and event["a"]["m"] == "FUNDING_FEE":
                        break
    wallet = sim.venues[PERP].accounts.get(TEST_KEY).balance("USDT").total
    assert event["a"]["P"] == []
    (balance,) = event["a"]["B"]
    assert balance["a"] == "USDT"
    assert float(balance["wb"]) == pytest.approx(wallet, abs=1e-8)


async def test_premium_index_reports_mark_rate_and_next_funding_time(
    sim: SimulatorHandle, perp_endpoint: VenueEndpoint
) -> None:
    funding = sim.venues[PERP].funding
    assert funding is not None
    await eventually(lambda: "BTCUSDT" in funding.marks, timeout_s=5, what="a mark price")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{perp_endpoint.rest}/fapi/v1/premiumIndex?symbol=BTCUSDT") as response,
    ):
        body = await response.json()
    assert body["lastFundingRate"] == "0.00100000"
    assert body["nextFundingTime"] % round(INTERVAL_S * 1000) == 0
    assert float(body["markPrice"]) == pytest.approx(_mid(sim))
