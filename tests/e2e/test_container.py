"""The container image, built from the Dockerfile and run with podman.

No Docker engine is needed: the base image is built from Debian packages (mmdebstrap bookworm with
python3 and python3-venv, imported with podman) and passed as BASE_IMAGE; the Dockerfile is built
with `buildah bud --format docker` (the OCI format drops HEALTHCHECK). The base tarball is cached
under $MMD_E2E_CACHE_DIR (default /var/tmp/mm-daemon-e2e) and the image is tagged with a digest of
everything the build reads, so a rerun on unchanged sources skips the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, free_port, poll, require_tool, try_http_get

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

CACHE_DIR = Path(os.environ.get("MMD_E2E_CACHE_DIR", "/var/tmp/mm-daemon-e2e"))  # noqa: S108  a cache kept across runs, not a temp file
BASE_IMAGE = "localhost/mm-daemon-e2e-base:bookworm"
IMAGE_REPOSITORY = "localhost/mm-daemon-e2e"
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
BUILD_INPUT_DIRS = ("mm_daemon", "deploy/config")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 5.0
USER_ID = "10001"


def _run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def _ok(*args: str, timeout: float = 60.0) -> str:
    result = _run(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _base_image(podman: str) -> str:
    if _run(podman, "image", "exists", BASE_IMAGE).returncode == 0:
        return BASE_IMAGE
    tarball = CACHE_DIR / "debian-bookworm-python3.tar"
    if not tarball.is_file():
        mmdebstrap = require_tool("mmdebstrap")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        _ok(
            mmdebstrap,
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "--format=tar",
            "bookworm",
            str(partial),
            timeout=600,
        )
        partial.rename(tarball)
    _ok(podman, "import", str(tarball), BASE_IMAGE, timeout=300)
    return BASE_IMAGE


def _build_digest(base_image_id: str) -> str:
    """A digest of the base image and of every file the build context sends."""
    digest = hashlib.sha256(base_image_id.encode())
    files = [REPO / name for name in BUILD_INPUTS]
    for folder in BUILD_INPUT_DIRS:
        files += [
            path
            for path in (REPO / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        ]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _remove_other_tags(podman: str, keep: str) -> None:
    listed = _ok(podman, "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY)
    for tag in listed.split():
        if tag != keep:
            _run(podman, "rmi", "--force", tag)


@pytest.fixture(scope="module")
def image() -> str:
    podman = require_tool("podman")
    buildah = require_tool("buildah")
    base = _base_image(podman)
    base_id = _ok(podman, "image", "inspect", "--format", "{{.Id}}", base).strip()
    tag = f"{IMAGE_REPOSITORY}:{_build_digest(base_id)}"
    if _run(podman, "image", "exists", tag).returncode == 0:
        return tag
    args = [
        buildah,
        "bud",
        "--format",
        "docker",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--tag",
        tag,
    ]
    if HOST_CA_BUNDLE.is_file():
        # pip in the build stage trusts the CAs this machine trusts (a TLS-inspecting proxy).
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    _ok(*args, str(REPO), timeout=600)
    _remove_other_tags(podman, keep=tag)
    return tag


@dataclass
class Container:
    podman: str
    name: str
    port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def inspect(self) -> dict[str, object]:
        (data,) = json.loads(_ok(self.podman, "inspect", self.name))
        assert isinstance(data, dict)
        return data

    def logs(self) -> list[dict[str, object]]:
        out = _run(self.podman, "logs", self.name)
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
    _ok(
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
    _run(container.podman, "rm", "--force", "--time", "0", container.name)


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    running = _start(image)
    try:
        yield running
    finally:
        _remove(running)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = _run(hadolint, str(REPO / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_keeps_its_healthcheck_user_volume_and_exec_entrypoint(image: str) -> None:
    podman = require_tool("podman")
    (data,) = json.loads(_ok(podman, "image", "inspect", image))
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


def test_healthcheck_passes(container: Container) -> None:
    result = _run(container.podman, "healthcheck", "run", container.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_daemon_runs_as_the_non_root_user(container: Container) -> None:
    status = _ok(container.podman, "exec", container.name, "cat", "/proc/1/status")
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [USER_ID] * 4
    cmdline = _ok(container.podman, "exec", container.name, "cat", "/proc/1/cmdline")
    assert "mm-daemon" in cmdline  # PID 1 is the daemon itself: exec-form entrypoint


def test_podman_stop_exits_0_within_5_s_with_the_shutdown_logged(image: str) -> None:
    container = _start(image)
    try:
        started = time.monotonic()
        _ok(container.podman, "stop", "--time", "10", container.name, timeout=30)
        elapsed = time.monotonic() - started
        state = container.inspect()["State"]
        assert isinstance(state, dict)
        assert state["ExitCode"] == 0
        assert elapsed < STOP_DEADLINE_SECONDS, f"podman stop took {elapsed:.1f} s"
        events = [str(line.get("event")) for line in container.logs()]
        assert "shutdown_complete" in events, events[-5:]
    finally:
        _remove(container)
