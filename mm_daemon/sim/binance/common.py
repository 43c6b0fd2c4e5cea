"""What Binance spot and USD-M share on the wire: number formatting, request signatures,
error codes and JSON, and the time checks of signed requests.

Numbers go out as strings with the venue's decimals (spot prints 8, "64012.34000000"; USD-M
prints the instrument's price and quantity precision, "61800.30" / "0.006"), exactly as the
recorded real frames do. Prices and sizes are integer ticks and lots inside; the formatters turn
them into strings without floats (and cache them: the same prices recur on every depth message).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from mm_daemon.core.types import Instrument
from mm_daemon.signing import Signer, make_signer

__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "MAX_RECV_WINDOW_MS",
    "BinanceError",
    "NumberFormat",
    "check_timestamp",
    "dumps",
    "expected_secret",
    "signature_payload",
    "verify_signature",
]

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
# Entries per text or fragment cache, each cleared when full and refilled as used: a few MB a
# venue at most, however long the simulator runs (prices and sizes in use drift).
_CACHE_LIMIT = 50_000


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


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


def expected_secret(api_key: str) -> str:
    """The secret the simulator expects for `api_key`.

    Any API key is accepted and gets its own account; its secret is the key itself, so a client
    configured with (key, key) signs correctly and any other secret is refused with -1022.
    """
    return api_key


_SIGNATURE_RE = re.compile(r"(?:^|&)signature=([0-9a-fA-F]*)")


def signature_payload(query_string: str, body: str) -> tuple[str, str | None]:
    """(the signed payload, the signature sent) of a request, Binance's rule:

    the payload is the query string concatenated with the body, without the signature itself.
    """
    signature: str | None = None
    parts: list[str] = []
    for raw in (query_string, body):
        text = raw
        match = _SIGNATURE_RE.search(text)
        if match is not None:
            signature = match.group(1)
            text = text[: match.start()] + text[match.end() :]
            if match.start() == 0 and text.startswith("&"):
                text = text[1:]
        parts.append(text)
    return "".join(parts), signature


_SIGNERS: dict[str, Signer] = {}
_SIGNERS_KEPT = 1_024  # accounts are few; a flood of new keys only rebuilds signers


def verify_signature(secret: str, payload: str, signature: str | None) -> bool:
    if not signature:
        return False
    signer = _SIGNERS.get(secret)
    if signer is None:
        if len(_SIGNERS) >= _SIGNERS_KEPT:
            _SIGNERS.clear()
        signer = _SIGNERS[secret] = make_signer(secret.encode())
    return hmac.compare_digest(signer(payload.encode()), signature.lower())


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


def _step_digits(step: float, decimals: int) -> int:
    return round(step * 10.0**decimals)


class _FragmentCache(dict[int, bytes]):
    """JSON fragments by key, made on first use (a subscript is the fast path). Cleared when
    full: the prices and sizes in use drift, and a cache that stopped growing would keep the old
    ones and miss the new."""

    make: Callable[[int], bytes]

    def __missing__(self, key: int) -> bytes:
        value = self.make(key)
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[key] = value
        return value


@dataclass(slots=True)
class NumberFormat:
    """Prints ticks and lots as Binance does, with fixed decimals, without going through floats."""

    price_step: int  # one tick in units of 10**-price_decimals
    price_decimals: int
    size_step: int
    size_decimals: int
    _px: dict[int, str]
    _qty: dict[int, str]
    # A level's JSON `["<price>","<qty>"]` is the price fragment `["<price>","` of its level key
    # (+-price ticks) followed by the size fragment `<qty>"]` of its lots: two small caches
    # instead of one keyed by both (whose entries almost never repeat).
    price_fragments: _FragmentCache
    size_fragments: _FragmentCache

    @classmethod
    def for_instrument(
        cls, instrument: Instrument, price_decimals: int, size_decimals: int
    ) -> NumberFormat:
        fmt = cls(
            _step_digits(instrument.tick_size, price_decimals),
            price_decimals,
            _step_digits(instrument.lot_size, size_decimals),
            size_decimals,
            {},
            {},
            _FragmentCache(),
            _FragmentCache(),
        )
        fmt.price_fragments.make = fmt.price_fragment
        fmt.size_fragments.make = fmt.size_fragment
        return fmt

    @staticmethod
    def _fmt(units: int, decimals: int) -> str:
        if decimals == 0:
            return str(units)
        if units < 0:
            return "-" + NumberFormat._fmt(-units, decimals)
        text = str(units).rjust(decimals + 1, "0")
        return text[:-decimals] + "." + text[-decimals:]

    def level(self, item: tuple[int, int]) -> bytes:
        """The JSON level `["<price>","<qty>"]` of (key, lots), key = +-price ticks."""
        key, lots = item
        return self.price_fragments[key] + self.size_fragments[lots]

    def price_fragment(self, key: int) -> bytes:
        """`["<price>","` of a level key (+-price ticks)."""
        return ('["' + self._fmt(abs(key) * self.price_step, self.price_decimals) + '","').encode()

    def size_fragment(self, lots: int) -> bytes:
        """`<qty>"]` of a size in lots."""
        return (self._fmt(lots * self.size_step, self.size_decimals) + '"]').encode()

    def px(self, ticks: int) -> str:
        text = self._px.get(ticks)
        if text is None:
            text = self._fmt(ticks * self.price_step, self.price_decimals)
            if len(self._px) >= _CACHE_LIMIT:
                self._px.clear()
            self._px[ticks] = text
        return text

    def qty(self, lots: int) -> str:
        text = self._qty.get(lots)
        if text is None:
            text = self._fmt(lots * self.size_step, self.size_decimals)
            if len(self._qty) >= _CACHE_LIMIT:
                self._qty.clear()
            self._qty[lots] = text
        return text

    def amount(self, value: float, decimals: int = 8) -> str:
        """A balance or fee (not on a tick grid), with `decimals` decimals."""
        return f"{value:.{decimals}f}"

    def parse_px(self, text: str) -> int | None:
        """Ticks of a price string; None when it is not on the tick grid."""
        return _parse_units(text, self.price_decimals, self.price_step)

    def parse_qty(self, text: str) -> int | None:
        """Lots of a quantity string; None when it is not on the lot grid."""
        return _parse_units(text, self.size_decimals, self.size_step)


_NUMBER_RE = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")


def _parse_units(text: str, decimals: int, step: int) -> int | None:
    text = text.strip()
    if not _NUMBER_RE.match(text):
        return None
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        return None
    scale: int = 10**decimals
    units = int(whole or "0") * scale + int(frac.ljust(decimals, "0") or "0")
    if step <= 0 or units % step:
        return None
    return units // step
