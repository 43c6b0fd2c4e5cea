"""What a live `Execution` has delivered: the orders it knows as live, and the fills it has
already handed over, so a reconnect can ask the venue about the first and never deliver the
second twice."""

from __future__ import annotations

from mm_daemon.core.types import Fill, OrderUpdate

__all__ = ["Delivered"]

TRADE_IDS_KEPT = 4_096  # fills remembered: one replayed after a reconnect is dropped


class Delivered:
    """Orders known as live by client id (their last update) and the recent fills' trade ids."""

    __slots__ = ("_trade_ids", "live")

    def __init__(self) -> None:
        self.live: dict[str, OrderUpdate] = {}
        self._trade_ids: dict[str, None] = {}  # oldest first

    def admit(self, event: OrderUpdate | Fill) -> bool:
        """Record `event`; False for a fill already delivered (drop it)."""
        if isinstance(event, OrderUpdate):
            if event.status.is_terminal:
                self.live.pop(event.client_order_id, None)
            elif event.client_order_id:
                self.live[event.client_order_id] = event
            return True
        if not event.trade_id:
            return True
        trade_ids = self._trade_ids
        if event.trade_id in trade_ids:
            return False
        trade_ids[event.trade_id] = None
        if len(trade_ids) > TRADE_IDS_KEPT:
            del trade_ids[next(iter(trade_ids))]
        return True
