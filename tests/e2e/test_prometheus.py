"""A real Prometheus scrapes a real daemon at 1 s; every dashboard query returns data.

The daemon is `mm-daemon run --config config/default.yaml` (the embedded simulator, paper fills,
several markets) on a free metrics port; Prometheus is the Debian package's binary, run with the
deploy config pointed at that port and the deploy alert rules loaded. The per-market panels
return every market that trades, the portfolio row every configured market, up or failed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mm_daemon.config import MarketConfig, load_config
from tests.e2e.conftest import (
    DEPLOY,
    REPO,
    Daemon,
    free_port,
    http_get,
    require_tool,
    try_http_get,
)
from tests.e2e.dashboards import ALL, PanelQuery, dashboard_files, queries, substitute, variables
from tests.support import poll

pytestmark = pytest.mark.e2e

READY_DEADLINE_SECONDS = 30.0
# Prometheus picks up new targets on a 5 s cycle, then needs two 1 s scrapes for a rate().
TARGET_DEADLINE_SECONDS = 30.0
DATA_DEADLINE_SECONDS = 60.0
# What Grafana substitutes for its built-in variables, for a 1 s scrape interval and the
# dashboards' default 1 h range.
BUILTINS = {"__rate_interval": "10s", "__interval": "5s", "__range": "1h"}
OVERVIEW = DEPLOY / "grafana" / "dashboards" / "mm-daemon-overview.json"
PORTFOLIO_ROW = "Portfolio"


@dataclass(frozen=True, slots=True)
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> dict[str, object]:
        query = urllib.parse.urlencode(params)
        body = json.loads(http_get(f"{self.url}/api/v1/{path}?{query}"))
        assert body["status"] == "success", body
        data = body["data"]
        return data if isinstance(data, dict) else {"items": data}

    def query(self, expr: str) -> list[dict[str, object]]:
        data = self.api("query", query=expr)
        result = data["result"]
        assert isinstance(result, list)
        return result


def _scrape_config(daemon: Daemon, work: Path) -> Path:
    """The deploy config with the daemon's port as target, 1 s scrapes, the deploy rules."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "mm-daemon"
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{daemon.metrics_port}"]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prometheus(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    log = (work / "prometheus.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={_scrape_config(daemon, work)}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        poll(
            lambda: try_http_get(f"{url}/-/ready"),
            deadline_seconds=READY_DEADLINE_SECONDS,
            interval_seconds=0.2,
            what="Prometheus ready",
        )
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _target_up(prom: Prometheus) -> dict[str, object] | None:
    targets = prom.api("targets", state="active")["activeTargets"]
    assert isinstance(targets, list)
    return next((t for t in targets if t["health"] == "up"), None)


def test_promtool_check_metrics_accepts_the_daemons_metrics(daemon: Daemon) -> None:
    promtool = require_tool("promtool")
    exposition = http_get(daemon.metrics_url)
    assert b"mm_build_info" in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_prometheus_scrapes_the_daemon(prometheus: Prometheus) -> None:
    target = poll(
        lambda: _target_up(prometheus),
        deadline_seconds=TARGET_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="the daemon target up",
    )
    assert target["labels"]["job"] == "mm-daemon"  # type: ignore[index]
    assert target["scrapeInterval"] == "1s"


