"""Command line: run | replay | record | sim | ctl | check-config | schema | --version.

Errors a user can cause (config, keys, symbols) end in one clear line per problem on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mm_daemon import __version__
from mm_daemon.config import Config, ConfigError, config_summary, load_config
from mm_daemon.control.ctl import ctl_app

__all__ = ["app", "main"]

EXIT_USAGE = 2

app = typer.Typer(
    name="mm-daemon",
    help="Market-maker daemon: quotes, hedges and reports, on paper or live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(ctl_app)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The YAML config file.", dir_okay=False),
]
DurationOption = Annotated[
    float | None,
    typer.Option("--duration", help="Stop by itself after this many seconds.", min=0),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mm-daemon {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Market-maker daemon."""


def _fail(problems: list[str]) -> typer.Exit:
    for problem in problems:
        typer.echo(problem, err=True)
    return typer.Exit(EXIT_USAGE)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(exc.problems) from None


@app.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="The YAML config file.", dir_okay=False)],
) -> None:
    """Validate a config file: one summary line, or one line per problem and exit 2."""
    config = _load(path)
    typer.echo(config_summary(config))


@app.command()
def schema(
    control_api: Annotated[
        bool,
        typer.Option(
            "--control-api",
            help="Print the control API's OpenAPI description instead (docs/control-api.yaml).",
        ),
    ] = False,
) -> None:
    """Print the config's JSON Schema (shipped as config/schema.json)."""
    if control_api:
        from mm_daemon.control.openapi import openapi_yaml  # noqa: PLC0415  only here

        typer.echo(openapi_yaml(), nl=False)
        return
    typer.echo(json.dumps(config_json_schema(), indent=2))


def config_json_schema() -> dict[str, object]:
    document = Config.model_json_schema(mode="validation")
    document["title"] = "mm-daemon config"
    # Editors accept a `$schema` key at the top of the YAML; allow it.
    properties = document.setdefault("properties", {})
    assert isinstance(properties, dict)  # noqa: S101  pydantic always emits a mapping here
    properties["$schema"] = {"type": "string", "description": "Path or URL of this schema."}
    return document


@app.command()
def run(
    config_path: ConfigOption,
    duration: DurationOption = None,
    *,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start a new book: the journal is moved aside under a timestamped name (never "
            "deleted) and this run starts from nothing.",
        ),
    ] = False,
) -> None:
    """Run the daemon until SIGINT or SIGTERM (or --duration), then cancel orders and exit."""
    config = _load(config_path)
    from mm_daemon.engine.daemon import run_daemon  # noqa: PLC0415  heavy imports only for `run`

    try:
        code = run_daemon(
            config, duration_seconds=duration, fresh=fresh, config_path=config_path.resolve()
        )
    except ConfigError as exc:
        raise _fail(exc.problems) from None
    _exit_now(code)


@app.command()
def replay(
    config_path: ConfigOption,
    *,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder of recorded Binance captures (default: sim.replay_data_dir, then "
            "$MMD_DATA_DIR, then shared/data/binance beside the checkout).",
            file_okay=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Replay only the first S recorded seconds.", min=0),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Sweep a config field: PATH=V1,V2,... (e.g. quoting.spread_bps=0.5,1,2); "
            "repeat for a grid. Prints one line per combination.",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Combinations replayed at once (processes).", min=1)
    ] = 1,
    summary_json: Annotated[
        Path | None,
        typer.Option(
            "--summary-json",
            help="Also write the summary (or every run's) as JSON here.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run the daemon on recorded market data, as fast as it computes, and print the summary."""
    if sets:
        _sweep(
            config_path,
            sets,
            data_dir=data_dir,
            duration=duration,
            jobs=jobs,
            summary_json=summary_json,
        )
        return
    config = _load(config_path)
    from mm_daemon.engine.daemon import run_replay  # noqa: PLC0415  heavy imports only here

    try:
        code = run_replay(config, data_dir, duration, summary_json)
    except ConfigError as exc:
        raise _fail(exc.problems) from None
    _exit_now(code)


def _sweep(
    config_path: Path,
    sets: list[str],
    *,
    data_dir: Path | None,
    duration: float | None,
    jobs: int,
    summary_json: Path | None,
) -> None:
    from mm_daemon.engine.sweep import parse_sets, run_sweep, sweep_table  # noqa: PLC0415

    try:
        runs = run_sweep(
            config_path,
            parse_sets(sets),
            data_dir=data_dir,
            duration_seconds=duration,
            jobs=jobs,
        )
    except ConfigError as exc:
        raise _fail(exc.problems) from None
    typer.echo(sweep_table(runs))
    if summary_json is not None:
        data = [{"set": run.values, "summary": run.summary} for run in runs]
        summary_json.write_text(json.dumps(data, indent=2) + "\n")


@app.command("record")
def record_command(
    config_path: ConfigOption,
    *,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder to write the capture files into (a data folder for replay).",
            file_okay=False,
        ),
    ],
    duration: DurationOption = None,
) -> None:
    """Record the configured Binance venues' market data for `mm-daemon replay`."""
    config = _load(config_path)
    from mm_daemon.engine.daemon import run_record  # noqa: PLC0415  heavy imports only here

    try:
        code = run_record(config, out, duration)
    except ConfigError as exc:
        raise _fail(exc.problems) from None
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Exit without tearing down the interpreter's heap (ccxt's takes ~0.7 s to free).

    Every order is cancelled and every log line written by now; nothing is left to clean up
    that the operating system does not release itself.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def sim(config_path: ConfigOption) -> None:
    """Run the exchange simulator standalone (prints one JSON line per venue, then ready)."""
    config = _load(config_path)
    from mm_daemon.engine.daemon import run_simulator  # noqa: PLC0415  heavy imports only for `sim`

    raise typer.Exit(run_simulator(config))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
