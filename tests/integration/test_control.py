"""The control plane of a real daemon trading live at a standalone simulator: pause, resume,
kill (and a restart after it), reset, live reload (HTTP and SIGHUP), readiness during a stall,
and the token kept out of everything the daemon writes.

Each test runs its own daemon process with its own accounts (an API key of its own at the
simulator) and journal; the simulator process is shared by the module. The daemon quotes two
markets, one on each venue (spot BTC/USDT, USD-M BTC/USDT:USDT), one level a side.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mm_daemon.engine.journal.recovery import load_run_series
from tests.integration.processes import (
    TOKEN,
    DaemonProcess,
    live_config,
    start_daemon,
)
from tests.procs import SimProcess
from tests.support import poll

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

VENUES = ("sim-spot", "sim-perp")
SPOT_MARKET = "BTC/USDT@sim-spot"
PERP_MARKET = "BTC/USDT:USDT@sim-perp"
QUOTES_DEADLINE_SECONDS = 20.0
ONE_SECOND = 1.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    simulator = SimProcess.start(tmp_path_factory.mktemp("sim"))
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def config(sim: SimProcess, tmp_path: Path) -> dict[str, Any]:
    return live_config(sim, tmp_path / "state")


@pytest.fixture
def daemon(config: dict[str, Any], tmp_path: Path) -> Iterator[DaemonProcess]:
    running = start_daemon(config, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _resting_on_both(sim: SimProcess, daemon: DaemonProcess) -> dict[str, list[dict[str, Any]]]:
    """Our orders at each venue, once both venues hold some."""

    def both() -> dict[str, list[dict[str, Any]]] | None:
        orders = {venue: sim.open_orders(venue, daemon.api_key) for venue in VENUES}
        return orders if all(orders.values()) else None

    return poll(
        both,
        deadline_seconds=QUOTES_DEADLINE_SECONDS,
        interval_seconds=0.05,
        what="orders of the daemon resting on both venues",
    )


def _none_on_either(sim: SimProcess, daemon: DaemonProcess) -> bool:
    return not any(sim.open_orders(venue, daemon.api_key) for venue in VENUES)


def _stays_empty(sim: SimProcess, daemon: DaemonProcess, seconds: float) -> None:
    """Watch the venues for `seconds`: no order of the daemon may appear."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert _none_on_either(sim, daemon), "an order was placed while it must not be"
        time.sleep(0.05)


def _spot_spread_bps(sim: SimProcess, daemon: DaemonProcess) -> float | None:
    """The spread of our resting bid and ask at the spot venue (None: not both resting)."""
    orders = sim.open_orders("sim-spot", daemon.api_key)
    bids = [float(o["price"]) for o in orders if o["side"] == "BUY"]
    asks = [float(o["price"]) for o in orders if o["side"] == "SELL"]
    if not bids or not asks:
        return None
    bid, ask = max(bids), min(asks)
    return (ask - bid) / ((ask + bid) / 2) * 1e4


def _spread_at_least(sim: SimProcess, daemon: DaemonProcess, bps: float) -> float:
    def wide() -> float | None:
        spread = _spot_spread_bps(sim, daemon)
        return spread if spread is not None and spread >= bps else None

    return poll(
        wide,
        deadline_seconds=QUOTES_DEADLINE_SECONDS,
        interval_seconds=0.05,
        what=f"our spot quotes at least {bps:g} bps apart",
    )


# -- pause, resume -------------------------------------------------------------------------------


@pytest.mark.timing
def test_pause_pulls_every_order_within_a_second_and_sets_the_paused_gauge(
    sim: SimProcess, daemon: DaemonProcess
) -> None:
    _resting_on_both(sim, daemon)
    sent = time.monotonic()
    reply = daemon.post("/pause")
    assert reply.status == 200, reply.text
    assert reply.body["result"] == "ok"
    poll(
        lambda: True if _none_on_either(sim, daemon) else None,
        deadline_seconds=ONE_SECOND,
        interval_seconds=0.02,
        what="no order of the daemon left at either venue",
    )
    assert time.monotonic() - sent < ONE_SECOND
    for market in (SPOT_MARKET, PERP_MARKET):
        assert daemon.metric("mm_quoting_paused", market=market) == 1.0
        assert daemon.metric("mm_operator_paused", market=market) == 1.0


