"""What the simulated Binance spot and USD-M venues share as a server: errors answered the
Binance way, JSON, and the time checks of signed requests. Number formatting and signatures
are the protocol's own (`mm_daemon.binance.numbers`, `mm_daemon.binance.signing`)."""

from __future__ import annotations

import time
from typing import Any

import orjson

__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "MAX_RECV_WINDOW_MS",
    "BinanceError",
    "check_timestamp",
    "dumps",
    "expected_secret",
    "malformed_params",
    "missing_param",
    "server_time_ms",
]

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def server_time_ms() -> int:
    """Server time in milliseconds, as Binance stamps its answers."""
    return time.time_ns() // 1_000_000


class BinanceError(Exception):
    """An error answered the Binance way: HTTP status plus `{"code": ..., "msg": ...}`."""

    def __init__(
        self,
        code: int,
        msg: str,
        http_status: int = 400,
        data: dict[str, Any] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.data = data
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            body["data"] = self.data
        return body


# Binance error constructors shared by the parameter and signature checks.


def bad_timestamp() -> BinanceError:
    return BinanceError(
        -1021, "Timestamp for this request is outside of the recvWindow.", http_status=400
    )


def missing_param(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def malformed_params() -> BinanceError:
    """A request whose parameters could not be read (the answer to any parsing failure)."""
    return BinanceError(-1102, "A mandatory parameter was not sent, was empty/null, or malformed.")


def expected_secret(api_key: str) -> str:
    """The secret the simulator expects for `api_key`.

    Any API key is accepted and gets its own account; its secret is the key itself, so a client
    configured with (key, key) signs correctly and any other secret is refused with -1022.
    """
    return api_key


def check_timestamp(params: dict[str, str], now_ms: int) -> None:
    """Binance's rule: timestamp < now + 1000 and now - timestamp <= recvWindow (max 60000)."""
    raw = params.get("timestamp")
    if raw is None:
        raise missing_param("timestamp")
    try:
        timestamp = int(raw)
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
    if recv_window <= 0 or recv_window > MAX_RECV_WINDOW_MS:
        raise BinanceError(-1131, "recvWindow must be less than 60000")
    if timestamp >= now_ms + 1000 or now_ms - timestamp > recv_window:
        raise bad_timestamp()
