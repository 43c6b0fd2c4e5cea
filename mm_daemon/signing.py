"""HMAC-SHA256 request signing (Binance's HMAC keys), shared by order entry and the simulator.

A `Signer` is made once per secret. Orders are a few a second, so the signing code is cold in
the caches each time it runs: OpenSSL's HMAC through `hmac.digest` costs 30-80 us then (2-4 us
warm), the compiled signer (`mm_daemon._orderwire`, the key's inner and outer SHA-256 states
precomputed) 5-20 us. Where the compiled module is not built, `hmac.digest` signs. Neither keeps
the secret where a repr could show it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, cast

__all__ = ["Signer", "make_signer"]

Signer = Callable[[bytes], str]
"""HMAC-SHA256 of a payload under one secret, lower-case hex."""

_compiled_signer: Callable[[bytes], Any] | None
try:  # setup.py builds it where a C compiler is at hand
    from mm_daemon import _orderwire

    _compiled_signer = _orderwire.Signer
except ImportError:  # pragma: no cover  depends on the build
    _compiled_signer = None


def make_signer(secret: bytes) -> Signer:
    """A `Signer` for `secret`: the compiled one where it is built, else `hmac.digest`."""
    if _compiled_signer is not None:
        return cast("Signer", _compiled_signer(secret).hexdigest)

    def signer(payload: bytes) -> str:
        return hmac.digest(secret, payload, "sha256").hex()

    return signer