@pytest.mark.timing
def test_resume_brings_the_quotes_back_within_a_second(
    sim: SimProcess, daemon: DaemonProcess
) -> None:
    _resting_on_both(sim, daemon)
    assert daemon.post("/pause").status == 200
    poll(
        lambda: True if _none_on_either(sim, daemon) else None,
        deadline_seconds=5.0,
        interval_seconds=0.02,
        what="the pause pulling the quotes",
    )
    sent = time.monotonic()
    reply = daemon.post("/resume")
    assert reply.status == 200, reply.text
    poll(
        lambda: True if all(sim.open_orders(v, daemon.api_key) for v in VENUES) else None,
        deadline_seconds=ONE_SECOND,
        interval_seconds=0.02,
        what="quotes back on both venues",
    )
    assert time.monotonic() - sent < ONE_SECOND
    assert daemon.metric("mm_quoting_paused", market=SPOT_MARKET) == 0.0


def test_pausing_one_market_leaves_the_other_quoting(
    sim: SimProcess, daemon: DaemonProcess
) -> None:
    _resting_on_both(sim, daemon)
    reply = daemon.post("/pause", {"markets": [PERP_MARKET]})
    assert reply.status == 200, reply.text
    poll(
        lambda: True if not sim.open_orders("sim-perp", daemon.api_key) else None,
        deadline_seconds=5.0,
        interval_seconds=0.02,
        what="the perp market's quotes pulled",
    )
    assert sim.open_orders("sim-spot", daemon.api_key)


# -- kill, reset ---------------------------------------------------------------------------------


def test_kill_cancels_every_order_on_both_venues_and_halts_every_market(
    sim: SimProcess, daemon: DaemonProcess
) -> None:
    _resting_on_both(sim, daemon)
    reply = daemon.post("/kill", {"reason": "test"})
    assert reply.status == 200, reply.text
    assert reply.body["result"] == "ok"
    assert reply.body["still_open"] == []
    # The answer comes after the venues confirmed: nothing is left by then.
    assert _none_on_either(sim, daemon)
    for market in daemon.status()["markets"]:
        assert market["risk"]["state"] == "HALTED"
        assert market["risk"]["killed"] is True
    assert daemon.metric("mm_operator_halted", market=SPOT_MARKET) == 1.0
    _stays_empty(sim, daemon, ONE_SECOND)


def test_a_killed_daemon_is_still_halted_after_a_restart_until_reset(
    sim: SimProcess, config: dict[str, Any], tmp_path: Path
) -> None:
    first = start_daemon(config, tmp_path)
    try:
        _resting_on_both(sim, first)
        assert first.post("/kill").status == 200
    finally:
        assert first.stop() == 0
    second = start_daemon(config, tmp_path, api_key=first.api_key)
    try:
        markets = second.status()["markets"]
        assert [m["risk"]["state"] for m in markets] == ["HALTED", "HALTED"]
        assert all(m["risk"]["killed"] for m in markets)
        _stays_empty(sim, second, ONE_SECOND)

        reply = second.post("/reset")
        assert reply.status == 200, reply.text
        assert sorted(reply.body["markets"]) == sorted([SPOT_MARKET, PERP_MARKET])
        _resting_on_both(sim, second)
        assert second.metric("mm_operator_halted", market=SPOT_MARKET) == 0.0
    finally:
        second.stop()


# -- reload --------------------------------------------------------------------------------------


def test_reload_moves_the_live_quotes_to_the_new_spread(
    sim: SimProcess, daemon: DaemonProcess, config: dict[str, Any]
) -> None:
    _resting_on_both(sim, daemon)
    before = _spot_spread_bps(sim, daemon)
    assert before is not None
    assert before < 15.0
    daemon.write_config({**config, "quoting": {**config["quoting"], "spread_bps": 30.0}})
    reply = daemon.post("/reload")
    assert reply.status == 200, reply.text
    assert reply.body["result"] == "ok"
    assert {
        "market": SPOT_MARKET,
        "field": "quoting.spread_bps",
        "old": 10.0,
        "new": 30.0,
    } in reply.body["changes"]
    _spread_at_least(sim, daemon, 25.0)
    assert daemon.metric("mm_config_reloads_total", result="ok") == 1.0


