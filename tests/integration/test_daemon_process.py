"""`mm-daemon run` as a real process: serves /metrics, stops cleanly on SIGTERM, leaks no secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mm_daemon import __version__
from tests.support import poll

REPO = Path(__file__).resolve().parents[2]
SECRET = "daemon-secret-0123456789"
STARTUP_DEADLINE_SECONDS = 60.0


def _mm_daemon(
    args: list[str], env: dict[str, str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python -m mm_daemon ARGS` run to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mm_daemon", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class DaemonProcess:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []

    def wait_for_event(self, event: str, deadline_seconds: float) -> dict[str, object]:
        assert self.proc.stderr is not None
        seen = [line for line in self.lines if line.get("event") == event]
        if seen:  # logged before an event waited for earlier
            return seen[0]
        deadline = time.monotonic() + deadline_seconds
        for raw in self.proc.stderr:  # blocks per line; the process writes as it goes
            line = json.loads(raw)
            self.lines.append(line)
            if line.get("event") == event:
                return line
            if time.monotonic() > deadline:
                break
        pytest.fail(f"no {event!r} log line within {deadline_seconds} s: {self.lines[-5:]}")

    def remaining_lines(self) -> list[dict[str, object]]:
        assert self.proc.stderr is not None
        self.lines.extend(json.loads(raw) for raw in self.proc.stderr)
        return self.lines


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    env = {
        **os.environ,
        "MMD_STATE__DIR": str(tmp_path / "state"),
        "MMD_METRICS__PORT": "0",
        "MMD_VENUES__SIM_SPOT__API_SECRET": SECRET,
        "MMD_VENUES__SIM_SPOT__API_KEY": SECRET + "-key",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_daemon", "run", "--config", "config/default.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield DaemonProcess(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  loopback URL from the daemon
        body: str = response.read().decode()
        return body


@pytest.mark.timing
def test_serves_metrics_and_stops_cleanly_on_sigterm(daemon: DaemonProcess) -> None:
    serving = daemon.wait_for_event("metrics_serving", STARTUP_DEADLINE_SECONDS)
    url = str(serving["url"])
    assert url.startswith("http://127.0.0.1:")
    body = _get(url)
    assert f'mm_build_info{{version="{__version__}"}} 1.0' in body
    assert "process_resident_memory_bytes" in body

    sent = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(timeout=10)
    elapsed = time.monotonic() - sent
    assert code == 0
    assert elapsed < 2.0
    events = [line.get("event") for line in daemon.remaining_lines()]
    assert "shutdown_started" in events
    assert events[-1] == "shutdown_complete"


def test_secret_never_appears_in_logs_or_metrics(daemon: DaemonProcess) -> None:
    serving = daemon.wait_for_event("metrics_serving", STARTUP_DEADLINE_SECONDS)
    body = _get(str(serving["url"]))
    daemon.proc.send_signal(signal.SIGINT)
    daemon.proc.wait(timeout=10)
    logs = json.dumps(daemon.remaining_lines())
    assert SECRET not in body
    assert SECRET not in logs
    assert daemon.proc.stdout is not None
    assert SECRET not in daemon.proc.stdout.read()


def test_unknown_symbol_of_a_required_market_ends_in_one_clear_line_and_exit_2(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "MMD_STATE__DIR": str(tmp_path / "state"),
        "MMD_METRICS__PORT": "0",
        "MMD_MARKETS__0__SYMBOL": "DOGE/XYZ",
        "MMD_MARKETS__0__REQUIRED": "true",
    }
    result = _mm_daemon(["run", "--config", "config/default.yaml"], env, timeout=60)
    assert result.returncode == 2
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == [
        "markets.0 (DOGE/XYZ@sim-spot): venue sim-spot (binance, sim): unknown symbol 'DOGE/XYZ'"
    ]
    assert "Traceback" not in result.stderr


def test_a_market_that_cannot_start_is_reported_and_the_others_quote(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MMD_STATE__DIR": str(tmp_path / "state"),
        "MMD_METRICS__PORT": "0",
        "MMD_MARKETS__0__SYMBOL": "DOGE/XYZ",  # not required: the start goes on without it
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_daemon", "run", "--config", "config/default.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    daemon = DaemonProcess(proc)
    try:
        failed = daemon.wait_for_event("market_failed", STARTUP_DEADLINE_SECONDS)
        assert failed["market"] == "DOGE/XYZ@sim-spot"
        url = str(daemon.wait_for_event("metrics_serving", STARTUP_DEADLINE_SECONDS)["url"])
        daemon.wait_for_event("daemon_started", STARTUP_DEADLINE_SECONDS)
        eth = 'market="ETH/USDT@sim-spot"'

        def eth_placed() -> str | None:
            body = _get(url)
            placed = [
                line
                for line in body.splitlines()
                if line.startswith("mm_orders_total{") and eth in line and '"place"' in line
            ]
            return body if placed and float(placed[0].rsplit(" ", 1)[1]) > 0 else None

        body = poll(eth_placed, deadline_seconds=20, interval_seconds=0.2, what="ETH quoting")
        assert 'mm_market_up{market="DOGE/XYZ@sim-spot"} 0.0' in body
        assert f"mm_market_up{{{eth}}} 1.0" in body
    finally:
        proc.send_signal(signal.SIGINT)
        summary, _ = proc.communicate(timeout=15)
    why = "venue sim-spot (binance, sim): unknown symbol 'DOGE/XYZ'"
    # The run summary names it, and so does the run's report, read from the journal.
    assert f"market DOGE/XYZ@sim-spot failed to start: {why}" in summary
    report = tmp_path / "report.html"
    command = ["report", "--config", "config/default.yaml", "--out", str(report)]
    result = _mm_daemon(command, env, timeout=120)
    assert result.returncode == 0, result.stderr
    page = report.read_text()
    assert "Market DOGE/XYZ@sim-spot did not trade: venue sim-spot (binance, sim): unknown" in page
    assert "did not trade" not in page.replace("DOGE/XYZ@sim-spot did not trade", "")
