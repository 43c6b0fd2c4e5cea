"""The config file: what it accepts, what it refuses, and how it says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mm_daemon.config import Config, ConfigError, config_summary, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config" / "default.yaml"


def _default_data() -> dict[str, object]:
    data = yaml.safe_load(DEFAULT.read_text())
    assert isinstance(data, dict)
    return data


def _problems(data: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ or {})
    return caught.value.problems


def test_default_config_is_valid() -> None:
    config = load_config(DEFAULT, environ={})
    assert config.mode.value == "paper"
    assert config.venues["sim-spot"].endpoint == "sim"
    assert [m.symbol for m in config.markets] == ["BTC/USDT", "ETH/USDT"]
    assert all(m.hedge is not None for m in config.markets)


def test_every_shipped_config_validates() -> None:
    for path in sorted((REPO / "config").glob("*.yaml")):
        assert isinstance(load_config(path, environ={}), Config), path


def test_unknown_key_is_named_with_its_path() -> None:
    data = _default_data()
    data["quoting"] = {"model": "fixed", "sprad_bps": 3}
    assert _problems(data) == [
        "quoting.sprad_bps: unknown key (check its spelling against config/schema.json)"
    ]


def test_wrong_type_is_named_with_its_path() -> None:
    data = _default_data()
    data["quoting"] = {"levels": "many"}
    (problem,) = _problems(data)
    assert problem.startswith("quoting.levels: ")
    assert "integer" in problem


def test_negative_size_is_refused() -> None:
    data = _default_data()
    data["quoting"] = {"order_size_base": -0.01}
    (problem,) = _problems(data)
    assert problem.startswith("quoting.order_size_base: ")
    assert "greater than 0" in problem


def test_missing_symbol_is_refused() -> None:
    data = _default_data()
    data["markets"] = [{"venue": "sim-spot"}]
    assert _problems(data) == ["markets.0.symbol: Field required"]


def test_every_problem_is_reported_at_once() -> None:
    data = _default_data()
    data["quoting"] = {"levels": 0, "order_size_base": 0}
    problems = _problems(data)
    assert {p.split(":")[0] for p in problems} == {"quoting.levels", "quoting.order_size_base"}


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mode: paper\nvenues:\n  maker: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:4:")
    assert "invalid YAML" in problem


def test_off_written_plainly_in_the_yaml_is_the_word_off(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML's default) reads `off`, `on`, `yes` and `no` as booleans.
    text = DEFAULT.read_text().replace("  mode: threshold", "  mode: off")
    text += "runtime:\n  busy_poll: no\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config = load_config(path, environ={})
    assert config.hedging.mode.value == "off"
    assert config.runtime.busy_poll is False


def test_off_from_the_environment_is_the_word_off() -> None:
    config = parse_config(_default_data(), {"MMD_HEDGING__MODE": "off"})
    assert config.hedging.mode.value == "off"


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", environ={})
    assert "cannot read the config file" in caught.value.problems[0]


@pytest.mark.parametrize("field", ["api_key", "api_secret"])
def test_secret_in_yaml_is_refused_with_how_to_pass_it(field: str) -> None:
    data = _default_data()
    spot = dict(data["venues"]["sim-spot"])  # type: ignore[index]
    spot[field] = "s3cr3t-value"
    data["venues"] = {**data["venues"], "sim-spot": spot}  # type: ignore[dict-item]
    (problem,) = _problems(data)
    assert problem.startswith(f"venues.sim-spot.{field}: secrets are not accepted")
    assert f"MMD_VENUES__SIM_SPOT__{field.upper()}" in problem
    assert "s3cr3t-value" not in problem


def test_environment_overrides_nested_fields() -> None:
    config = parse_config(
        _default_data(),
        {"MMD_QUOTING__SPREAD_BPS": "7.5", "MMD_METRICS__PORT": "0", "MMD_MODE": "live"},
    )
    assert config.quoting.spread_bps == 7.5
    assert config.metrics.port == 0
    assert config.mode.value == "live"


def test_environment_override_is_validated_too() -> None:
    (problem,) = _problems(_default_data(), {"MMD_QUOTING__LEVELS": "-1"})
    assert problem.startswith("quoting.levels: ")


def test_mmd_variables_read_outside_the_config_are_allowed() -> None:
    config = parse_config(_default_data(), {"MMD_DATA_DIR": "data", "MMD_CONFIRM_MAINNET": "no"})
    assert config.mode.value == "paper"


def test_mmd_variable_naming_an_unknown_section_is_refused() -> None:
    (problem,) = _problems(_default_data(), {"MMD_QUOTNG__SPREAD_BPS": "5"})
    assert problem.startswith("MMD_QUOTNG__SPREAD_BPS: names no config section")
    assert "quoting" in problem


def test_mmd_variable_without_a_section_separator_is_refused() -> None:
    (problem,) = _problems(_default_data(), {"MMD_SPREAD": "5"})
    assert problem.startswith("MMD_SPREAD: names no config section")


def test_secret_from_environment_is_a_secretstr() -> None:
    config = parse_config(
        _default_data(),
        {"MMD_VENUES__SIM_SPOT__API_KEY": "key-123456", "MMD_VENUES__SIM_SPOT__API_SECRET": "007"},
    )
    spot = config.venues["sim-spot"]
    assert spot.api_key is not None
    assert spot.api_key.get_secret_value() == "key-123456"
    # A numeric-looking secret stays the exact string, not a YAML-parsed number.
    assert spot.api_secret is not None
    assert spot.api_secret.get_secret_value() == "007"


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("file-secret-value\n")
    data = _default_data()
    data["venues"]["sim-spot"]["api_secret_file"] = "secret.txt"  # type: ignore[index]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, environ={})
    secret = config.venues["sim-spot"].api_secret
    assert secret is not None
    assert secret.get_secret_value() == "file-secret-value"


def test_unreadable_secret_file_names_the_field(tmp_path: Path) -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["api_secret_file"] = str(tmp_path / "missing")  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("venues.sim-spot.api_secret_file: cannot read")


def test_secret_never_in_repr_or_summary() -> None:
    secret = "very-secret-key-42"
    config = parse_config(_default_data(), {"MMD_VENUES__SIM_SPOT__API_SECRET": secret})
    assert secret not in repr(config)
    assert secret not in str(config)
    assert secret not in config.model_dump_json()
    assert secret not in config_summary(config)


def test_secret_never_in_validation_errors() -> None:
    secret = "very-secret-key-43"
    problems = _problems(
        _default_data(),
        {"MMD_VENUES__SIM_SPOT__API_SECRET": secret, "MMD_VENUES__SIM_SPOT__ENDPOINT": "ftp://x"},
    )
    assert problems
    assert all(secret not in p for p in problems)


def test_levels_beyond_inventory_limit_are_refused() -> None:
    data = _default_data()
    data["quoting"] = {"order_size_base": 0.05, "levels": 3}
    data["inventory"] = {"limit_base": 0.1}
    (problem,) = _problems(data)  # BTC inherits them; ETH sets a size and limit of its own
    assert problem.startswith("markets.0.quoting.order_size_base: 3 level(s) add up to 0.15")


def test_min_spread_below_round_trip_fees_is_refused() -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["maker_fee_bps"] = 1.5  # type: ignore[index]
    data["quoting"] = {"min_spread_bps": 2.0}
    (problem,) = _problems(data)
    assert problem.startswith(
        "markets.0.quoting.min_spread_bps: 2 bps is below the round-trip maker fee of 3 bps"
    )


def test_min_spread_below_fees_accepted_when_explicitly_allowed() -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["maker_fee_bps"] = 1.5  # type: ignore[index]
    data["quoting"] = {"min_spread_bps": 2.0, "allow_spread_below_fees": True}
    assert parse_config(data, {}).markets[0].quoting.min_spread_bps == 2.0


def test_hedging_without_a_hedge_is_refused() -> None:
    data = _default_data()
    data["markets"] = [{"venue": "sim-spot", "symbol": "BTC/USDT"}]
    data["hedging"] = {"mode": "threshold"}
    (problem,) = _problems(data)
    assert problem.startswith("markets.0.hedging.mode: hedging needs markets.0.hedge")


def test_endpoint_must_be_known_or_a_url() -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["endpoint"] = "moon"  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("venues.sim-spot.endpoint: ")


def test_config_is_frozen() -> None:
    config = load_config(DEFAULT, environ={})
    with pytest.raises(Exception, match="frozen"):
        config.mode = config.mode  # type: ignore[misc]


# -- several markets ----------------------------------------------------------------------------

ONE_MARKET = """
venues:
  spot: {exchange: binance}
  perp: {exchange: binanceusdm}
