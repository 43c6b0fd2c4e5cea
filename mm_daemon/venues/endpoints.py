"""Endpoint maps that point unmodified ccxt.pro `binance` / `binanceusdm` at any Binance-protocol
server (the embedded simulator, a standalone `mm-daemon sim`, or a testnet).

ccxt is pointed at a server exactly as at a testnet: the URLs go into `exchange.urls["test"]` and
`set_sandbox_mode(True)` switches to them. Every REST and websocket key ccxt 4.5 uses for spot or
USD-M is mapped; a key left out (sapi, dapi, ...) makes ccxt raise instead of reaching mainnet.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["Dialect", "ccxt_test_urls", "make_ccxt_exchange"]

Dialect = Literal["binance-spot", "binance-usdm"]

_CCXT_IDS: dict[str, str] = {"binance-spot": "binance", "binance-usdm": "binanceusdm"}


def ccxt_test_urls(dialect: Dialect, rest_base: str, ws_base: str) -> dict[str, Any]:
    """The dict for a ccxt.pro exchange's `urls["test"]` so it reaches `rest_base`/`ws_base`.

    `rest_base` is e.g. "http://127.0.0.1:8080" and `ws_base` "ws://127.0.0.1:8080" (no path).
    ccxt appends the stream index to the websocket URLs (`/ws/0`) and, for USD-M, rewrites
    `.../ws` into `.../public/ws`, `.../market/ws` and `.../private/ws?listenKey=...`.
    """
    rest = rest_base.rstrip("/")
    ws = ws_base.rstrip("/")
    if dialect == "binance-spot":
        return {
            "public": f"{rest}/api/v3",
            "private": f"{rest}/api/v3",
            "v1": f"{rest}/api/v1",
            "ws": {
                "spot": f"{ws}/ws",
                "margin": f"{ws}/ws",
                "ws-api": {"spot": f"{ws}/ws-api/v3"},
            },
        }
    if dialect == "binance-usdm":
        return {
            "fapiPublic": f"{rest}/fapi/v1",
            "fapiPublicV2": f"{rest}/fapi/v2",
            "fapiPublicV3": f"{rest}/fapi/v3",
            "fapiPrivate": f"{rest}/fapi/v1",
            "fapiPrivateV2": f"{rest}/fapi/v2",
            "fapiPrivateV3": f"{rest}/fapi/v3",
            "fapiData": f"{rest}/futures/data",
            "ws": {
                "linear": f"{ws}/ws",
                "ws-api": {"linear": f"{ws}/ws-fapi/v1"},
            },
        }
    raise ValueError(f"unknown dialect {dialect!r}: expected binance-spot or binance-usdm")


def _ccxt_options(dialect: Dialect) -> dict[str, Any]:
    types = ["spot"] if dialect == "binance-spot" else ["linear"]
    return {
        # One call to exchangeInfo in load_markets; no private or margin calls.
        "fetchMarkets": {"types": types},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "defaultType": "spot" if dialect == "binance-spot" else "swap",
    }


def make_ccxt_exchange(
    dialect: Dialect,
    rest_base: str,
    ws_base: str,
    api_key: str | None = None,
    secret: str | None = None,
    *,
    rate_limit: bool = False,
) -> Any:
    """A ccxt.pro `binance` (spot) or `binanceusdm` exchange pointed at the given server.

    `rate_limit=False` turns ccxt's own throttle off (only for a simulator); the caller closes
    the exchange with `await exchange.close()`.
    """
    import ccxt.pro as ccxtpro  # noqa: PLC0415  heavy import (~0.6 s), only when a venue is made

    if dialect not in _CCXT_IDS:
        raise ValueError(f"unknown dialect {dialect!r}: expected binance-spot or binance-usdm")
    params: dict[str, Any] = {
        "enableRateLimit": rate_limit,
        "options": _ccxt_options(dialect),
    }
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    exchange = getattr(ccxtpro, _CCXT_IDS[dialect])(params)
    exchange.urls["test"] = ccxt_test_urls(dialect, rest_base, ws_base)
    exchange.set_sandbox_mode(True)
    return exchange
