"""Shared pieces of the end-to-end tests: tools, free ports, deadlines, a real daemon process.

A test that needs a tool that is not installed skips with the reason locally and fails when the
CI environment variable is set (CI installs everything with .ci/system-packages.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import pytest

from tests.support import poll

if TYPE_CHECKING:
    from tools.chromium import Chromium

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DAEMON_START_DEADLINE_SECONDS = 60.0
DAEMON_STOP_DEADLINE_SECONDS = 15.0

T = TypeVar("T")


def require_tool(name: str) -> str:
    """The path of a command-line tool; skip (fail under CI) when it is missing."""
    venv_bin = Path(sys.executable).parent / name
    path = shutil.which(name) or (str(venv_bin) if venv_bin.is_file() else None)
    if path is not None:
        return path
    message = f"{name} is not installed (.ci/system-packages.sh or the dev extra installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout_seconds: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310  loopback URLs built by the tests
        body: bytes = response.read()
        return body


def try_http_get(url: str) -> bytes | None:
    try:
        return http_get(url, timeout_seconds=2.0)
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class LogReader:
    """Reads a process's JSON log lines on a thread, so its pipe never fills up."""

    stream: IO[str]
    lines: list[dict[str, object]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-reader", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the end of the stream (the process has exited)."""
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        for text in self.stream:
            with self._changed:
                self.raw.append(text)
                try:
                    line = json.loads(text)
                except ValueError:
                    line = {"event": "unparsed", "text": text}
                if isinstance(line, dict):
                    self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, event: str, deadline_seconds: float) -> dict[str, object]:
        def found() -> dict[str, object] | None:
            return next((line for line in self.lines if line.get("event") == event), None)

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout=deadline_seconds):
                tail = "".join(self.raw[-10:])
                pytest.fail(f"no {event!r} log line within {deadline_seconds:g} s; last:\n{tail}")
            line = found()
            assert line is not None
            return line


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    log: LogReader
    metrics_port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=DAEMON_STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.log.join()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start_daemon(config: Path, metrics_port: int) -> Daemon:
    """`mm-daemon run` on a config, its /metrics on 127.0.0.1:metrics_port."""
    env = {
        **os.environ,
        "MMD_METRICS__HOST": "127.0.0.1",
        "MMD_METRICS__PORT": str(metrics_port),
        "MMD_LOGGING__FORMAT": "json",
        "MMD_STATE__DIR": tempfile.mkdtemp(prefix="mmd-state-"),  # a book of its own
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_daemon", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    log = LogReader(proc.stdout)
    log.start()
    return Daemon(proc, log, metrics_port)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """A real daemon on the embedded simulator (config/default.yaml), shared by the e2e tests."""
    running = start_daemon(REPO / "config" / "default.yaml", free_port())
    try:
        running.log.wait_for("metrics_serving", DAEMON_START_DEADLINE_SECONDS)
        poll(
            lambda: try_http_get(running.metrics_url),
            deadline_seconds=DAEMON_START_DEADLINE_SECONDS,
            interval_seconds=0.2,
            what="the daemon's /metrics answering",
        )
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def image() -> str:
    """The container image of the current sources (built once per session, cached by digest)."""
    from tests.e2e.images import build_image  # noqa: PLC0415  images imports this module

    return build_image()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Debian's headless chromium driven by Playwright, for one test module.

    Playwright's sync API keeps an event loop running while it is started, so it is stopped at
    the end of the module: asyncio tests of later modules need the thread free of any loop.
    """
    from tools.chromium import Chromium  # noqa: PLC0415  playwright only where pages are tested

    with Chromium(require_tool("chromium")) as browser:
        yield browser
