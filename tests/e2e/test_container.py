"""The container image, built from the Dockerfile (see images.py) and run with podman."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import REPO, free_port, require_tool, try_http_get
from tests.e2e.images import ok, run
from tests.support import poll

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 5.0
USER_ID = "10001"


@dataclass
class Container:
    podman: str
    name: str
    port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def inspect(self) -> dict[str, object]:
        (data,) = json.loads(ok(self.podman, "inspect", self.name))
        assert isinstance(data, dict)
        return data

    def logs(self) -> list[dict[str, object]]:
        out = run(self.podman, "logs", self.name)
        lines = []
        for text in (out.stdout + out.stderr).splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
        return lines


def _start(image: str) -> Container:
    podman = require_tool("podman")
    container = Container(podman, f"mm-daemon-e2e-{uuid.uuid4().hex[:8]}", free_port())
    ok(
        podman,
        "run",
        "--detach",
        "--name",
        container.name,
        # User-mode networking: the published port answers on the host's loopback only.
        "--network",
        "slirp4netns:port_handler=slirp4netns",
        "--publish",
        f"127.0.0.1:{container.port}:9464",
        "--read-only",  # the image must write only under its declared volume
        image,
    )
    poll(
        lambda: try_http_get(container.metrics_url),
        deadline_seconds=START_DEADLINE_SECONDS,
        interval_seconds=0.25,
        what=f"/metrics of container {container.name} from the host",
    )
    return container


def _remove(container: Container) -> None:
    run(container.podman, "rm", "--force", "--volumes", "--time", "0", container.name)


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    running = _start(image)
    try:
        yield running
    finally:
        _remove(running)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = run(hadolint, str(REPO / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_keeps_its_healthcheck_user_volume_and_exec_entrypoint(image: str) -> None:
    podman = require_tool("podman")
    (data,) = json.loads(ok(podman, "image", "inspect", image))
    config = data["Config"]
    assert config["User"] == f"{USER_ID}:{USER_ID}"
    assert "/var/lib/mm-daemon" in config["Volumes"]
    assert config["Entrypoint"] == ["mm-daemon"]
    assert config["Cmd"] == ["run", "--config", "/etc/mm-daemon/config.yaml"]
    assert data["Healthcheck"]["Test"][0] == "CMD"


def test_metrics_answer_from_the_host(container: Container) -> None:
    def running() -> bytes | None:
        body = try_http_get(container.metrics_url)
        return body if body is not None and b"mm_daemon_running 1.0" in body else None

    body = poll(
        running,
        deadline_seconds=START_DEADLINE_SECONDS,
        interval_seconds=0.5,
        what="the containerised daemon reporting its trading loop running",
    )
    assert b"mm_build_info" in body


def test_the_image_healthcheck_asks_health() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    (healthcheck,) = [line for line in dockerfile.splitlines() if "urlopen(" in line]
    assert "/health'" in healthcheck


def test_healthcheck_passes(container: Container) -> None:
    result = run(container.podman, "healthcheck", "run", container.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_daemon_runs_as_the_non_root_user(container: Container) -> None:
    status = ok(container.podman, "exec", container.name, "cat", "/proc/1/status")
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [USER_ID] * 4
    cmdline = ok(container.podman, "exec", container.name, "cat", "/proc/1/cmdline")
    assert "mm-daemon" in cmdline  # PID 1 is the daemon itself: exec-form entrypoint


def test_image_runs_the_compiled_hot_paths(container: Container) -> None:
    # Market-data frames and order signing: without them the image would run the Python
    # fallbacks, several times slower per frame and per request.
    script = "import mm_daemon._levels, mm_daemon._orderwire; print('compiled')"
    out = ok(container.podman, "exec", container.name, "python3", "-c", script)
    assert out.strip() == "compiled"


def test_podman_stop_exits_0_within_5_s_with_the_shutdown_logged(image: str) -> None:
    container = _start(image)
    try:
        started = time.monotonic()
        ok(container.podman, "stop", "--time", "10", container.name, timeout=30)
        elapsed = time.monotonic() - started
        state = container.inspect()["State"]
        assert isinstance(state, dict)
        assert state["ExitCode"] == 0
        assert elapsed < STOP_DEADLINE_SECONDS, f"podman stop took {elapsed:.1f} s"
        events = [str(line.get("event")) for line in container.logs()]
        assert "shutdown_complete" in events, events[-5:]
    finally:
        _remove(container)
