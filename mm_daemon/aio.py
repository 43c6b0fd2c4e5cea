"""Small asyncio helpers shared by the order path."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]


def start_eagerly(coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
    """Run `coro` now, up to its first real wait; finish the rest as a task kept in `tasks`.

    An order request is then on the wire before the caller returns, even when the loop has a
    backlog of market-data callbacks queued (what an eager task does in Python 3.12).
    """
    try:
        pending = coro.send(None)
    except StopIteration:
        return
    # A future's __await__ leaves it flagged "blocking" until a task takes it over; clear the
    # flag now, as a task does, or a second coroutine awaiting the same future before that task
    # runs fails with "await wasn't used with future". `_Rest` sets it again for the task.
    if getattr(pending, "_asyncio_future_blocking", None):
        pending._asyncio_future_blocking = False
    task = asyncio.get_running_loop().create_task(_finish(_Rest(coro, pending)))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _finish(rest: _Rest) -> None:
    await rest


class _Rest:
    """Awaitable driving the rest of a coroutine whose first step already ran.

    It hands the future the coroutine waits on to the task that awaits it, and forwards the
    task's resumptions (and cancellation) into the coroutine.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        coro = self._coro
        pending = self._pending
        if getattr(pending, "_asyncio_future_blocking", None) is False:
            pending._asyncio_future_blocking = True  # handed to the awaiting task as `await` does
        while True:
            try:
                yield pending
            except BaseException as exc:  # noqa: BLE001  forwarded into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                pending = coro.send(None)
            except StopIteration:
                return
