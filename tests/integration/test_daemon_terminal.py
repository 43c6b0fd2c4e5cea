"""`mm-daemon run` on a real terminal (tmux): a compact status line every few seconds instead of
a log line per fill."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.processes import REPO
from tests.support import poll

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

RUN_SECONDS = 12
STATUS_LINE = re.compile(r"^\d\d:\d\d:\d\d trading up \S+ \| BTC/USDT@sim-spot \d+\.\d+ \[")
QUOTING_FILLS = re.compile(r"quoting: buy / sell\s+(\d+) / (\d+)")


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        message = "tmux is not installed (.ci/system-packages.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_a_terminal_shows_status_lines_and_no_line_per_fill(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "venues": {
                    "sim-spot": {"exchange": "binance", "endpoint": "sim"},
                    "sim-perp": {"exchange": "binanceusdm", "endpoint": "sim"},
                },
                "markets": [
                    {
                        "venue": "sim-spot",
                        "symbol": "BTC/USDT",
                        "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
                    }
                ],
                # One tight level a side: fills within seconds.
                "quoting": {
                    "model": "fixed",
                    "levels": 1,
                    "spread_bps": 0.5,
                    "min_spread_bps": 0.0,
                },
                "metrics": {"port": 0},
                "logging": {"level": "info", "format": "auto", "status_line_seconds": 1.0},
                "state": {"dir": str(tmp_path / "state")},
            }
        )
    )
    tmux = _tmux()
    socket = f"mmd-run-{uuid.uuid4().hex[:8]}"

    def tmux_run(*args: str) -> str:
        done = subprocess.run(
            [tmux, "-L", socket, *args], capture_output=True, text=True, timeout=20, check=True
        )
        return done.stdout

    command = (
        f"{shlex.quote(sys.executable)} -m mm_daemon run --config {shlex.quote(str(config))} "
        f"--duration {RUN_SECONDS}; echo run-exited-$?; sleep 60"
    )
    tmux_run("new-session", "-d", "-x", "250", "-y", "50", "-c", str(REPO), command)
    try:
        screen = poll(
            lambda: (
                text
                if "run-exited-" in (text := tmux_run("capture-pane", "-p", "-S", "-"))
                else None
            ),
            deadline_seconds=90.0,
            interval_seconds=0.5,
            what="the run ending",
        )
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, check=False)
    assert "run-exited-0" in screen, screen
    lines = screen.splitlines()
    assert sum(1 for line in lines if STATUS_LINE.match(line)) >= 3, screen
    fills = QUOTING_FILLS.search(screen)
    assert fills is not None, screen
    assert int(fills[1]) + int(fills[2]) > 0, "no fill: the test shows nothing"
    assert not any("liquidity=" in line for line in lines), "a per-fill line reached the terminal"
