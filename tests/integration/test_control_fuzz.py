"""The control API fuzzed by schemathesis against its shipped OpenAPI description, on a real
daemon: no answer is a server error, and every answer (status code, content type, body) is
one the description allows. The fuzzer calls every action, kill and reset included."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import REPO, TOKEN, DaemonProcess, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLES_PER_OPERATION = 25


def _paper_config(state_dir: Path) -> dict[str, Any]:
    """One market on the embedded simulator, hedged, paper fills."""
    return {
        "mode": "paper",
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
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "info", "format": "json"},
        "state": {"dir": str(state_dir)},
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    running = start_daemon(_paper_config(tmp_path / "state"), tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_the_fuzzer_finds_no_server_error_and_no_answer_off_the_description(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            str(REPO / "docs" / "control-api.yaml"),
            "--url",
            daemon.url,
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--workers",
            "1",
            "--seed",
            "7",
        ],
        cwd=tmp_path,  # its example database stays out of the checkout
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "No issues found" in report, report
    assert daemon.proc.poll() is None, "the daemon did not survive the fuzzing"
    assert daemon.get("/health", token=None).status == 200
    assert '"event":"control_failed"' not in daemon.output.text
