"""The compiled order-entry path (`mm_daemon._orderwire`) against the Python it stands in for:
HMAC-SHA256 signatures equal `hmac`'s for every key and payload."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.binance import signing
from mm_daemon.binance.signing import make_signer

try:
    from mm_daemon import _orderwire
except ImportError:  # pragma: no cover  depends on the build
    _orderwire = None  # type: ignore[assignment]

compiled = pytest.mark.skipif(_orderwire is None, reason="mm_daemon._orderwire is not built here")

# Binance's API documentation example (HMAC-SHA256 signed request).
DOC_SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    b"&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_signer_matches_binance_documented_example() -> None:
    assert make_signer(DOC_SECRET)(DOC_PAYLOAD) == DOC_SIGNATURE


def test_python_signer_of_a_build_without_the_compiled_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "_compiled_signer", None)
    signer = signing.make_signer(DOC_SECRET)
    assert signer(DOC_PAYLOAD) == DOC_SIGNATURE
    assert "NhqPtmdS" not in repr(signer)


@compiled
@settings(max_examples=400, deadline=None)
@given(key=st.binary(max_size=200), payload=st.binary(max_size=400))
def test_compiled_signature_equals_hmac_for_any_key_and_payload(key: bytes, payload: bytes) -> None:
    assert _orderwire.Signer(key).hexdigest(payload) == hmac.digest(key, payload, "sha256").hex()


@compiled
@pytest.mark.parametrize("length", [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 128, 1000])
def test_compiled_signature_at_every_padding_boundary(length: int) -> None:
    # 55/56 bytes: the last length that fits the final block and the first that does not.
    payload = bytes(range(256)) * 4
    payload = payload[:length]
    for key in (b"", b"k" * 64, b"k" * 65):
        expected = hmac.digest(key, payload, "sha256").hex()
        assert _orderwire.Signer(key).hexdigest(payload) == expected


@compiled
def test_compiled_signer_signs_again_with_the_same_states() -> None:
    signer = _orderwire.Signer(b"secret")
    first = signer.hexdigest(b"a=1")
    signer.hexdigest(b"something else entirely" * 10)
    assert signer.hexdigest(b"a=1") == first == hmac.digest(b"secret", b"a=1", "sha256").hex()


def test_signer_repr_never_shows_the_secret() -> None:
    secret = b"super-secret-value-123"
    signer = make_signer(secret)
    assert "super-secret" not in repr(signer)
    assert "super-secret" not in repr(getattr(signer, "__self__", signer))


@compiled
def test_compiled_signer_refuses_a_key_that_is_not_bytes() -> None:
    with pytest.raises(TypeError):
        _orderwire.Signer("text")  # type: ignore[arg-type]
