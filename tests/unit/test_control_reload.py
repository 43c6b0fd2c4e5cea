"""What a live reload may change: the tunable fields listed as changes, anything else refused
naming its field (and never its value)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from mm_daemon.config import Config, parse_config
from mm_daemon.engine.control import plan_reload

REPO = Path(__file__).resolve().parents[2]
BTC = "BTC/USDT@sim-spot"
ETH = "ETH/USDT@sim-spot"


def _data() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config" / "default.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _config(data: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    return parse_config(copy.deepcopy(data), environ or {})


def _changes(old: dict[str, Any], new: dict[str, Any]) -> set[tuple[str | None, str, Any, Any]]:
    plan = plan_reload(_config(old), _config(new))
    assert plan.refused == []
    return {(c.market, c.field, c.old, c.new) for c in plan.changes}


def test_the_same_file_changes_nothing() -> None:
    plan = plan_reload(_config(_data()), _config(_data()))
    assert plan.changes == []
    assert plan.refused == []


def test_a_default_spread_changes_every_market_that_inherits_it() -> None:
    new = _data()
    new["quoting"]["spread_bps"] = 3.0
    assert _changes(_data(), new) == {
        (BTC, "quoting.spread_bps", 1.0, 3.0),
        (ETH, "quoting.spread_bps", 1.0, 3.0),
    }


def test_a_markets_own_value_changes_that_market_only() -> None:
    new = _data()
    new["markets"][1]["inventory"]["limit_base"] = 3.0
    assert _changes(_data(), new) == {(ETH, "inventory.limit_base", 2.0, 3.0)}


def test_hedging_risk_and_portfolio_limits_are_tunable() -> None:
    new = _data()
    new["hedging"]["threshold_base"] = 0.05
    new["risk"] = {"max_drawdown_quote": 500.0}
    new["portfolio"]["max_drawdown_quote"] = 800.0
    changes = _changes(_data(), new)
    assert (BTC, "hedging.threshold_base", 0.03, 0.05) in changes
    assert (BTC, "risk.max_drawdown_quote", 1000.0, 500.0) in changes
    assert (None, "portfolio.max_drawdown_quote", 1000.0, 800.0) in changes


def test_an_enum_change_is_shown_by_its_value() -> None:
    new = _data()
    new["quoting"]["model"] = "fixed"
    assert (BTC, "quoting.model", "linear_skew", "fixed") in _changes(_data(), new)


def test_the_log_level_is_tunable() -> None:
    new = _data()
    new["logging"]["level"] = "debug"
    assert _changes(_data(), new) == {(None, "logging.level", "info", "debug")}


def test_a_venue_change_is_refused_naming_the_field() -> None:
    new = _data()
    new["venues"]["sim-spot"]["order_budget"] = {"usable_fraction": 0.5}
    plan = plan_reload(_config(_data()), _config(new))
    assert plan.refused == [
        "venues.sim-spot.order_budget.usable_fraction: cannot change while the daemon runs "
        "(restart it to apply the change)"
    ]


def test_a_mode_change_is_refused() -> None:
    new = _data()
    new["mode"] = "live"
    assert [p.split(":")[0] for p in plan_reload(_config(_data()), _config(new)).refused] == [
        "mode"
    ]


def test_a_changed_list_of_markets_is_refused() -> None:
    new = _data()
    new["markets"] = new["markets"][:1]
    (problem,) = plan_reload(_config(_data()), _config(new)).refused
    assert problem.startswith("markets: the list of markets cannot change")


def test_a_markets_symbol_change_is_refused_naming_it() -> None:
    new = _data()
    new["markets"][1]["symbol"] = "SOL/USDT"
    refused = plan_reload(_config(_data()), _config(new)).refused
    assert any(p.startswith("markets.1.symbol:") for p in refused), refused


def test_a_changed_secret_is_refused_without_its_value() -> None:
    old = _config(_data(), {"MMD_VENUES__SIM_SPOT__API_KEY": "first-key-aaaaaaaa"})
    new = _config(_data(), {"MMD_VENUES__SIM_SPOT__API_KEY": "second-key-bbbbbbb"})
    (problem,) = plan_reload(old, new).refused
    assert problem.startswith("venues.sim-spot.api_key:")
    assert "first-key" not in problem
    assert "second-key" not in problem


def test_refused_and_tunable_changes_are_both_reported() -> None:
    new = _data()
    new["quoting"]["spread_bps"] = 3.0
    new["state"] = {"dir": "elsewhere"}
    plan = plan_reload(_config(_data()), _config(new))
    assert [p.split(":")[0] for p in plan.refused] == ["state.dir"]
    assert len(plan.changes) == 2
