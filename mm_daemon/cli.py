"""Command line: run | replay | record | report | sim | ctl | check-config | schema | --version.

Errors a user can cause (config, keys, symbols) end in one clear line per problem on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
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
    from mm_daemon.engine.entry import run_daemon  # noqa: PLC0415  heavy imports only for `run`

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
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the replay's report here (one HTML page); with --set, the "
            "sweep's comparison page.",
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
            report=report,
        )
        return
    config = _load(config_path)
    from mm_daemon.engine.entry import run_replay  # noqa: PLC0415  heavy imports only here

    with tempfile.TemporaryDirectory(prefix="mmd-replay-") as folder:
        journal = Path(folder) / "replay.journal" if report is not None else None
        try:
            code = run_replay(config, data_dir, duration, summary_json, journal_path=journal)
        except ConfigError as exc:
            raise _fail(exc.problems) from None
        if report is not None and journal is not None:
            _write_run_report(journal, report, mode="replay", title=f"replay: {config_path.name}")
    _exit_now(code)


def _write_run_report(
    journal: Path,
    out: Path | None,
    *,
    run_id: int | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    mode: str | None = None,
    title: str = "",
) -> None:
    """Build a run's report from its journal and write it (by default to
    `<instance>-run<N>.html` here); one line saying what was written."""
    from mm_daemon.engine.journal import JournalError  # noqa: PLC0415  only for reports
    from mm_daemon.report import render_run_report  # noqa: PLC0415
    from mm_daemon.report.journal import default_report_name, load_run_data  # noqa: PLC0415

    try:
        data = load_run_data(
            journal, run_id, start_ns=start_ns, end_ns=end_ns, mode=mode, title=title
        )
    except JournalError as exc:
        raise _fail([f"report: {exc}"]) from None
    if not data.markets:
        raise _fail([f"report: {data.title} has no market with data in {journal}"])
    path = out or Path(default_report_name(data, run_id))
    try:
        render_run_report(data, path)
    except OSError as exc:
        raise _fail([f"report: cannot write {path}: {exc.strerror}"]) from None
    fills = sum(1 for m in data.markets for f in m.fills if not f.is_hedge)
    typer.echo(
        f"wrote {path}: {data.title} ({data.mode}, {data.duration_seconds:,.1f} s, "
        f"{len(data.markets)} market(s), {fills:,} quoting fills)"
    )


def _sweep(
    config_path: Path,
    sets: list[str],
    *,
    data_dir: Path | None,
    duration: float | None,
    jobs: int,
    summary_json: Path | None,
    report: Path | None,
) -> None:
    from mm_daemon.engine.sweep import parse_sets, run_sweep, sweep_table  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="mmd-sweep-") as folder:
        try:
            runs = run_sweep(
                config_path,
                parse_sets(sets),
                data_dir=data_dir,
                duration_seconds=duration,
                jobs=jobs,
                journal_dir=Path(folder) if report is not None else None,
            )
        except ConfigError as exc:
            raise _fail(exc.problems) from None
        typer.echo(sweep_table(runs))
        if summary_json is not None:
            data = [{"set": run.values, "summary": run.summary} for run in runs]
            summary_json.write_text(json.dumps(data, indent=2) + "\n")
        if report is not None:
            from mm_daemon.engine.journal import load_run_series  # noqa: PLC0415  reports only
            from mm_daemon.report import SweepResult, render_sweep_report  # noqa: PLC0415
            from mm_daemon.report.journal import pnl_curve  # noqa: PLC0415

            results = [
                SweepResult(
                    run.values,
                    run.summary,
                    pnl_curve(load_run_series(run.journal)) if run.journal else (),
                )
                for run in runs
            ]
            try:
                render_sweep_report(results, report, title=f"sweep: {config_path.name}")
            except OSError as exc:
                raise _fail([f"--report: cannot write {report}: {exc.strerror}"]) from None
            typer.echo(f"wrote {report}: {len(results)} combinations")


@app.command("report")
def report_command(
    config_path: ConfigOption,
    *,
    run_id: Annotated[
        int | None,
        typer.Option(
            "--run", help="The run to report (default: the latest; --list shows them).", min=1
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Report a time range instead, from this time (ISO 8601, UTC unless an offset "
            "is given, e.g. 2026-01-01T10:00; or Unix seconds).",
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="End of the time range (as --from).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The HTML file to write (default: <instance>-run<N>.html in this folder).",
            dir_okay=False,
        ),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the journal's runs instead.")
    ] = False,
) -> None:
    """Write the report of a run (one self-contained HTML page) from the instance's journal."""
    config = _load(config_path)
    from mm_daemon.engine.journal import JournalError, list_runs  # noqa: PLC0415  reports only
    from mm_daemon.report.journal import parse_time, runs_table  # noqa: PLC0415

    journal = config.journal_path
    if list_only:
        try:
            typer.echo(runs_table(list_runs(journal)))
        except JournalError as exc:
            raise _fail([f"report: {exc}"]) from None
        return
    if run_id is not None and (start is not None or end is not None):
        raise _fail(["--run: give a run or a time range (--from/--to), not both"])
    times: dict[str, int | None] = {"--from": None, "--to": None}
    for option, text in (("--from", start), ("--to", end)):
        if text is not None:
            try:
                times[option] = parse_time(text)
            except ValueError as exc:
                raise _fail([f"{option}: {exc}"]) from None
    if run_id is None and start is None and end is None:
        try:
            runs = list_runs(journal)
        except JournalError as exc:
            raise _fail([f"report: {exc}"]) from None
        if not runs:
            raise _fail([f"report: journal {journal} holds no run yet"])
        run_id = runs[-1].run_id
    _write_run_report(journal, out, run_id=run_id, start_ns=times["--from"], end_ns=times["--to"])


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
    from mm_daemon.engine.entry import run_record  # noqa: PLC0415  heavy imports only here

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
    from mm_daemon.engine.entry import run_simulator  # noqa: PLC0415  heavy imports only for `sim`

    raise typer.Exit(run_simulator(config))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
