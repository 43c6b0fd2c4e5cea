"""Binance-style accounts: balances, perpetual positions, and how one instrument's orders
reserve and settle funds (spot locks, perpetual initial margin, fees, realized P&L).

Balances are quote and base amounts as floats, charged with the exact notional of each fill.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mm_daemon.core.types import Instrument, InstrumentKind, Side
from mm_daemon.sim.matching.results import ERR_INSUFFICIENT_BALANCE, SimError

if TYPE_CHECKING:
    from mm_daemon.sim.matching.orders import Order

__all__ = ["BACKGROUND_API_KEY", "Account", "Accounts", "Balance", "Position", "Settlement"]

BACKGROUND_API_KEY = "__background__"
"""The account of synthetic liquidity and flow: never balance-checked, never reported."""


@dataclass(slots=True)
class Balance:
    free: float = 0.0
    locked: float = 0.0

    @property
    def total(self) -> float:
        return self.free + self.locked


@dataclass(slots=True)
class Position:
    """A perpetual position: signed lots, average entry price (quote per base), realized P&L."""

    size_lots: int = 0
    entry_price: float = 0.0
    realized_pnl: float = 0.0


@dataclass(slots=True)
class Account:
    """Balances by asset and, on perpetual venues, positions by exchange symbol.

    On a perpetual venue the quote balance is the margin wallet: `locked` holds the initial
    margin of open orders (notional / leverage); realized P&L and fees settle into `free`.
    """

    api_key: str
    kind: InstrumentKind
    leverage: int
    balances: dict[str, Balance] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)

    def balance(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal

    def position(self, exchange_symbol: str) -> Position:
        pos = self.positions.get(exchange_symbol)
        if pos is None:
            pos = self.positions[exchange_symbol] = Position()
        return pos

    def wallet_balance(self, asset: str) -> float:
        return self.balance(asset).total


class Accounts:
    """Accounts of one venue, keyed by API key; any new key gets the starting balances.

    One `Accounts` may be shared by several engines of the same venue (e.g. BTC/USDT and
    ETH/USDT share the USDT balance).
    """

    __slots__ = ("_accounts", "kind", "leverage", "starting_balances")

    def __init__(
        self,
        kind: InstrumentKind,
        starting_balances: Mapping[str, float],
        *,
        leverage: int = 10,
    ) -> None:
        if leverage < 1:
            raise ValueError("leverage must be at least 1")
        self.kind = kind
        self.starting_balances = dict(starting_balances)
        self.leverage = leverage
        self._accounts: dict[str, Account] = {}

    def get(self, api_key: str) -> Account:
        """The account of `api_key`, created with the starting balances on first use."""
        acct = self._accounts.get(api_key)
        if acct is None:
            acct = Account(api_key=api_key, kind=self.kind, leverage=self.leverage)
            for asset, amount in self.starting_balances.items():
                acct.balances[asset] = Balance(free=float(amount))
            self._accounts[api_key] = acct
        return acct

    def __contains__(self, api_key: object) -> bool:
        return api_key in self._accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    def __len__(self) -> int:
        return len(self._accounts)


class Settlement:
    """How one instrument's client orders reserve and settle account funds.

    Spot: a buy locks its quote cost with the higher fee rate, a sell locks its base. Perpetual:
    an order locks initial margin (notional / leverage) unless it only reduces the position;
    fills move the position and settle realized P&L and fees into the free quote balance.
    Amounts are in `unit` quote per (tick x lot).
    """

    __slots__ = ("_fee_rate", "_is_spot", "_symbol", "instrument", "unit")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.unit = instrument.tick_size * instrument.lot_size * instrument.contract_size_base
        self._is_spot = instrument.kind is InstrumentKind.SPOT
        self._symbol = instrument.exchange_symbol
        self._fee_rate = max(instrument.maker_fee_rate, instrument.taker_fee_rate, 0.0)

    def lock(self, account: Account, order: Order, units: int) -> SimError | None:
        """Reserve what the order may spend, `units` being its cost in price x lots (what a
        market order would pay sweeping the book); returns the refusal if it cannot."""
        inst = self.instrument
        if self._is_spot:
            if order.side is Side.SELL:
                bal = account.balance(inst.base)
                need = inst.lots_to_base(order.remaining)
            else:
                bal = account.balance(inst.quote)
                need = units * self.unit * (1.0 + self._fee_rate)
            free = bal.free
        else:
            bal = account.balance(inst.quote)
            if self._reduces_position(account, order):
                return None
            need = units * self.unit / account.leverage
            free = bal.free - self._position_margin(account)
        if free + 1e-9 < need:
            return ERR_INSUFFICIENT_BALANCE
        bal.free -= need
        bal.locked += need
        order.locked = need
        return None

    def relock(self, account: Account, order: Order, amount: float) -> None:
        """Lock `amount` again for an order whose lock was released (a refused modify)."""
        bal = account.balance(self._locked_asset(order))
        bal.free -= amount
        bal.locked += amount
        order.locked = amount

    def unlock(self, account: Account, order: Order) -> None:
        """Release what the order still holds locked."""
        if order.locked == 0.0:
            return
        bal = account.balance(self._locked_asset(order))
        bal.locked -= order.locked
        bal.free += order.locked
        if abs(bal.locked) < 1e-9:
            # Float residue from many partial releases must not show as a locked balance.
            bal.free += bal.locked
            bal.locked = 0.0
        order.locked = 0.0

    def settle_fill(
        self, account: Account, order: Order, *, price: int, qty: int, notional: float, fee: float
    ) -> float:
        """Move the balances (and the position) by a fill already counted in `order.filled`;
        returns the realized P&L in quote (0 on spot)."""
        inst = self.instrument
        if self._is_spot:
            base = account.balance(inst.base)
            quote = account.balance(inst.quote)
            if order.side is Side.BUY:
                # Release the part of the lock that covered this fill, then pay for it.
                share = order.locked * qty / (order.remaining + qty)
                order.locked -= share
                quote.locked -= share
                quote.free += share - notional - fee
                base.free += inst.lots_to_base(qty)
            else:
                amount = inst.lots_to_base(qty)
                share = min(order.locked, amount)
                order.locked -= share
                base.locked -= share
                quote.free += notional - fee
            return 0.0
        quote = account.balance(inst.quote)
        if order.locked:
            share = order.locked * qty / (order.remaining + qty)
            order.locked -= share
            quote.locked -= share
            quote.free += share
        realized = self._apply_position(account, order.side, price, qty)
        quote.free += realized - fee
        return realized

    def _locked_asset(self, order: Order) -> str:
        inst = self.instrument
        return inst.base if (self._is_spot and order.side is Side.SELL) else inst.quote

    def _reduces_position(self, account: Account, order: Order) -> bool:
        pos = account.position(self._symbol).size_lots
        return pos != 0 and (pos > 0) != (order.side is Side.BUY) and order.remaining <= abs(pos)

    def _position_margin(self, account: Account) -> float:
        inst = self.instrument
        pos = account.position(self._symbol)
        return (
            abs(pos.size_lots)
            * inst.lot_size
            * inst.contract_size_base
            * pos.entry_price
            / account.leverage
        )

    def _apply_position(self, account: Account, side: Side, price: int, qty: int) -> float:
        """Update the perpetual position by a fill; returns the realized P&L in quote."""
        inst = self.instrument
        pos = account.position(self._symbol)
        px = inst.ticks_to_price(price)
        signed = qty * int(side)
        base_per_lot = inst.lot_size * inst.contract_size_base
        realized = 0.0
        old = pos.size_lots
        if old == 0 or (old > 0) == (signed > 0):
            total = abs(old) + qty
            pos.entry_price = (pos.entry_price * abs(old) + px * qty) / total
            pos.size_lots = old + signed
        else:
            closing = min(qty, abs(old))
            direction = 1 if old > 0 else -1
            realized = closing * base_per_lot * (px - pos.entry_price) * direction
            pos.size_lots = old + signed
            if pos.size_lots == 0:
                pos.entry_price = 0.0
            elif (pos.size_lots > 0) != (old > 0):
                pos.entry_price = px
        pos.realized_pnl += realized
        return realized
