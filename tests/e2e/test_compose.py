"""deploy/compose.yaml: validated by podman-compose, and its simulator and daemon started.

Prometheus and Grafana come from public registries that tests cannot reach, so the start test
runs the two services built from this repository's Dockerfile (the image the container test
builds, tagged as the compose file names it) and checks the daemon trades against the simulator
service by name, with its metrics published on the host.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml

from mm_daemon.config import load_config
from tests.e2e.conftest import DEPLOY, free_port, require_tool, try_http_get
from tests.support import poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

COMPOSE = DEPLOY / "compose.yaml"
START_DEADLINE_SECONDS = 90.0


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    podman_compose = require_tool("podman-compose")
    require_tool("podman")
    return subprocess.run(
        [podman_compose, "-f", str(COMPOSE), *args],
        cwd=DEPLOY,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _services() -> dict[str, dict[str, object]]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert isinstance(services, dict)
    return services


def test_podman_compose_config_validates_the_file() -> None:
    result = _compose("config")
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {"sim", "daemon", "prometheus", "grafana"}


def test_every_mounted_file_exists_beside_the_compose_file() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes", []):  # type: ignore[attr-defined]
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_the_daemon_and_simulator_configs_validate() -> None:
    for name in ("sim", "daemon"):
        (mount,) = [v for v in _services()[name]["volumes"] if str(v).startswith("./config/")]  # type: ignore[attr-defined]
        source, target = str(mount).split(":")[:2]
        load_config(DEPLOY / source, environ={})
        command = _services()[name]["command"]
        assert command[-1] == target, name  # type: ignore[index]


def test_the_daemon_reaches_the_simulator_by_its_service_name() -> None:
    config = load_config(DEPLOY / "config" / "compose-daemon.yaml", environ={})
    sim = load_config(DEPLOY / "config" / "compose-sim.yaml", environ={})
    (market,) = config.markets
    assert market.hedge is not None
    assert config.venues[market.venue].endpoint == f"http://sim:{sim.sim.spot_port}"
    assert config.venues[market.hedge.venue].endpoint == f"http://sim:{sim.sim.perp_port}"
    assert config.metrics.host == "0.0.0.0"  # noqa: S104  published by the container runtime
    assert sim.sim.host == "0.0.0.0"  # noqa: S104  reached from the daemon's container


def test_the_daemons_journal_is_on_a_named_volume() -> None:
    config = load_config(DEPLOY / "config" / "compose-daemon.yaml", environ={})
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = [str(v).split(":")[:2] for v in compose["services"]["daemon"]["volumes"]]
    (source,) = [src for src, target in mounts if target == str(config.state.dir)]
    assert source in compose["volumes"]  # named: it outlives the container


def test_the_daemon_service_is_healthy_while_health_answers() -> None:
    check = _services()["daemon"]["healthcheck"]["test"]  # type: ignore[index]
    assert any("/health'" in str(part) for part in check), check


def test_prometheus_scrapes_the_daemon_service_on_its_metrics_port() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    config = load_config(DEPLOY / "config" / "compose-daemon.yaml", environ={})
    assert targets == [f"daemon:{config.metrics.port}"]


@pytest.fixture(scope="module")
def stack(image: str) -> Iterator[int]:
    """The sim and daemon services up, from the image the container test built (MMD_IMAGE)."""
    project = f"mmd-e2e-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {"MMD_METRICS_HOST_PORT": str(port), "MMD_IMAGE": image}
    try:
        result = _compose("-p", project, "up", "-d", "--no-build", "sim", "daemon", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        yield port
    finally:
        _compose("-p", project, "down", "-v", "-t", "5", env=env)


def _book_updates(body: bytes, venue: str) -> float:
    pattern = rf'^mm_book_updates_total\{{[^}}]*venue="{re.escape(venue)}"[^}}]*\}} (\S+)$'
    found = re.findall(pattern, body.decode(), flags=re.MULTILINE)
    return sum(float(v) for v in found)


def test_compose_daemon_trades_against_the_compose_simulator(stack: int) -> None:
    url = f"http://127.0.0.1:{stack}/metrics"

    def streaming() -> bytes | None:
        body = try_http_get(url)
        ok = body is not None and all(_book_updates(body, v) > 0 for v in ("sim-spot", "sim-perp"))
        return body if ok else None

    body = poll(
        streaming,
        deadline_seconds=START_DEADLINE_SECONDS,
        interval_seconds=1.0,
        what="the compose daemon's book updates from the compose simulator",
    )
    assert b"mm_daemon_running 1.0" in body
