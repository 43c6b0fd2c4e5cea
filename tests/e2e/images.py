"""The mm-daemon container image for the tests, built without a Docker engine.

The base image is built from Debian packages (mmdebstrap bookworm with python3 and python3-venv,
imported with podman) and passed as BASE_IMAGE; the Dockerfile is built with
`buildah bud --format docker` (the OCI format drops HEALTHCHECK). The base tarball is cached under
$MMD_E2E_CACHE_DIR (default /var/tmp/mm-daemon-e2e) and the image is tagged with a digest of
everything the build reads, so a rerun on unchanged sources skips the build.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import REPO, require_tool

CACHE_DIR = Path(os.environ.get("MMD_E2E_CACHE_DIR", "/var/tmp/mm-daemon-e2e"))  # noqa: S108  a cache kept across runs, not a temp file
BASE_IMAGE = "localhost/mm-daemon-e2e-base:bookworm"
IMAGE_REPOSITORY = "localhost/mm-daemon-e2e"
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "setup.py", "README.md")
BUILD_INPUT_DIRS = ("mm_daemon", "deploy/config")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def ok(*args: str, timeout: float = 60.0) -> str:
    result = run(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _base_image(podman: str) -> str:
    if run(podman, "image", "exists", BASE_IMAGE).returncode == 0:
        return BASE_IMAGE
    tarball = CACHE_DIR / "debian-bookworm-python3.tar"
    if not tarball.is_file():
        mmdebstrap = require_tool("mmdebstrap")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        ok(
            mmdebstrap,
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "--format=tar",
            "bookworm",
            str(partial),
            timeout=600,
        )
        partial.rename(tarball)
    ok(podman, "import", str(tarball), BASE_IMAGE, timeout=300)
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
    listed = ok(podman, "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY)
    for tag in listed.split():
        if tag != keep:
            run(podman, "rmi", "--force", tag)


def build_image() -> str:
    """Build (or reuse) the image of the current sources; return its tag."""
    podman = require_tool("podman")
    buildah = require_tool("buildah")
    base = _base_image(podman)
    base_id = ok(podman, "image", "inspect", "--format", "{{.Id}}", base).strip()
    tag = f"{IMAGE_REPOSITORY}:{_build_digest(base_id)}"
    if run(podman, "image", "exists", tag).returncode == 0:
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
    ok(*args, str(REPO), timeout=600)
    _remove_other_tags(podman, keep=tag)
    return tag
