from typing import Any

def apply_side(
    levels: Any, book: dict[int, int], heap: list[int], negate: bool, tick: float, lot: float, /
) -> tuple[tuple[int, int], ...]: ...
