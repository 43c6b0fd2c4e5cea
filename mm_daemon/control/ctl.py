"""`mm-daemon ctl`: look inside a running daemon and steer it through its control API.

    mm-daemon ctl status            the status table (--json: the /status body)
    mm-daemon ctl pause [MARKET..]  pull quotes (all markets by default); resume lifts it
    mm-daemon ctl kill [--reason]   HALT everything and cancel every order; reset leaves HALTED
    mm-daemon ctl reload            apply the config file's tunable fields (as SIGHUP)
    mm-daemon ctl top               a live panel, redrawn every second

The daemon's URL comes from --url or MMD_CONTROL_URL (default http://127.0.0.1:9464), the token
from MMD_CONTROL__TOKEN (the variable the daemon reads) or --token-file. Exit codes: 0 done,
1 refused by the daemon (or a kill that left orders open), 2 usage, 3 no or wrong token,
4 no answer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mm_daemon.config import CONTROL_TOKEN_ENV
from mm_daemon.control.client import EXIT_OK, EXIT_REFUSED, ClientError, ControlClient

__all__ = ["CONTROL_URL_ENV", "ctl_app"]

CONTROL_URL_ENV = "MMD_CONTROL_URL"
DEFAULT_URL = "http://127.0.0.1:9464"

ctl_app = typer.Typer(
    name="ctl",
    help="Look inside a running daemon and steer it (its control API).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Options:
    def __init__(self, client: ControlClient, as_json: bool) -> None:
        self.client = client
        self.as_json = as_json


@ctl_app.callback()
def _options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help=f"The daemon's base URL (default ${CONTROL_URL_ENV}, then {DEFAULT_URL})."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help=f"File holding the control token (default: ${CONTROL_TOKEN_ENV}).",
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the daemon's JSON answer as it is.")
    ] = False,
) -> None:
    token = os.environ.get(CONTROL_TOKEN_ENV)
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            typer.echo(f"--token-file: cannot read {token_file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    base = url or os.environ.get(CONTROL_URL_ENV) or DEFAULT_URL
    ctx.obj = _Options(ControlClient(base, token), as_json)


def _fail(exc: ClientError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    for problem in exc.problems:
        typer.echo(f"  {problem}", err=True)
    return typer.Exit(exc.exit_code)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@ctl_app.command()
def status(ctx: typer.Context) -> None:
    """The daemon's status: markets, hedges, venues, latest errors."""
    options: _Options = ctx.obj
    try:
        current = options.client.status()
    except ClientError as exc:
        raise _fail(exc) from None
    if options.as_json:
        _print_json(current.model_dump(mode="json"))
        return
    from rich.console import Console  # noqa: PLC0415  only a table needs rich

    from mm_daemon.control.render import status_view  # noqa: PLC0415  as above

    Console(soft_wrap=False).print(status_view(current))


def _act(ctx: typer.Context, action: str, body: dict[str, Any] | None = None) -> None:
    options: _Options = ctx.obj
    try:
        result = options.client.action(action, body)
    except ClientError as exc:
        raise _fail(exc) from None
    if options.as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        typer.echo(f"{result.action}: {result.result}: {result.detail}")
        for change in result.changes:
            where = f"{change.market}: " if change.market else ""
            typer.echo(f"  {where}{change.field}: {change.old} -> {change.new}")
        for line in result.still_open:
            typer.echo(f"  still open: {line}")
    raise typer.Exit(EXIT_REFUSED if result.result == "partial" else EXIT_OK)


Markets = Annotated[
    list[str] | None, typer.Argument(help="Market names as status shows them (default: all).")
]


@ctl_app.command()
def pause(ctx: typer.Context, markets: Markets = None) -> None:
    """Pull the quotes (risk and hedging keep running) until resume."""
    _act(ctx, "pause", {"markets": markets} if markets else None)


@ctl_app.command()
def resume(ctx: typer.Context, markets: Markets = None) -> None:
    """Quote again after a pause."""
    _act(ctx, "resume", {"markets": markets} if markets else None)


@ctl_app.command()
def kill(
    ctx: typer.Context,
    reason: Annotated[
        str | None, typer.Option("--reason", help="A note kept with the halt (200 characters).")
    ] = None,
) -> None:
    """HALT every market (it survives a restart), hold hedging, cancel every order."""
    _act(ctx, "kill", {"reason": reason} if reason else None)


@ctl_app.command()
def reset(ctx: typer.Context) -> None:
    """Leave HALTED (a kill or a drawdown)."""
    _act(ctx, "reset")


@ctl_app.command()
def reload(ctx: typer.Context) -> None:
    """Re-read the daemon's config file and apply its tunable fields."""
    _act(ctx, "reload")


@ctl_app.command()
def top(ctx: typer.Context) -> None:
    """A live panel of every market, redrawn every second (q quits)."""
    options: _Options = ctx.obj
    from mm_daemon.control.top import run_top  # noqa: PLC0415  rich only for the panel

    try:
        code = run_top(options.client)
    except ClientError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)
