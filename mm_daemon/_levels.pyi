from typing import Any

Levels = tuple[tuple[int, int], ...]

def apply_side(
    levels: Any, book: dict[int, int], heap: list[int], negate: bool, tick: float, lot: float, /
) -> Levels: ...
def parse_depth(
    raw: bytes, symbol: bytes, tick: float, lot: float, /
) -> tuple[int, int, int, int, Levels, Levels] | None: ...
def parse_trade(
    raw: bytes, symbol: bytes, tick: float, lot: float, /
) -> tuple[int, int, int, int, bool] | None: ...
def apply_levels(
    bids: Levels,
    asks: Levels,
    bid_book: dict[int, int],
    bid_heap: list[int],
    ask_book: dict[int, int],
    ask_heap: list[int],
    /,
) -> tuple[int | None, int | None]: ...

class SlotBuilder:
    def __init__(self, cls: type, names: tuple[str, ...]) -> None: ...
    def __call__(self, *values: Any) -> Any: ...
