"""Real processes for the control-plane tests: daemons (`mm-daemon run`) trading live against a
standalone simulator (`tests.procs.SimProcess`) over its URL endpoints, each with its own
accounts (API keys) and journal, and an HTTP helper for the daemon's control API and the
simulator's admin endpoints.

Everything here is synchronous: the tests drive other processes and poll with deadlines.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.procs import SimProcess, environ_without_settings
from tests.support import poll

REPO = Path(__file__).resolve().parents[2]
TOKEN = "control-token-5b0f2a9c7e1d4386"
START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 15.0


@dataclass
class Reply:
    status: int
    body: Any
    text: str


def request(
    url: str,
    method: str = "GET",
    *,
    token: str | None = None,
    body: Any = None,
    timeout_s: float = 15.0,
) -> Reply:
    """One HTTP request; any status is a reply (never an exception)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310  loopback URLs
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:  # noqa: S310  as above
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return Reply(status, parsed, text)


class Output:
    """Reads a process's output on a thread (its pipe never fills): JSON log lines parsed,
    every line kept as text."""

    def __init__(self, stream: IO[str], proc: subprocess.Popen[str] | None = None) -> None:
        self.stream = stream
        self._proc = proc
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for text in self.stream:
            with self._changed:
                self.raw.append(text)
                try:
                    line = json.loads(text)
                except ValueError:
                    line = None
                if isinstance(line, dict):
                    self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, match: Any, deadline_seconds: float, what: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((line for line in self.lines if match(line)), None)

        def exited() -> bool:
            return self._proc is not None and self._proc.poll() is not None

        with self._changed:
            self._changed.wait_for(
                lambda: found() is not None or exited(), timeout=deadline_seconds
            )
            line = found()
            if line is None:
                tail = "".join(self.raw[-15:])
                why = (
                    "the process exited" if exited() else f"not seen within {deadline_seconds:g} s"
                )
                pytest.fail(f"{what}: {why}; last lines:\n{tail}")
            return line

    def join(self) -> None:
        self._thread.join(timeout=5)

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.raw)


def _stop(proc: subprocess.Popen[str], output: Output) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        output.join()
        if proc.stdout is not None:
            proc.stdout.close()


def live_config(sim: SimProcess, state_dir: Path, **sections: Any) -> dict[str, Any]:
    """Two markets traded live at the simulator, one on each venue (so a kill has orders to
    cancel on both), one wide level a side (fills are rare), no hedging."""
    data: dict[str, Any] = {
        "mode": "live",
        "venues": {
            "sim-spot": {
                "exchange": "binance",
                "endpoint": sim.endpoints["sim-spot"]["rest"],
                "maker_fee_bps": 0.0,
                "taker_fee_bps": 4.0,
            },
            "sim-perp": {
                "exchange": "binanceusdm",
                "endpoint": sim.endpoints["sim-perp"]["rest"],
                "maker_fee_bps": 0.0,
                "taker_fee_bps": 2.0,
            },
        },
        "markets": [
            {"venue": "sim-spot", "symbol": "BTC/USDT"},
            {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
        ],
        "market_data": {"stale_after_seconds": 1.0},
        "quoting": {
            "model": "fixed",
            "order_size_base": 0.001,
            "levels": 1,
            "spread_bps": 10.0,
            "min_spread_bps": 0.0,
        },
        "inventory": {"limit_base": 0.05},
        "hedging": {"mode": "off"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "info", "format": "json"},
        "state": {"dir": str(state_dir)},
    }
    data.update(sections)
    return data


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[str]
    output: Output
    config_path: Path
    api_key: str
    url: str = ""

    def get(self, path: str, *, token: str | None = TOKEN) -> Reply:
        return request(self.url + path, token=token)

    def post(self, path: str, body: Any = None, *, token: str | None = TOKEN) -> Reply:
        return request(self.url + path, "POST", token=token, body=body)

    def status(self) -> dict[str, Any]:
        reply = self.get("/status")
        assert reply.status == 200, reply.text
        body: dict[str, Any] = reply.body
        return body

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics (None when absent)."""
        from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

        text = request(self.url + "/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None

    def write_config(self, data: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        return _stop(self.proc, self.output)


def start_daemon(
    config: dict[str, Any],
    folder: Path,
    *,
    api_key: str | None = None,
    token: str | None = TOKEN,
    wait_trading: bool = True,
) -> DaemonProcess:
    """`mm-daemon run` on `config` (written to `folder`/daemon.yaml), both venues' accounts
    under one API key (the simulator's secret is the key itself)."""
    key = api_key or f"ctl-{uuid.uuid4().hex[:12]}"
    path = folder / "daemon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = environ_without_settings()
    for venue in ("SIM_SPOT", "SIM_PERP"):
        env[f"MMD_VENUES__{venue}__API_KEY"] = key
        env[f"MMD_VENUES__{venue}__API_SECRET"] = key
    if token is not None:
        env["MMD_CONTROL__TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_daemon", "run", "--config", str(path)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    daemon = DaemonProcess(proc, Output(proc.stdout, proc), path, key)
    try:
        serving = daemon.output.wait_for(
            lambda line: line.get("event") == "metrics_serving", START_DEADLINE_SECONDS, "serving"
        )
        daemon.url = str(serving["url"]).removesuffix("/metrics")
        if wait_trading:
            poll(
                lambda: True if request(daemon.url + "/ready").status == 200 else None,
                deadline_seconds=START_DEADLINE_SECONDS,
                interval_seconds=0.1,
                what="the daemon ready",
            )
    except BaseException:
        daemon.stop()
        raise
    return daemon
