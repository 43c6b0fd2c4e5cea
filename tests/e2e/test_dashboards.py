"""The Grafana dashboards and provisioning: generated, consistent, loadable as files."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.e2e.conftest import DEPLOY, REPO
from tests.e2e.dashboards import (
    dashboard_files,
    escape_regex,
    load,
    panels,
    queries,
    substitute,
    variables,
)
from tests.e2e.metric_names import exported_metric_names, metric_names_in

pytestmark = pytest.mark.e2e

PROVISIONING = DEPLOY / "grafana" / "provisioning"
OVERVIEW = DEPLOY / "grafana" / "dashboards" / "mm-daemon-overview.json"
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__all"}
PORTFOLIO_ROW = "Portfolio"


def _generator() -> ModuleType:
    path = REPO / "tools" / "gen_dashboards.py"
    spec = importlib.util.spec_from_file_location("gen_dashboards", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _datasource_uid() -> str:
    files = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    assert files, "no datasource provisioning file"
    sources = [s for f in files for s in yaml.safe_load(f.read_text())["datasources"]]
    assert len(sources) == 1
    return str(sources[0]["uid"])


def test_checked_in_dashboards_equal_the_generator_output() -> None:
    gen = _generator()
    built = gen.build_dashboards()
    assert sorted(built) == [p.name for p in dashboard_files()]
    for name, model in built.items():
        checked_in = (gen.DASHBOARDS_DIR / name).read_text(encoding="utf-8")
        assert checked_in == gen.render(model), f"{name}: run python tools/gen_dashboards.py"


def test_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    assert gen.main(["--check", "--out", str(tmp_path)]) == 0
    stale = next(tmp_path.glob("*.json"))
    stale.write_text(stale.read_text(encoding="utf-8").replace("P&L", "PnL"), encoding="utf-8")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


def test_dashboards_have_stable_unique_uids_and_no_input_placeholders() -> None:
    uids = []
    for path in dashboard_files():
        text = path.read_text(encoding="utf-8")
        dashboard = load(path)
        assert "__inputs" not in dashboard
        assert "${DS_" not in text
        assert re.fullmatch(r"[a-z0-9-]{1,40}", str(dashboard["uid"]))
        uids.append(dashboard["uid"])
    assert "mm-daemon-overview" in uids
    assert len(uids) == len(set(uids))


def test_every_panel_and_query_uses_the_provisioned_datasource_uid() -> None:
    uid = _datasource_uid()
    for path in dashboard_files():
        for panel in panels(load(path)):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            for target in panel["targets"]:  # type: ignore[attr-defined]
                assert target["datasource"]["uid"] == uid, panel["title"]


def test_panel_ids_are_unique_within_each_dashboard() -> None:
    for path in dashboard_files():
        ids = [panel["id"] for panel in panels(load(path))]
        assert len(ids) == len(set(ids)), path.name


def test_overview_has_market_venue_and_symbol_variables() -> None:
    names = [v.name for v in variables(OVERVIEW)]
    assert {"market", "venue", "symbol"} <= set(names)


def test_market_variable_is_a_multi_select_of_the_market_label() -> None:
    (market,) = (v for v in variables(OVERVIEW) if v.name == "market")
    assert market.label == "market"
    assert metric_names_in(market.selector) == {"mm_quoting_paused"}
    templating = load(OVERVIEW)["templating"]
    (raw,) = (v for v in templating["list"] if v["name"] == "market")  # type: ignore[index]
    assert raw["multi"] is True
    assert raw["includeAll"] is True


def test_per_market_series_are_filtered_by_the_market_variable() -> None:
    # Outside the portfolio row, which shows every market on purpose.
    per_market = exported_metric_names(label="market")
    checked = 0
    for query in queries(OVERVIEW):
        if query.row == PORTFOLIO_ROW:
            continue
        for name in metric_names_in(query.expr) & per_market:
            for selector in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", query.expr):
                checked += 1
                matchers = selector[1] or ""
                assert 'market=~"$market"' in matchers, f"{query.panel}: {selector[0]}"
    assert checked >= 10


def test_portfolio_row_shows_totals_exposure_per_asset_and_every_market() -> None:
    portfolio = [q for q in queries(OVERVIEW) if q.row == PORTFOLIO_ROW]
    exprs = " ".join(q.expr for q in portfolio)
    for metric in (
        "mm_pnl_quote",
        "mm_gross_notional_quote",
        "mm_net_exposure_base",
        "mm_net_notional_quote",
        "mm_market_up",
    ):
        assert metric in exprs, metric
    assert "$market" not in exprs


def test_queries_refer_only_to_defined_variables() -> None:
    for path in dashboard_files():
        defined = {v.name for v in variables(path)} | GRAFANA_BUILTINS
        for query in queries(path):
            # $1, $2: label_replace's capture groups, which Grafana leaves as they are.
            used = set(re.findall(r"\$([A-Za-z_]\w*)", query.expr))
            assert used <= defined, f"{query.panel}: undefined {used - defined}"


def test_overview_covers_every_area_the_operators_watch() -> None:
    exprs = " ".join(q.expr for q in queries(OVERVIEW))
    for metric in (
        "mm_pnl_quote",
        "mm_market_pnl_quote",
        "mm_market_up",
        "mm_risk_state",
        "mm_quoting_paused",
        "mm_gross_notional_quote",
        "mm_net_notional_quote",
        "mm_max_drawdown_quote",
        "mm_open_orders",
        "mm_unhedged_exposure_seconds_total",
        "mm_inventory_base",
        "mm_net_exposure_base",
        "mm_inventory_limit_base",
        "mm_quote_price",
        "mm_fair_value",
        "mm_book_best_bid",
        "mm_book_best_ask",
        "mm_quoted_spread_bps",
        "mm_fills_total",
        "mm_markout_bps_bucket",
        "mm_hedge_orders_total",
        "mm_hedge_slippage_bps_bucket",
        "mm_tick_to_quote_seconds_bucket",
        "mm_md_latency_seconds_bucket",
        "mm_ws_reconnects_total",
        "mm_book_resyncs_total",
        "mm_market_stale",
        "mm_orders_total",
        "mm_order_rejects_total",
        "mm_operator_paused",
        "mm_operator_halted",
        "mm_control_requests_total",
        "mm_config_reloads_total",
    ):
        assert metric in exprs, metric


def test_dashboards_use_only_metrics_the_daemon_exports() -> None:
    exported = exported_metric_names()
    for path in dashboard_files():
        for query in queries(path):
            unknown = metric_names_in(query.expr) - exported
            assert not unknown, f"{query.panel}: {unknown}"
        for variable in variables(path):
            assert metric_names_in(variable.selector) <= exported, variable.name


def test_variable_substitution_escapes_regex_characters_as_grafana_does() -> None:
    expr = 'x{venue=~"$venue", symbol=~"$symbol"}[$__rate_interval]'
    out = substitute(
        expr,
        {"venue": ["sim-spot", "sim-perp"], "symbol": ["BTC/USDT.P"]},
        {"__rate_interval": "10s"},
    )
    assert out == 'x{venue=~"(sim-spot|sim-perp)", symbol=~"BTC/USDT\\\\.P"}[10s]'
    assert escape_regex("a|b") == "a\\\\|b"


def test_dashboard_provisioning_points_at_the_mounted_dashboards_folder() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "mm-daemon.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