markets:
  - {venue: spot, symbol: BTC/USDT, hedge: {venue: perp, symbol: BTC/USDT:USDT}}
"""


def test_one_market_is_a_few_lines() -> None:
    config = parse_config(yaml.safe_load(ONE_MARKET), {})
    (market,) = config.markets
    assert (market.name, market.asset) == ("BTC/USDT@spot", "BTC")
    assert config.venue_of(market).name == "spot"
    assert market.hedge is not None
    assert market.hedge.venue == "perp"


def test_a_market_takes_the_defaults_with_its_own_keys_on_top() -> None:
    data = _default_data()
    data["quoting"] = {"model": "fixed", "spread_bps": 3.0, "levels": 1}
    btc, eth = parse_config(data, {}).markets
    assert (btc.quoting.model.value, btc.quoting.spread_bps) == ("fixed", 3.0)
    assert (eth.quoting.model.value, eth.quoting.order_size_base) == ("fixed", 0.2)
    assert (btc.inventory.limit_base, eth.inventory.limit_base) == (0.1, 2.0)


def test_a_bad_key_in_a_default_section_is_reported_once() -> None:
    data = _default_data()
    data["inventory"] = {"limit_bse": 1.0}
    assert _problems(data) == [
        "inventory.limit_bse: unknown key (check its spelling against config/schema.json)"
    ]


def test_a_market_on_an_unknown_venue_is_refused_naming_the_venues() -> None:
    data = _default_data()
    data["markets"] = [{"venue": "sim-spto", "symbol": "BTC/USDT"}]
    data["hedging"] = {"mode": "off"}
    (problem,) = _problems(data)
    assert problem.startswith("markets.0.venue: 'sim-spto' is not a venue")
    assert "sim-perp, sim-spot" in problem


def test_the_same_market_twice_is_refused() -> None:
    data = _default_data()
    data["markets"] = [data["markets"][0], data["markets"][0]]  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("markets.1.name: 'BTC/USDT@sim-spot' is also markets.0's name")


def test_markets_of_one_asset_must_hedge_alike() -> None:
    data = yaml.safe_load(ONE_MARKET)
    data["venues"]["spot2"] = {"exchange": "binance"}
    data["markets"].append(
        {
            "venue": "spot2",
            "symbol": "BTC/USDT",
            "hedge": {"venue": "perp", "symbol": "BTC/USDT:USDT"},
            "hedging": {"threshold_base": 0.5},
        }
    )
    (problem,) = _problems(data)
    assert problem.startswith("markets.1.hedge: markets of BTC are hedged together")


def test_an_old_shape_config_is_refused_saying_where_each_field_moved() -> None:
    old = {
        "venues": {
            "maker": {"name": "sim-spot", "exchange": "binance", "symbol": "BTC/USDT"},
            "hedge": {
                "name": "sim-perp",
                "exchange": "binanceusdm",
                "symbol": "BTC/USDT:USDT",
                "hedge_ratio": 1.0,
            },
        }
    }
    assert _problems(old) == [
        "venues.maker.name: a venue is now named by its key: venues.sim-spot: "
        "{exchange: ..., endpoint: ...}",
        "venues.maker.exchange: moved to venues.sim-spot.exchange",
        "venues.maker.symbol: moved to markets[0].symbol, with markets[0].venue: sim-spot "
        "(a market is a symbol on a named venue)",
        "venues.hedge.name: a venue is now named by its key: venues.sim-perp: "
        "{exchange: ..., endpoint: ...}",
        "venues.hedge.exchange: moved to venues.sim-perp.exchange",
        "venues.hedge.symbol: moved to markets[0].hedge.symbol, with markets[0].hedge.venue: "
        "sim-perp (a market is a symbol on a named venue)",
        "venues.hedge.hedge_ratio: moved to hedging.ratio (the hedge's units per unit)",
    ]


def test_a_market_field_is_overridden_from_the_environment_by_index() -> None:
    config = parse_config(_default_data(), {"MMD_MARKETS__1__QUOTING__SPREAD_BPS": "9"})
    assert [m.quoting.spread_bps for m in config.markets] == [1.0, 9.0]


def test_an_override_of_a_market_that_does_not_exist_is_refused() -> None:
    (problem,) = _problems(_default_data(), {"MMD_MARKETS__5__QUOTING__SPREAD_BPS": "9"})
    assert problem.startswith("markets.5.quoting.spread_bps: no such entry")


def test_portfolio_limits_are_read() -> None:
    config = load_config(DEFAULT, environ={})
    assert config.portfolio.max_gross_notional_quote == 50_000.0
    assert config.portfolio.max_net_notional_quote is None


def test_the_simulator_lists_btc_and_eth_unless_told_otherwise() -> None:
    config = load_config(DEFAULT, environ={})
    assert [asset.base for asset in config.sim.assets] == ["BTC", "ETH"]


def test_a_simulator_asset_may_be_a_name_or_a_mapping() -> None:
    data = _default_data()
    data["sim"] = {"assets": ["BTC", {"base": "SOL", "start_price_quote": 150.0}]}
    btc, sol = parse_config(data, {}).sim.assets
    assert (btc.base, btc.start_price_quote) == ("BTC", None)
    assert (sol.base, sol.start_price_quote) == ("SOL", 150.0)


def test_a_simulator_asset_listed_twice_is_refused() -> None:
    data = _default_data()
    data["sim"] = {"assets": ["BTC", "ETH", "BTC"]}
    assert _problems(data) == ["sim.assets.2.base: BTC is listed twice"]


def test_a_lower_case_simulator_asset_is_refused_naming_it() -> None:
    data = _default_data()
    data["sim"] = {"assets": ["BTC", "eth"]}
    (problem,) = _problems(data)
    assert problem.startswith("sim.assets.1.base: String should match pattern")


def test_a_correlation_on_the_first_simulator_asset_is_refused() -> None:
    data = _default_data()
    data["sim"] = {"assets": [{"base": "BTC", "return_correlation": 0.5}, "ETH"]}
    assert _problems(data) == [
        "sim.assets.0.return_correlation: the first asset drives the others; set the "
        "correlation on the others"
    ]


def test_a_scheduled_fault_on_a_symbol_the_simulator_does_not_list_is_refused() -> None:
    data = _default_data()
    data["sim"] = {
        "faults": [{"at_seconds": 1, "venue": "sim-spot", "kind": "gap", "symbol": "SOLUSDT"}]
    }
    assert _problems(data) == ["sim.faults.0.symbol: SOLUSDT is not listed (sim.assets: BTC, ETH)"]


def test_a_scheduled_fault_of_the_whole_venue_naming_a_symbol_is_refused() -> None:
    data = _default_data()
    data["sim"] = {
        "faults": [
            {"at_seconds": 1, "venue": "sim-spot", "kind": "disconnect", "symbol": "ETHUSDT"}
        ]
    }
    assert _problems(data) == [
        "sim.faults.0.symbol: disconnect acts on the whole venue; leave symbol out"
    ]


# -- the control API's token ---------------------------------------------------------------------

CONTROL_TOKEN = "ctl-token-0123456789abcdef"


def test_the_control_token_comes_from_its_environment_variable_as_a_secret() -> None:
    config = parse_config(_default_data(), {"MMD_CONTROL__TOKEN": CONTROL_TOKEN})
    assert config.control.token is not None
    assert config.control.token.get_secret_value() == CONTROL_TOKEN
    assert CONTROL_TOKEN not in repr(config)


def test_a_control_token_that_yaml_would_read_as_a_number_stays_text() -> None:
    config = parse_config(_default_data(), {"MMD_CONTROL__TOKEN": "1234567890123456"})
    assert config.control.token is not None
    assert config.control.token.get_secret_value() == "1234567890123456"


def test_a_control_token_in_the_yaml_is_refused() -> None:
    data = _default_data()
    data["control"] = {"token": CONTROL_TOKEN}
    (problem,) = _problems(data)
    assert problem.startswith("control.token: secrets are not accepted in the YAML file")
    assert CONTROL_TOKEN not in problem


def test_the_control_token_file_is_read_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(CONTROL_TOKEN + "\n")
    data = _default_data()
    data["control"] = {"token_file": "token"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, environ={})
    assert config.control.token is not None
    assert config.control.token.get_secret_value() == CONTROL_TOKEN


def test_a_short_control_token_is_refused() -> None:
    (problem,) = _problems(_default_data(), {"MMD_CONTROL__TOKEN": "short"})
    assert problem.startswith("control.token: ")
    assert "16 characters" in problem


def test_an_http_server_beyond_loopback_without_a_token_is_refused_naming_control_token() -> None:
    (problem,) = _problems(_default_data(), {"MMD_METRICS__HOST": "0.0.0.0"})  # noqa: S104  the case under test
    assert problem.startswith("control.token: the HTTP server binds 0.0.0.0")
    assert "MMD_CONTROL__TOKEN" in problem


def test_an_http_server_beyond_loopback_takes_a_token_or_the_control_api_off() -> None:
    remote = {"MMD_METRICS__HOST": "0.0.0.0"}  # noqa: S104  the case under test
    with_token = parse_config(_default_data(), {**remote, "MMD_CONTROL__TOKEN": CONTROL_TOKEN})
    control_off = parse_config(_default_data(), {**remote, "MMD_CONTROL__ENABLED": "false"})
    assert with_token.metrics.host == control_off.metrics.host == "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_http_server_needs_no_token(host: str) -> None:
    config = parse_config(_default_data(), {"MMD_METRICS__HOST": host})
    assert config.control.token is None


def test_the_ctl_url_variable_is_not_taken_for_a_config_field() -> None:
    config = parse_config(_default_data(), {"MMD_CONTROL_URL": "http://127.0.0.1:9464"})
    assert config.control.enabled


def test_mmd_variable_naming_an_unknown_key_of_a_known_section_is_refused_naming_it() -> None:
    (problem,) = _problems(_default_data(), {"MMD_QUOTING__SPRED_BPS": "5"})
    assert problem.startswith("MMD_QUOTING__SPRED_BPS: sets quoting.spred_bps, an unknown key")


def test_token_bucket_keys_of_a_venue_are_refused_naming_the_order_budget() -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["rate_limit_orders_per_second"] = 10.0  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith(
        "venues.sim-spot.rate_limit_orders_per_second: replaced by venues.sim-spot.order_budget"
    )


def test_simulator_order_limit_key_is_refused_naming_its_limits_section() -> None:
    data = _default_data()
    data["sim"]["max_orders_per_10_seconds"] = 100  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("sim.max_orders_per_10_seconds: replaced by sim.limits")


def test_venue_rate_limits_set_by_hand_are_validated() -> None:
    data = _default_data()
    data["venues"]["sim-spot"]["order_budget"] = {  # type: ignore[index]
        "rate_limits": [{"kind": "orders", "interval_seconds": 10, "limit": 0}]
    }
    (problem,) = _problems(data)
    assert problem.startswith("venues.sim-spot.order_budget.rate_limits.0.limit:")


def test_simulator_enforces_binance_limits_by_default() -> None:
    config = parse_config(_default_data(), {})
    assert config.sim.limits.enabled
    assert config.sim.limits.spot_orders_per_10_seconds == 100
