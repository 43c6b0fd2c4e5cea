"""`mm-daemon ctl top`: the daemon's markets redrawn every second until q (or Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from mm_daemon.control.client import ClientError, ControlClient
from mm_daemon.control.render import top_view

__all__ = ["run_top"]

REFRESH_SECONDS = 1.0


@contextlib.contextmanager
def _keys_without_enter() -> Iterator[bool]:
    """stdin in cbreak mode while the panel runs (a key press is read at once); False when
    stdin is not a terminal (only Ctrl-C quits then)."""
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(timeout_s: float) -> bool:
    readable, _, _ = select.select([sys.stdin], [], [], timeout_s)
    return bool(readable) and sys.stdin.read(1) in ("q", "Q")


def run_top(client: ControlClient, console: Console | None = None) -> int:
    """Redraw until q or Ctrl-C; the exit code (0, or the client's when it cannot start)."""
    console = console or Console()
    status = client.status()  # the first read fails loudly (URL, token) before the panel opens
    with (
        _keys_without_enter() as keys,
        Live(
            top_view(status, url=client.url),
            console=console,
            screen=True,
            auto_refresh=False,
        ) as live,
    ):
        try:
            while True:
                deadline = time.monotonic() + REFRESH_SECONDS
                while (left := deadline - time.monotonic()) > 0:
                    if keys and _quit_pressed(left):
                        return 0
                    if not keys:
                        time.sleep(left)
                try:
                    live.update(top_view(client.status(), url=client.url), refresh=True)
                except ClientError as exc:
                    live.update(Text(f"{exc}  (retrying; q: quit)", style="bold red"), refresh=True)
        except KeyboardInterrupt:
            return 0