def test_prometheus_evaluates_every_alert_rule_without_error(prometheus: Prometheus) -> None:
    poll(
        lambda: _target_up(prometheus),
        deadline_seconds=TARGET_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="the daemon target up",
    )

    def evaluated() -> list[dict[str, object]] | None:
        groups = prometheus.api("rules", type="alert")["groups"]
        assert isinstance(groups, list)
        rules = [rule for group in groups for rule in group["rules"]]
        return (
            rules
            if rules and all(r.get("lastEvaluation", "0001") > "0001" for r in rules)
            else None
        )

    rules = poll(evaluated, deadline_seconds=20, interval_seconds=0.5, what="rules evaluated")
    broken = {str(r["name"]): r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken


def _resolve_variables(prom: Prometheus, path: Path) -> dict[str, list[str]]:
    """Each variable's values from Prometheus, as Grafana's label_values() would list them."""
    values: dict[str, list[str]] = {}
    for var in variables(path):
        selector = substitute(var.selector, values, BUILTINS)
        found = prom.api("series", **{"match[]": selector})["items"]
        assert isinstance(found, list)
        values[var.name] = sorted({s[var.label] for s in found if var.label in s})
    return values


def test_every_dashboard_variable_lists_values(prometheus: Prometheus) -> None:
    poll(
        lambda: _target_up(prometheus),
        deadline_seconds=TARGET_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="the daemon target up",
    )
    for path in dashboard_files():
        last: dict[str, list[str]] = {}

        def listed(p: Path = path, last: dict[str, list[str]] = last) -> bool | None:
            last.update(_resolve_variables(prometheus, p))
            return True if all(last.values()) else None

        try:
            poll(
                listed,
                deadline_seconds=TARGET_DEADLINE_SECONDS,
                interval_seconds=0.5,
                what="every variable listing values",
            )
        except pytest.fail.Exception:
            empty = [name for name, found in last.items() if not found]
            pytest.fail(f"{path.name}: variables without values: {empty}")


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    poll(
        lambda: _target_up(prometheus),
        deadline_seconds=TARGET_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="the daemon target up",
    )
    pending: list[tuple[PanelQuery, str]] = []
    problems: list[str] = []
    for path in dashboard_files():
        values = _resolve_variables(prometheus, path)
        for name, found in values.items():
            if not found:
                # Still run the queries with Grafana's "All" value, to report them all at once.
                problems.append(f"{path.name}: variable ${name} lists no values")
                values[name] = [ALL]
        pending.extend((query, substitute(query.expr, values, BUILTINS)) for query in queries(path))
    assert pending

    def all_answered() -> bool | None:
        pending[:] = [(q, expr) for q, expr in pending if not prometheus.query(expr)]
        return True if not pending else None

    try:
        poll(
            all_answered,
            deadline_seconds=DATA_DEADLINE_SECONDS,
            interval_seconds=1.0,
            what="every dashboard query returning data",
        )
    except pytest.fail.Exception:
        problems.append(f"{len(pending)} dashboard queries returned no data:")
        problems.extend(f"  {q.dashboard} / {q.panel} [{q.ref}]: {expr}" for q, expr in pending)
    assert not problems, "\n".join(problems)


# -- several markets ----------------------------------------------------------------------------


def _configured_markets() -> tuple[MarketConfig, ...]:
    """The markets of the config the `daemon` fixture runs."""
    return load_config(REPO / "config" / "default.yaml", environ={}).markets


def _panel_query(title: str, ref: str = "A") -> PanelQuery:
    (query,) = (q for q in queries(OVERVIEW) if q.panel == title and q.ref == ref)
    return query


def _labels(result: list[dict[str, object]], label: str) -> set[str]:
    return {str(series["metric"][label]) for series in result}  # type: ignore[index]


def _every_market_reported(prom: Prometheus) -> dict[str, float] | None:
    """Each configured market's mm_market_up, once Prometheus has them all."""
    query = _panel_query("Markets")
    result = prom.query(substitute(query.expr, {"instance": [ALL]}, BUILTINS))
    found = {
        str(series["metric"]["market"]): float(series["value"][1])  # type: ignore[index]
        for series in result
    }
    return found if len(found) == len(_configured_markets()) else None


def _running_markets(prom: Prometheus) -> set[str]:
    up = poll(
        lambda: _every_market_reported(prom),
        deadline_seconds=DATA_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="every configured market in mm_market_up",
    )
    running = {market for market, value in up.items() if value == 1}
    assert running, f"no market trades: {up}"
    return running


def test_markets_panel_shows_every_configured_market_up_or_failed(
    prometheus: Prometheus, daemon: Daemon
) -> None:
    up = poll(
        lambda: _every_market_reported(prometheus),
        deadline_seconds=DATA_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="every configured market in mm_market_up",
    )
    assert set(up) == {m.name for m in _configured_markets()}
    reported_failed = {
        str(line["market"]) for line in daemon.log.lines if line.get("event") == "market_failed"
    }
    assert {market for market, value in up.items() if value == 0} == reported_failed


def test_market_variable_lists_the_markets_that_trade(prometheus: Prometheus) -> None:
    running = _running_markets(prometheus)

    def listed() -> list[str] | None:
        found = _resolve_variables(prometheus, OVERVIEW)["market"]
        return found if set(found) == running else None

    poll(
        listed,
        deadline_seconds=TARGET_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what=f"the market variable listing {sorted(running)}",
    )


def _per_market_queries_answer(
    prom: Prometheus, values: dict[str, list[str]], expected: set[str]
) -> list[str] | None:
    """The per-market queries (outside the portfolio row) whose series carry a market label:
    None until each returns exactly `expected`'s markets."""
    answered: list[str] = []
    for query in queries(OVERVIEW):
        if query.row == PORTFOLIO_ROW or "$market" not in query.expr:
            continue
        result = prom.query(substitute(query.expr, values, BUILTINS))
        if not result or "market" not in result[0]["metric"]:  # type: ignore[operator]
            continue  # a market's instrument or asset: checked by the panels' own tests
        if _labels(result, "market") != expected:
            return None
        answered.append(f"{query.panel} [{query.ref}]")
    return answered


def test_per_market_panels_show_one_series_set_per_market_that_trades(
    prometheus: Prometheus,
) -> None:
    running = _running_markets(prometheus)
    values = _resolve_variables(prometheus, OVERVIEW)
    answered = poll(
        lambda: _per_market_queries_answer(prometheus, values, running),
        deadline_seconds=DATA_DEADLINE_SECONDS,
        interval_seconds=1.0,
        what=f"every per-market query returning {sorted(running)}",
    )
    assert len(answered) >= 10, answered


def test_choosing_one_market_narrows_the_per_market_panels_to_it(
    prometheus: Prometheus,
) -> None:
    running = _running_markets(prometheus)
    if len(running) < 2:
        pytest.skip(f"only {sorted(running)} of the configured markets trades on the simulator")
    chosen = sorted(running)[0]
    values = {**_resolve_variables(prometheus, OVERVIEW), "market": [chosen]}
    poll(
        lambda: _per_market_queries_answer(prometheus, values, {chosen}),
        deadline_seconds=DATA_DEADLINE_SECONDS,
        interval_seconds=1.0,
        what=f"every per-market query returning only {chosen}",
    )
    (market,) = (m for m in _configured_markets() if m.name == chosen)
    exposure = _panel_query("Net exposure against the markets' limits")
    assets = _labels(prometheus.query(substitute(exposure.expr, values, BUILTINS)), "asset")
    assert assets == {market.asset}
    fair = _panel_query("Quotes of $market against fair value and the touch", "B")
    result = prometheus.query(substitute(fair.expr, values, BUILTINS))
    instruments = {(s["metric"]["venue"], s["metric"]["symbol"]) for s in result}  # type: ignore[index]
    assert instruments == {(market.venue, market.symbol)}


def test_net_exposure_is_exported_per_asset_of_the_markets_that_trade(
    prometheus: Prometheus,
) -> None:
    running = _running_markets(prometheus)
    assets = {m.asset for m in _configured_markets() if m.name in running}
    query = _panel_query("Net exposure by asset")

    def per_asset() -> set[str] | None:
        result = prometheus.query(substitute(query.expr, {"instance": [ALL]}, BUILTINS))
        found = _labels(result, "asset")
        return found if found == assets else None

    poll(
        per_asset,
        deadline_seconds=DATA_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what=f"net exposure of {sorted(assets)}",
    )
