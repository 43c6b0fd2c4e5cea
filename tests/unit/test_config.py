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
    assert config.venues.maker.endpoint == "sim"
    assert config.venues.hedge is not None


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
    data["venues"] = {"maker": {"name": "sim-spot", "exchange": "binance"}}
    data["hedging"] = {"mode": "off"}
    assert _problems(data) == ["venues.maker.symbol: Field required"]


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
    maker = dict(data["venues"]["maker"])  # type: ignore[index]
    maker[field] = "s3cr3t-value"
    data["venues"] = {**data["venues"], "maker": maker}  # type: ignore[dict-item]
    (problem,) = _problems(data)
    assert problem.startswith(f"venues.maker.{field}: secrets are not accepted")
    assert f"MMD_VENUES__MAKER__{field.upper()}" in problem
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


def test_unrelated_mmd_variables_are_ignored() -> None:
    config = parse_config(_default_data(), {"MMD_DATA_DIR": "data", "MMD_CONFIRM_MAINNET": "no"})
    assert config.mode.value == "paper"


def test_secret_from_environment_is_a_secretstr() -> None:
    config = parse_config(
        _default_data(),
        {"MMD_VENUES__MAKER__API_KEY": "key-123456", "MMD_VENUES__MAKER__API_SECRET": "007"},
    )
    assert config.venues.maker.api_key is not None
    assert config.venues.maker.api_key.get_secret_value() == "key-123456"
    # A numeric-looking secret stays the exact string, not a YAML-parsed number.
    assert config.venues.maker.api_secret is not None
    assert config.venues.maker.api_secret.get_secret_value() == "007"


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("file-secret-value\n")
    data = _default_data()
    data["venues"]["maker"]["api_secret_file"] = "secret.txt"  # type: ignore[index]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, environ={})
    assert config.venues.maker.api_secret is not None
    assert config.venues.maker.api_secret.get_secret_value() == "file-secret-value"


def test_unreadable_secret_file_names_the_field(tmp_path: Path) -> None:
    data = _default_data()
    data["venues"]["maker"]["api_secret_file"] = str(tmp_path / "missing")  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("venues.maker.api_secret_file: cannot read")


def test_secret_never_in_repr_or_summary() -> None:
    secret = "very-secret-key-42"
    config = parse_config(_default_data(), {"MMD_VENUES__MAKER__API_SECRET": secret})
    assert secret not in repr(config)
    assert secret not in str(config)
    assert secret not in config.model_dump_json()
    assert secret not in config_summary(config)


def test_secret_never_in_validation_errors() -> None:
    secret = "very-secret-key-43"
    problems = _problems(
        _default_data(),
        {"MMD_VENUES__MAKER__API_SECRET": secret, "MMD_VENUES__MAKER__ENDPOINT": "ftp://x"},
    )
    assert problems
    assert all(secret not in p for p in problems)


def test_levels_beyond_inventory_limit_are_refused() -> None:
    data = _default_data()
    data["quoting"] = {"order_size_base": 0.05, "levels": 3}
    data["inventory"] = {"limit_base": 0.1}
    (problem,) = _problems(data)
    assert problem.startswith("quoting.order_size_base: 3 level(s) add up to 0.15")


def test_min_spread_below_round_trip_fees_is_refused() -> None:
    data = _default_data()
    data["venues"]["maker"]["maker_fee_bps"] = 1.5  # type: ignore[index]
    data["quoting"] = {"min_spread_bps": 2.0}
    (problem,) = _problems(data)
    assert problem.startswith("quoting.min_spread_bps: 2 bps is below the round-trip maker fee")


def test_min_spread_below_fees_accepted_when_explicitly_allowed() -> None:
    data = _default_data()
    data["venues"]["maker"]["maker_fee_bps"] = 1.5  # type: ignore[index]
    data["quoting"] = {"min_spread_bps": 2.0, "allow_spread_below_fees": True}
    assert parse_config(data, {}).quoting.min_spread_bps == 2.0


def test_hedging_without_hedge_venue_is_refused() -> None:
    data = _default_data()
    del data["venues"]["hedge"]  # type: ignore[attr-defined]
    data["hedging"] = {"mode": "threshold"}
    (problem,) = _problems(data)
    assert problem.startswith("hedging.mode: hedging needs venues.hedge")


def test_endpoint_must_be_known_or_a_url() -> None:
    data = _default_data()
    data["venues"]["maker"]["endpoint"] = "moon"  # type: ignore[index]
    (problem,) = _problems(data)
    assert problem.startswith("venues.maker.endpoint: ")


def test_config_is_frozen() -> None:
    config = load_config(DEFAULT, environ={})
    with pytest.raises(Exception, match="frozen"):
        config.mode = config.mode  # type: ignore[misc]
