"""Client order ids: venue-legal, short, and telling which instance, run, market or hedge an
order belongs to.

Ids of a daemon with a journal: `<root><run>_q<market>-<n>` for quotes and
`<root><run>_h<asset>-<n>` for hedges. The root (6 characters, from the instance id) is the same
at every start, so a restart knows the orders of each earlier run as its own; the run (the
journal's run id) tells this run's from theirs. At most about 24 characters: Binance takes 36
of [.A-Z:/a-z0-9_-].
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["hedge_prefix", "instance_root", "new_client_id_prefix", "quote_prefix", "run_prefix"]

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_client_id_prefix() -> str:
    """A short random prefix naming this run's orders (venue-legal: [a-z0-9])."""
    raw = int.from_bytes(os.urandom(4), "big")
    return "mm" + _base36(raw)[:6]


def instance_root(instance_id: str) -> str:
    """The part every client order id of every run of `instance_id` starts with."""
    digest = int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:8], "big")
    return "m" + _base36(digest)[-5:].rjust(5, "0")


def run_prefix(root: str, run_id: int) -> str:
    return f"{root}{_base36(run_id)}_"


def quote_prefix(run: str, market_index: int) -> str:
    """The order manager's prefix of market `market_index` (its ids add `-<n>`)."""
    return f"{run}q{_base36(market_index)}"


def hedge_prefix(run: str, asset_index: int) -> str:
    """The hedger's prefix of asset book `asset_index` (its ids add `<n>`)."""
    return f"{run}h{_base36(asset_index)}-"


def _base36(value: int) -> str:
    if value == 0:
        return "0"
    digits = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(_ID_ALPHABET[rem])
    return "".join(reversed(digits))
