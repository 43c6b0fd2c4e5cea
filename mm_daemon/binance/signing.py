"""HMAC-SHA256 signatures of Binance's signed requests: made by order entry, checked by the
simulator, with the same signer.

A `Signer` is made once per secret. Orders are a few a second, so the signing code is cold in
the caches each time it runs: OpenSSL's HMAC through `hmac.digest` costs 30-80 us then (2-4 us
warm), the compiled signer (`mm_daemon._orderwire`, the key's inner and outer SHA-256 states
precomputed) 5-20 us. Where the compiled module is not built, `hmac.digest` signs. Neither keeps
the secret where a repr could show it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

__all__ = [
    "Signer",
    "make_signer",
    "signature_payload",
    "signed_params",
    "verify_signature",
]

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


def signed_params(params: Mapping[str, str], signer: Signer) -> dict[str, str]:
    """`params` sorted by name with `signature` appended (the WS-API payload rule)."""
    items = sorted(params.items())
    out = dict(items)
    out["signature"] = signer("&".join(map("=".join, items)).encode())
    return out


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
