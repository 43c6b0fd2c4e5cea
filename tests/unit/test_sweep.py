"""Parameter sweeps: `--set PATH=V1,V2` items, their combinations, and the mistakes refused."""

from __future__ import annotations

import pytest

from mm_daemon.config import ConfigError
from mm_daemon.engine.sweep import SweepAxis, combinations, parse_sets


def test_set_items_become_axes_with_environment_override_keys() -> None:
    axes = parse_sets(["quoting.spread_bps=0.5, 1,2", "hedging.mode=off"])
    assert axes == [
        SweepAxis("quoting.spread_bps", ("0.5", "1", "2")),
        SweepAxis("hedging.mode", ("off",)),
    ]
    assert axes[0].env_key == "MMD_QUOTING__SPREAD_BPS"


def test_combinations_vary_the_first_axis_slowest() -> None:
    axes = [SweepAxis("a.x", ("1", "2")), SweepAxis("b.y", ("p", "q"))]
    assert combinations(axes) == [
        {"a.x": "1", "b.y": "p"},
        {"a.x": "1", "b.y": "q"},
        {"a.x": "2", "b.y": "p"},
        {"a.x": "2", "b.y": "q"},
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("quoting.spread_bps", "--set quoting.spread_bps: expected PATH=VALUE[,VALUE...]"),
        (
            "quoting.spread_bps=1,,2",
            "--set quoting.spread_bps=1,,2: expected PATH=VALUE[,VALUE...]",
        ),
        (
            "quotng.spread_bps=1",
            "--set quotng.spread_bps=1: 'quotng' is not a section of the config",
        ),
        (
            "venues.sim-spot.api_secret=x",
            "--set venues.sim-spot.api_secret=x: keys come from the environment, not a sweep",
        ),
    ],
)
def test_a_malformed_set_is_named_in_one_line(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sets([item])
    assert caught.value.problems == [message]


def test_a_path_swept_twice_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sets(["quoting.levels=1", "quoting.levels=2"])
    assert caught.value.problems == ["--set quoting.levels=2: quoting.levels is swept twice"]
