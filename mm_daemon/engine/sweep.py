"""Parameter sweeps over recorded markets: `mm-daemon replay --set PATH=V1,V2 ...`.

Each `--set` names a config field by its dotted path and the values to try; the sweep replays the
recorded captures once per combination (the product of every `--set`, in the order given), each
in a process of its own, `jobs` at a time. A combination is the config file with those fields
overridden exactly as `MMD_<PATH>` environment variables override it, so a sweep's values parse
and validate like any override, and every combination is validated before the first replay.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mm_daemon.config import ENV_PREFIX, Config, ConfigError, load_config

__all__ = ["SweepAxis", "SweepRun", "parse_sets", "run_sweep", "sweep_table"]


@dataclass(frozen=True, slots=True)
class SweepAxis:
    """One `--set`: a dotted config path and the values to try, as written."""

    path: str
    values: tuple[str, ...]

    @property
    def env_key(self) -> str:
        return ENV_PREFIX + "__".join(part.upper() for part in self.path.split("."))


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One combination: its values by path, the run summary (`summary_to_dict`), and the
    journal its replay wrote (None unless the sweep was given a journal folder)."""

    values: dict[str, str]
    summary: dict[str, Any]
    journal: Path | None = None


def parse_sets(items: list[str]) -> list[SweepAxis]:
    """`PATH=V1,V2,...` items into axes; a ConfigError with one line per malformed item."""
    axes: list[SweepAxis] = []
    problems: list[str] = []
    seen: set[str] = set()
    for item in items:
        path, sep, raw = item.partition("=")
        path = path.strip()
        values = tuple(v.strip() for v in raw.split(",")) if sep else ()
        section = path.split(".", 1)[0]
        if not sep or not path or not all(values):
            problems.append(f"--set {item}: expected PATH=VALUE[,VALUE...]")
        elif section not in Config.model_fields or path.endswith("."):
            problems.append(f"--set {item}: {section!r} is not a section of the config")
        elif section == "venues" and path.rsplit(".", 1)[-1] in {"api_key", "api_secret"}:
            problems.append(f"--set {item}: keys come from the environment, not a sweep")
        elif path in seen:
            problems.append(f"--set {item}: {path} is swept twice")
        else:
            seen.add(path)
            axes.append(SweepAxis(path, values))
    if problems:
        raise ConfigError(problems)
    return axes


def combinations(axes: list[SweepAxis]) -> list[dict[str, str]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    paths = [axis.path for axis in axes]
    return [
        dict(zip(paths, values, strict=True))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def _environ(axes: list[SweepAxis], values: dict[str, str]) -> dict[str, str]:
    overrides = {axis.env_key: values[axis.path] for axis in axes}
    return {**os.environ, **overrides}


def _label(values: dict[str, str]) -> str:
    return " ".join(f"{path}={value}" for path, value in values.items())


def _replay_one(
    config_path: Path,
    environ: dict[str, str],
    data_dir: Path | None,
    duration_seconds: float | None,
    journal_path: Path | None,
) -> dict[str, Any]:
    """One combination in a worker process: the replay, quiet, and its summary."""
    from mm_daemon.core.summary import summary_to_dict  # noqa: PLC0415  worker-side imports
    from mm_daemon.engine.entry import replay_summary  # noqa: PLC0415

    config = load_config(config_path, environ={**environ, "MMD_LOGGING__LEVEL": "error"})
    with contextlib.redirect_stdout(io.StringIO()):  # the table is the sweep's output
        summary = replay_summary(config, data_dir, duration_seconds, journal_path)
    return summary_to_dict(summary)


def run_sweep(
    config_path: Path,
    axes: list[SweepAxis],
    *,
    data_dir: Path | None = None,
    duration_seconds: float | None = None,
    jobs: int = 1,
    journal_dir: Path | None = None,
) -> list[SweepRun]:
    """Replay every combination; results in combination order. With `journal_dir`, each
    combination's replay journals into a file of its own there (`SweepRun.journal`)."""
    combos = combinations(axes)
    problems: list[str] = []
    for values in combos:  # every combination valid before the first replay starts
        try:
            load_config(config_path, environ=_environ(axes, values))
        except ConfigError as exc:
            problems.extend(f"{p} (with {_label(values)})" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    journals = [
        None if journal_dir is None else journal_dir / f"combination-{index}.journal"
        for index in range(len(combos))
    ]
    args = [
        (config_path, _environ(axes, v), data_dir, duration_seconds, journal)
        for v, journal in zip(combos, journals, strict=True)
    ]
    if jobs <= 1 or len(combos) == 1:
        summaries = [_replay_one(*a) for a in args]
    else:
        # Spawned workers: a fresh interpreter each, none of the parent's loop or threads.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(combos)), mp_context=context) as pool:
            summaries = list(pool.map(_replay_one, *zip(*args, strict=True)))
    return [
        SweepRun(values, summary, journal)
        for values, summary, journal in zip(combos, summaries, journals, strict=True)
    ]


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def sweep_table(runs: list[SweepRun]) -> str:
    """One line per combination: its values, then P&L by component, fills, exposure, markouts."""
    if not runs:
        return ""
    paths = list(runs[0].values)
    widths = [max(len(p), *(len(r.values[p]) for r in runs)) for p in paths]
    columns = (
        ("P&L", 10),
        ("spread", 9),
        ("inventory", 10),
        ("hedge", 9),
        ("fees", 8),
        ("basis", 8),
        ("fills", 6),
        ("volume", 9),
        ("max|q|", 8),
        ("mk 1s", 7),
        ("mk 5s", 7),
    )
    head = " ".join(p.ljust(w) for p, w in zip(paths, widths, strict=True))
    head += " " + " ".join(name.rjust(w) for name, w in columns)
    lines = [head, "-" * len(head)]
    for run in runs:
        s = run.summary
        pnl = s["pnl_quote"]
        quoting = s["fills"]["quoting"]
        markouts = s["markouts_bps"]
        cells = (
            _number(pnl["total"], 2),
            _number(pnl["spread_capture"], 2),
            _number(pnl["inventory"], 2),
            _number(pnl["hedge_cost"], 2),
            _number(pnl["fees"], 2),
            _number(pnl["basis"], 2),
            str(quoting["count"]),
            _number(quoting["volume_base"], 4),
            _number(s["max_abs_net_exposure_base"], 4),
            _number(markouts["1s"]["mean"], 2),
            _number(markouts["5s"]["mean"], 2),
        )
        line = " ".join(run.values[p].ljust(w) for p, w in zip(paths, widths, strict=True))
        line += " " + " ".join(c.rjust(w) for c, (_, w) in zip(cells, columns, strict=True))
        lines.append(line)
    return "\n".join(lines)
