"""Real processes for the tests that kill and restart them: a standalone simulator
(`mm-daemon sim`) and daemons (`mm-daemon run`) with JSON logs read as they are written.

- `SimProcess.start(folder, ...)`: the simulator on free loopback ports; its venues'
  endpoints, its admin state (open orders, balances, positions per API key) and a taker
  account that trades through the public book over real ccxt.
- `DaemonProcess.start(config, env)`: a daemon whose log lines are collected by a thread;
  `wait_for(event)`, `metric(name, **labels)` from its /metrics, `kill()` (SIGKILL),
  `stop()` (SIGTERM, returns the exit code).
- `live_config(sim, state_dir, ...)`: a live-mode config of BTC/USDT quoted on the spot venue
  and hedged on the perpetual, both at the simulator's URLs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mm_daemon.binance.signing import make_signer

REPO = Path(__file__).resolve().parents[1]
MAKER_KEY = "restart-maker"
HEDGE_KEY = "restart-hedge"
TAKER_KEY = "restart-taker"
STARTING_BASE = 10_000.0  # every simulator account's opening base balance (sim.starting_base)


def _python() -> list[str]:
    return [sys.executable, "-m", "mm_daemon"]


def environ_without_settings() -> dict[str, str]:
    """The test run's environment less its `MMD_*` settings: a child process reads its config
    file alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MMD_")}


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    endpoints: dict[str, dict[str, Any]]

    @classmethod
    def start(cls, folder: Path, *, regime: str = "calm", seed: int = 11) -> SimProcess:
        config = folder / "sim.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "venues": {"sim-spot": {"exchange": "binance"}},
                    "markets": [{"venue": "sim-spot", "symbol": "BTC/USDT"}],
                    "hedging": {"mode": "off"},
                    "sim": {"regime": regime, "seed": seed, "starting_base": STARTING_BASE},
                    "logging": {"format": "json", "level": "warning"},
                }
            )
        )
        proc = subprocess.Popen(
            [*_python(), "sim", "--config", str(config)],
            cwd=REPO,
            env=environ_without_settings(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        endpoints: dict[str, dict[str, Any]] = {}
        for line in proc.stdout:  # the simulator prints its venues, then {"ready": true}
            message = json.loads(line)
            if message.get("ready"):
                break
            endpoints[message["venue"]] = message
        else:
            error = proc.stderr.read()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            pytest.fail(f"the simulator exited before it was ready: {error.strip()}")
        # Nothing reads its log: drained so a full pipe never blocks it.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        return cls(proc, endpoints)

    def rest(self, venue: str) -> str:
        return str(self.endpoints[venue]["rest"])

    def state(self, venue: str) -> dict[str, Any]:
        url = f"{self.endpoints[venue]['admin']}/state?depth=5"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  loopback
            state: dict[str, Any] = json.loads(response.read())
        return state

    def open_orders(self, venue: str, api_key: str) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = self.state(venue)["open_orders"].get(api_key, [])
        return orders

    def fault(self, venue: str, kind: str, seconds: float = 0.0, count: int = 1) -> None:
        """Inject a fault through the admin endpoint (`mm_daemon.sim.faults`)."""
        body = json.dumps({"kind": kind, "seconds": seconds, "count": count}).encode()
        request = urllib.request.Request(  # noqa: S310  loopback
            f"{self.endpoints[venue]['admin']}/faults",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  loopback
            assert response.status == 200

    def spot_position(self, api_key: str, asset: str = "BTC") -> float:
        """The account's base balance (free and locked) beyond the opening one."""
        free, locked = self.state("sim-spot")["balances"].get(api_key, {}).get(asset, [0, 0])
        return float(free) + float(locked) - STARTING_BASE

    def perp_position_lots(self, api_key: str, symbol: str = "BTCUSDT") -> int:
        position = self.state("sim-perp")["positions"].get(api_key, {}).get(symbol)
        return int(position[0]) if position else 0

    def _signed(
        self, venue: str, method: str, path: str, params: dict[str, str], api_key: str
    ) -> Any:
        """A signed Binance REST request of the account `api_key` (its secret is the key)."""
        query = urlencode({**params, "timestamp": str(time.time_ns() // 1_000_000)})
        query += "&signature=" + make_signer(api_key.encode())(query.encode())
        request = urllib.request.Request(  # noqa: S310  loopback
            f"{self.rest(venue)}{path}?{query}", method=method, headers={"X-MBX-APIKEY": api_key}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  loopback
            return json.loads(response.read())

    def market_order(self, venue: str, side: str, quantity: float, api_key: str = TAKER_KEY) -> Any:
        """A MARKET order of another account, as any client sends it."""
        path = "/api/v3/order" if venue == "sim-spot" else "/fapi/v1/order"
        params = {
            "symbol": "BTCUSDT",
            "side": side,
            "type": "MARKET",
            "quantity": f"{quantity:.8f}",
        }
        return self._signed(venue, "POST", path, params, api_key)

    def sell_through(self, price: str, quantity: float, api_key: str = TAKER_KEY) -> Any:
        """A spot LIMIT IOC sell at `price`: it takes every bid at `price` or better, up to
        `quantity`, and the rest expires."""
        params = {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "timeInForce": "IOC",
            "price": price,
            "quantity": f"{quantity:.5f}",  # the spot lot
        }
        return self._signed("sim-spot", "POST", "/api/v3/order", params, api_key)

    def bids(self, venue: str = "sim-spot") -> list[tuple[float, float]]:
        """The public book's bids (price, size), best first."""
        url = f"{self.rest(venue)}/api/v3/depth?symbol=BTCUSDT&limit=5000"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  loopback
            book: dict[str, Any] = json.loads(response.read())
        return [(float(p), float(q)) for p, q in book["bids"]]

    def trade_ids(self, venue: str, api_key: str) -> list[str]:
        """Every trade id of the account on BTCUSDT (myTrades / userTrades from the first)."""
        path = "/api/v3/myTrades" if venue == "sim-spot" else "/fapi/v1/userTrades"
        ids: list[str] = []
        from_id = 0
        while True:
            page = self._signed(
                venue, "GET", path, {"symbol": "BTCUSDT", "fromId": str(from_id), "limit": "1000"},
                api_key,
            )  # fmt: skip
            ids.extend(str(t["id"]) for t in page)
            if len(page) < 1000:
                return ids
            from_id = max(int(t["id"]) for t in page) + 1

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _btc_config(
    mode: str,
    venues: dict[str, Any],
    state_dir: Path,
    path: Path,
    sections: dict[str, dict[str, Any]],
) -> Path:
    """BTC/USDT quoted on spot with one fixed level 0.25 bps from fair, hedged on the
    perpetual; `sections` override or add config sections key by key."""
    data: dict[str, Any] = {
        "mode": mode,
        "venues": venues,
        "markets": [
            {
                "venue": "sim-spot",
                "symbol": "BTC/USDT",
                "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
            }
        ],
        "quoting": {
            "model": "fixed",
            "order_size_base": 0.01,
            "levels": 1,
            "spread_bps": 0.5,
            "min_spread_bps": 0.0,
        },
        "inventory": {"limit_base": 0.05},
        "hedging": {"mode": "threshold", "threshold_base": 0.015},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "info", "format": "json"},
        "state": {"dir": str(state_dir), "instance_id": "restart-test"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def live_config(sim: SimProcess, state_dir: Path, folder: Path, **sections: dict[str, Any]) -> Path:
    """A live config against `sim`: BTC/USDT quoted on spot, hedged on the perpetual."""
    venues = {
        "sim-spot": {
            "exchange": "binance",
            "endpoint": sim.rest("sim-spot"),
            "maker_fee_bps": 0.0,
            "taker_fee_bps": 4.0,
        },
        "sim-perp": {
            "exchange": "binanceusdm",
            "endpoint": sim.rest("sim-perp"),
            "maker_fee_bps": 0.0,
            "taker_fee_bps": 2.0,
        },
    }
    return _btc_config("live", venues, state_dir, folder / "daemon.yaml", sections)


def paper_config(state_dir: Path, folder: Path, **sections: dict[str, Any]) -> Path:
    """A paper config on the embedded simulator: BTC/USDT quoted on spot, hedged on the
    perpetual, tight enough to fill within seconds in a trending market."""
    venues = {
        "sim-spot": {"exchange": "binance", "endpoint": "sim"},
        "sim-perp": {"exchange": "binanceusdm", "endpoint": "sim"},
    }
    sections = {**sections, "sim": {"regime": "trending", "seed": 7, **sections.get("sim", {})}}
    return _btc_config("paper", venues, state_dir, folder / "paper.yaml", sections)


def live_env() -> dict[str, str]:
    return {
        "MMD_VENUES__SIM_SPOT__API_KEY": MAKER_KEY,
        "MMD_VENUES__SIM_SPOT__API_SECRET": MAKER_KEY,  # the simulator's secret is the key
        "MMD_VENUES__SIM_PERP__API_KEY": HEDGE_KEY,
        "MMD_VENUES__SIM_PERP__API_SECRET": HEDGE_KEY,
    }


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)  # stderr lines that are not JSON
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, config: Path, env: dict[str, str] | None = None, *args: str) -> DaemonProcess:
        proc = subprocess.Popen(
            [*_python(), "run", "--config", str(config), *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        daemon = cls(proc)
        daemon._reader = threading.Thread(target=daemon._read, daemon=True)
        daemon._reader.start()
        return daemon

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                try:
                    self.lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    self.plain.append(raw.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, event: str, timeout_s: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The first log line of `event` (with `fields`), waiting for it."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if line.get("event") == event and all(
                        line.get(k) == v for k, v in fields.items()
                    ):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reading()):
                    break
                self._changed.wait(min(left, 0.5))
        tail = [line.get("event") for line in self.lines[-10:]]
        pytest.fail(f"no {event!r} line within {timeout_s:g} s (last: {tail}, {self.plain[-3:]})")

    def _reading(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def events(self, event: str) -> list[dict[str, Any]]:
        with self._changed:
            return [line for line in self.lines if line.get("event") == event]

    @property
    def metrics_url(self) -> str:
        return str(self.wait_for("metrics_serving")["url"])

    def metric(self, name: str, default: float | None = None, **labels: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310  loopback
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        if default is None:
            pytest.fail(f"no sample {name}{labels} at {self.metrics_url}")
        return default

    def kill(self) -> None:
        """SIGKILL: no cancel, no journal close, as the OOM killer does it."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._join()

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._join()
        return code

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._join()
        return code

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@contextmanager
def running(daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """Kill the daemon if the test ends with it still running."""
    try:
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


def journal_fills(path: Path) -> list[tuple[str, str, str, int, int, float]]:
    """(venue, symbol, trade id, side, size lots, fee) of every fill in a journal, read-only
    (also while its daemon runs: WAL readers do not block the writer)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT venue, symbol, trade_id, side, size_lots, fee FROM fills ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [(str(v), str(s), str(t), int(d), int(n), float(f)) for v, s, t, d, n, f in rows]


def journal_open_orders(path: Path) -> set[str]:
    """Client ids of the orders a journal holds open: last journaled state not final, and not
    filled in full by the fills journaled for them (a fill commits at once, the status after it
    may have been lost at a kill)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT o.client_order_id FROM open_orders AS o WHERE o.size_lots > "
            "(SELECT coalesce(sum(f.size_lots), 0) FROM fills AS f WHERE f.venue = o.venue "
            "AND f.symbol = o.symbol AND f.client_order_id = o.client_order_id)"
        ).fetchall()
    finally:
        conn.close()
    return {str(cid) for (cid,) in rows}