def test_reload_of_an_invalid_value_is_refused_naming_the_field_and_the_quotes_stay(
    sim: SimProcess, daemon: DaemonProcess, config: dict[str, Any]
) -> None:
    _resting_on_both(sim, daemon)
    daemon.write_config({**config, "quoting": {**config["quoting"], "spread_bps": -5.0}})
    reply = daemon.post("/reload")
    assert reply.status == 422, reply.text
    assert any(p.startswith("quoting.spread_bps:") for p in reply.body["problems"]), reply.body
    assert daemon.metric("mm_config_reloads_total", result="invalid") == 1.0
    # Still quoting, on the old spread.
    spreads = []
    end = time.monotonic() + ONE_SECOND
    while time.monotonic() < end:
        spread = _spot_spread_bps(sim, daemon)
        if spread is not None:
            spreads.append(spread)
        time.sleep(0.05)
    assert spreads
    assert max(spreads) < 15.0


def test_reload_of_a_venue_change_is_refused_naming_the_field(
    daemon: DaemonProcess, config: dict[str, Any]
) -> None:
    venues = {**config["venues"]}
    venues["sim-spot"] = {**venues["sim-spot"], "order_budget": {"usable_fraction": 0.5}}
    daemon.write_config({**config, "venues": venues})
    reply = daemon.post("/reload")
    assert reply.status == 409, reply.text
    assert any(
        p.startswith("venues.sim-spot.order_budget.usable_fraction:")
        for p in reply.body["problems"]
    ), reply.body
    assert daemon.metric("mm_config_reloads_total", result="refused") == 1.0


def test_sighup_reloads_like_post_reload(
    sim: SimProcess, daemon: DaemonProcess, config: dict[str, Any]
) -> None:
    _resting_on_both(sim, daemon)
    daemon.write_config({**config, "quoting": {**config["quoting"], "spread_bps": 30.0}})
    daemon.signal(signal.SIGHUP)
    _spread_at_least(sim, daemon, 25.0)
    line = daemon.output.wait_for(
        lambda ln: ln.get("event") == "control" and ln.get("caller") == "SIGHUP",
        5.0,
        "the reload's log line",
    )
    assert line["result"] == "ok"


# -- readiness -----------------------------------------------------------------------------------


def test_ready_is_503_during_a_stall_of_the_maker_venue_and_200_after(
    sim: SimProcess, daemon: DaemonProcess
) -> None:
    assert daemon.get("/ready", token=None).status == 200
    sim.fault("sim-spot", "stall", seconds=4.0)
    stalled = poll(
        lambda: reply if (reply := daemon.get("/ready", token=None)).status == 503 else None,
        deadline_seconds=4.0,
        interval_seconds=0.05,
        what="/ready answering 503 during the stall",
    )
    assert f"{SPOT_MARKET}: market data stale" in stalled.body["reasons"]
    poll(
        lambda: True if daemon.get("/ready", token=None).status == 200 else None,
        deadline_seconds=30.0,
        interval_seconds=0.1,
        what="/ready answering 200 after the stall",
    )


# -- the token -----------------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_status_or_errors(daemon: DaemonProcess) -> None:
    wrong = "not-the-token-8f3e2d1c0b9a"
    answers = [
        daemon.get("/status", token=wrong),
        daemon.get("/status"),
        daemon.post("/pause", {"markets": ["no-such-market"]}),
        daemon.post("/kill", token=wrong),
    ]
    assert [a.status for a in answers] == [401, 200, 404, 401]
    assert daemon.stop() == 0
    for text in [*(a.text for a in answers), daemon.output.text]:
        assert TOKEN not in text
        assert wrong not in text


# -- the journal ---------------------------------------------------------------------------------


def test_every_action_done_or_refused_is_journaled_with_the_caller(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    assert daemon.post("/pause").status == 200
    assert daemon.post("/resume", {"markets": ["no-such-market"]}).status == 404
    assert daemon.post("/resume").status == 200
    (journal,) = (tmp_path / "state").glob("*.journal")
    actions = load_run_series(journal).control_actions
    assert [(a.action, a.caller, a.result) for a in actions] == [
        ("pause", "127.0.0.1", "ok"),
        ("resume", "127.0.0.1", "refused"),
        ("resume", "127.0.0.1", "ok"),
    ]
