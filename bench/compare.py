"""Run one benchmark in two checkouts in turn and print both side by side with their ratios.

The checkouts are this one and `--base` (an earlier commit, with its own `.venv`), e.g.:

    git worktree add /tmp/mmd-base <commit> && make -C /tmp/mmd-base .venv/.dev-installed
    .venv/bin/python bench/compare.py --base /tmp/mmd-base --rounds 3 bench_market_data.py

Each round runs the base and the current checkout one after the other (alternating which goes
first), each writing its usual JSON; the numbers of every round are kept and the table shows,
for each numeric figure both runs report, the median over rounds of each and the ratio current
/ base. Results go to bench/results/compare_<script>.json. On a shared machine only ratios
from one such run mean much; quote medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def results_file(checkout: Path, script: str) -> Path:
    """The JSON a benchmark writes (its name without the bench_ prefix)."""
    name = Path(script).stem.removeprefix("bench_")
    return checkout / "bench" / "results" / f"{name}.json"


def run_once(checkout: Path, script: str, args: list[str]) -> dict[str, Any]:
    target = results_file(checkout, script)
    backup = target.with_suffix(".json.tmp")
    if target.exists():
        shutil.copy(target, backup)
    try:
        subprocess.run(
            [str(checkout / ".venv" / "bin" / "python"), f"bench/{script}", *args],
            cwd=checkout,
            check=True,
        )
        data: dict[str, Any] = json.loads(target.read_text())
        return data
    finally:
        if backup.exists():
            shutil.move(backup, target)  # leave the checkout's committed figures as they were


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves by dotted path (lists of runs are left out: their medians are kept)."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="checkout of the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--match", default="", help="only figures whose path contains this")
    parser.add_argument("script", help="e.g. bench_market_data.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    opts = parser.parse_args()
    base_dir = opts.base.resolve()
    if not (base_dir / ".venv" / "bin" / "python").exists():
        sys.exit(f"{base_dir}: no .venv (run `make .venv/.dev-installed` there first)")
    runs: dict[str, list[dict[str, float]]] = {"base": [], "current": []}
    started = time.time()
    for i in range(opts.rounds):
        order = [("base", base_dir), ("current", REPO)]
        if i % 2:
            order.reverse()
        for name, checkout in order:
            print(f"== round {i + 1}/{opts.rounds}: {name} ({checkout})", flush=True)
            runs[name].append(flatten(run_once(checkout, opts.script, opts.args)))
    keys = sorted(
        set.intersection(*(set(r) for r in runs["base"] + runs["current"]))
        if runs["base"]
        else set()
    )
    keys = [k for k in keys if opts.match in k]
    rows = []
    for key in keys:
        base = statistics.median(r[key] for r in runs["base"])
        current = statistics.median(r[key] for r in runs["current"])
        ratio = current / base if base else float("nan")
        rows.append({"figure": key, "base": base, "current": current, "ratio": ratio})
    width = max((len(r["figure"]) for r in rows), default=10)
    print(f"\n{'figure':<{width}}  {'base':>14}  {'current':>14}  {'current/base':>12}")
    for r in rows:
        figures = f"{r['base']:>14.4g}  {r['current']:>14.4g}  {r['ratio']:>12.3f}"
        print(f"{r['figure']:<{width}}  {figures}")
    base_commit = subprocess.run(
        ["git", "-C", str(base_dir), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    out = (
        REPO / "bench" / "results" / f"compare_{Path(opts.script).stem.removeprefix('bench_')}.json"
    )
    out.write_text(
        json.dumps(
            {
                "script": opts.script,
                "args": opts.args,
                "rounds": opts.rounds,
                "base_commit": base_commit,
                "seconds": round(time.time() - started, 1),
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nwrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
