"""The one-line status a daemon prints on a terminal."""

from __future__ import annotations

from typing import Any

from mm_daemon.control import api
from mm_daemon.control.statusline import duration, status_line


def _market(name: str, **overrides: Any) -> api.MarketStatus:
    fields: dict[str, Any] = {
        "name": name,
        "venue": "sim-spot",
        "symbol": name.split("@", maxsplit=1)[0],
        "asset": "BTC",
        "stale": False,
        "fair_value": 60_000.5,
        "best_bid": 60_000.0,
        "best_ask": 60_001.0,
        "quote_bid": 59_990.0,
        "quote_ask": 60_010.0,
        "open_orders": [],
        "position_base": 0.02,
        "net_exposure_base": 0.02,
        "pnl": {"total": 1.234},
        "markouts_bps": {},
        "markout_counts": {},
        "risk": api.RiskStatus(state="ACTIVE", reason="", killed=False, peak_pnl_quote=None),
        "paused": False,
        "pause_reason": "",
        "operator_paused": False,
        "order_budget": [api.BudgetWindow(window="orders_10s", used=3, limit=100)],
    }
    fields.update(overrides)
    return api.MarketStatus(**fields)


def _status(*markets: api.MarketStatus) -> api.Status:
    return api.Status(
        instance_id="mmd-x",
        version="0",
        mode="paper",
        run_id=1,
        state="trading",
        started_at="2024-01-01T00:00:00+00:00",
        uptime_seconds=65.0,
        readiness=api.Readiness(ready=True, reasons=[]),
        markets=list(markets),
        failed_markets={},
        assets=[],
        venues=[],
        portfolio=api.PortfolioStatus(
            pnl={"total": 1.5},
            gross_notional_quote=0.0,
            halted_reason="",
            max_gross_notional_quote=None,
            max_net_notional_quote=None,
            max_drawdown_quote=None,
        ),
        errors=[],
    )


def test_the_line_shows_each_markets_fair_value_quotes_position_and_pnl() -> None:
    line = status_line(_status(_market("BTC/USDT@sim-spot")), now=0)
    assert "trading up 1m05s" in line
    assert "BTC/USDT@sim-spot 60000.50 [59990.00 60010.00] pos +0.0200 pnl +1.23" in line
    assert line.endswith("total +1.50")
    assert "\n" not in line


def test_a_market_that_does_not_quote_says_why() -> None:
    halted = api.RiskStatus(state="HALTED", reason="killed", killed=True, peak_pnl_quote=None)
    line = status_line(
        _status(
            _market("BTC/USDT@sim-spot", operator_paused=True, paused=True),
            _market("ETH/USDT@sim-spot", risk=halted, paused=True, pause_reason="halted"),
            _market("SOL/USDT@sim-spot", stale=True, paused=True, pause_reason="stale"),
        ),
        now=0,
    )
    assert "pnl +1.23 PAUSED |" in line
    assert "pnl +1.23 KILLED |" in line
    assert "pnl +1.23 STALE |" in line


def test_durations_read_as_a_person_says_them() -> None:
    assert [duration(s) for s in (42, 185, 3720)] == ["42s", "3m05s", "1h02m"]
