"""Paper fills against the simulator's own matching: the same strategy and seed, four ways.

(a) paper mode, exposure fill model (the default: queue position, and quotes the market has
moved through filled by the flow that picks off stale quotes); (b) paper mode, the queue model
as it was before the exposure model (queue position from public trades only, a fixed half of
unexplained size decreases ahead of us); (c) paper mode, touch model; (d) live: real orders
resting in the simulator's book, filled by its price-time matching engine. Each run starts a
fresh synthetic simulator with the regime and seed and runs the daemon in-process against it
(URL endpoints, the ccxt.pro path of a testnet), quoting BTC/USDT with hedging off so only the
maker side's fills are compared. Each (regime, seed, variant) runs in its own process.

    .venv/bin/python bench/paper_vs_live.py            # writes bench/results/paper_vs_live.json
    .venv/bin/python bench/paper_vs_live.py --regimes calm --seeds 7 --seconds 20
    .venv/bin/python bench/paper_vs_live.py --recorded # the recorded Binance data instead
    .venv/bin/python bench/paper_vs_live.py --markdown # the doc's tables from the results

`--recorded` replays the recorded Binance captures in virtual time with config/replay.yaml
(what `mm-daemon replay --config config/replay.yaml` runs), once per paper fill model, and
writes bench/results/paper_vs_live_recorded.json: fills, volume and markouts side by side.

The exposure model passes a regime when its median over the seeds is within 20 % of live's on
fills and on volume, its P&L within 30 % of live's or within live's range over the seeds
(whichever is wider), and its max |net exposure| within 30 % of live's.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import yaml
from study import (  # the script beside this one
    MODEL_PARAMS,
    OLD_QUEUE_MODEL,
    RESULTS,
    CellSpec,
    run_cells,
)

from mm_daemon.config import parse_config
from mm_daemon.engine.entry import replay_summary
from mm_daemon.log import configure_logging

ROOT = Path(__file__).resolve().parent.parent
# The paper venue gets the latencies live orders have to the simulator here (medians measured
# by `bench/calibrate_paper.py fit` on live runs: about 1 ms to rest or cancel an order, a few
# tenths of a millisecond for the acknowledgement), so that only the fill model differs.
SIM_LATENCIES = {
    "order_entry_latency_seconds": 0.001,
    "cancel_latency_seconds": 0.001,
    "ack_latency_seconds": 0.0003,
}
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # label: (mode, fill model, paper section overrides)
    "paper/exposure": ("paper", "exposure", SIM_LATENCIES),
    "paper/queue": ("paper", "queue", SIM_LATENCIES),  # the study's OLD_QUEUE_MODEL
    "paper/touch": ("paper", "touch", SIM_LATENCIES),
    "live/sim": ("live", "exposure", {}),
}
PAPER = ("paper/exposure", "paper/queue", "paper/touch")
TARGETS = {"fills": 0.2, "volume_base": 0.2, "pnl_total": 0.3, "max_abs_q_base": 0.3}


def _label(row: dict[str, Any]) -> str:
    spec = row["spec"]
    for label, (mode, fill_model, _) in VARIANTS.items():
        if spec["mode"] == mode and (mode == "live" or spec["fill_model"] == fill_model):
            return label
    raise ValueError(f"unknown variant {spec['mode']}/{spec['fill_model']}")


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def grid(head: Sequence[str], rows: Sequence[Sequence[str]], align: str, *, md: bool) -> str:
    """One table as markdown or as padded text; `align` has an l or r per column."""
    if md:
        rule = "|".join("---" if a == "l" else "---:" for a in align)
        body = [f"| {' | '.join(row)} |" for row in rows]
        return "\n".join([f"| {' | '.join(head)} |", f"|{rule}|", *body])
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=False)]

    def line(row: Sequence[str]) -> str:
        cells = zip(row, widths, align, strict=False)
        return " ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in cells).rstrip()

    title = line(head)
    return "\n".join([title, "-" * len(title), *(line(row) for row in rows)])


RUN_HEAD = (
    "regime", "seed", "variant", "fills", "volume BTC", "mean fill BTC", "P&L USDT",
    "spread capture", "inventory", "max abs(q) BTC", "markout 1 s bps", "5 s", "placed",
    "replaced", "rejected",
)  # fmt: skip


def table(rows: Sequence[dict[str, Any]], *, md: bool = False) -> str:
    """Every run, one row each."""
    lines = []
    for r in rows:
        spec = r["spec"]
        first = [spec["market"], str(spec["seed"]), _label(r)]
        if "error" in r:
            lines.append([*first, str(r["error"]), *[""] * (len(RUN_HEAD) - 4)])
            continue
        p, mk = r["pnl_quote"], r["markouts_bps"]
        actions, fills, volume = r["order_actions"], r["quote_fills"], r["quote_volume_base"]
        lines.append(
            [
                *first,
                str(fills),
                f"{volume:.3f}",
                f"{volume / fills if fills else 0.0:.4f}",
                f"{p['total']:+.2f}",
                f"{p['spread_capture']:+.2f}",
                f"{p['inventory']:+.2f}",
                f"{r['max_abs_net_exposure_base']:.3f}",
                _fmt(mk["1s"]["mean"], "+.2f"),
                _fmt(mk["5s"]["mean"], "+.2f"),
                f"{actions.get('place', 0):.0f}",
                f"{actions.get('replace', 0):.0f}",
                f"{sum(r['order_rejects'].values()):.0f}",
            ]
        )
    return grid(RUN_HEAD, lines, "lrl" + "r" * (len(RUN_HEAD) - 3), md=md)


METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
    "fills": lambda r: float(r["quote_fills"]),
    "volume_base": lambda r: float(r["quote_volume_base"]),
    "pnl_total": lambda r: float(r["pnl_quote"]["total"]),
    "spread_capture": lambda r: float(r["pnl_quote"]["spread_capture"]),
    "inventory": lambda r: float(r["pnl_quote"]["inventory"]),
    "max_abs_q_base": lambda r: float(r["max_abs_net_exposure_base"]),
    "markout_1s_bps": lambda r: float(r["markouts_bps"]["1s"]["mean"] or 0.0),
}


def medians(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """regime -> variant -> metric -> median over the seeds (and min, max as `<metric>_min`)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if "error" in r:
            continue
        out.setdefault(r["spec"]["market"], {}).setdefault(_label(r), {})
    for regime, variants in out.items():
        for label in variants:
            mine = [
                r
                for r in rows
                if "error" not in r and r["spec"]["market"] == regime and _label(r) == label
            ]
            figures: dict[str, float] = {"seeds": float(len(mine))}
            for name, get in METRICS.items():
                values = [get(r) for r in mine]
                figures[name] = statistics.median(values)
                figures[f"{name}_min"] = min(values)
                figures[f"{name}_max"] = max(values)
            variants[label] = figures
    return out


def verdict(paper: dict[str, float], live: dict[str, float]) -> dict[str, Any]:
    """Each target of the exposure model against live (see the module doc)."""
    checks: dict[str, Any] = {}
    for name, tolerance in TARGETS.items():
        ours, theirs = paper[name], live[name]
        ratio = ours / theirs if theirs else float("nan")
        # (a ratio of exactly 1 + tolerance passes, whatever the floats' last bit says)
        within = abs(ours - theirs) <= tolerance * abs(theirs) * (1 + 1e-9)
        if name == "pnl_total":
            within = within or live["pnl_total_min"] <= ours <= live["pnl_total_max"]
        checks[name] = {"paper": ours, "live": theirs, "ratio": ratio, "pass": within}
    checks["pass"] = all(c["pass"] for c in checks.values() if isinstance(c, dict))
    return checks


SUMMARY_HEAD = (
    "regime", "variant", "fills", "vs live", "volume BTC", "vs live", "P&L USDT", "vs live",
    "max abs(q) BTC", "vs live", "spread capture", "inventory", "markout 1 s",
)  # fmt: skip


def summary_table(summary: dict[str, dict[str, dict[str, float]]], *, md: bool = False) -> str:
    """The medians over the seeds, with their ratios to live's."""
    lines = []
    for regime, variants in summary.items():
        live = variants.get("live/sim")
        for label in VARIANTS:
            v = variants.get(label)
            if v is None:
                continue

            def ratio(
                name: str, v: dict[str, float] = v, live: dict[str, float] | None = live
            ) -> str:
                if live is None or not live[name]:
                    return "n/a"
                return "1" if v is live else f"{v[name] / live[name]:.2f}x"

            lines.append(
                [
                    regime,
                    label,
                    f"{v['fills']:.0f}",
                    ratio("fills"),
                    f"{v['volume_base']:.3f}",
                    ratio("volume_base"),
                    f"{v['pnl_total']:+.2f}",
                    ratio("pnl_total"),
                    f"{v['max_abs_q_base']:.3f}",
                    ratio("max_abs_q_base"),
                    f"{v['spread_capture']:+.2f}",
                    f"{v['inventory']:+.2f}",
                    f"{v['markout_1s_bps']:+.2f}",
                ]
            )
    return grid(SUMMARY_HEAD, lines, "ll" + "r" * (len(SUMMARY_HEAD) - 2), md=md)


# -- the recorded Binance data -----------------------------------------------------------------

RECORDED_MODELS: dict[str, dict[str, Any]] = {
    "paper/exposure": {"fill_model": "exposure"},
    "paper/queue": OLD_QUEUE_MODEL,
    "paper/touch": {"fill_model": "touch"},
}


def recorded_run(label: str) -> dict[str, Any]:
    """`mm-daemon replay --config config/replay.yaml` with one paper fill model."""
    configure_logging("error", "json")
    data = yaml.safe_load((ROOT / "config" / "replay.yaml").read_text())
    data["paper"] = {**data.get("paper", {}), **RECORDED_MODELS[label]}
    data["logging"] = {"level": "error", "format": "json"}
    data["metrics"] = {"enabled": False}
    # A journal of its own: a replay in paper mode would otherwise go on from the last one's.
    data["state"] = {"dir": tempfile.mkdtemp(prefix="mmd-paper-vs-live-state-")}
    config = parse_config(data, environ={})
    started = time.monotonic()
    with redirect_stdout(io.StringIO()):
        summary = replay_summary(config)
    fills = summary.quoting_fills
    return {
        "variant": label,
        "wall_seconds": round(time.monotonic() - started, 1),
        "duration_seconds": summary.duration_seconds,
        "quote_fills": fills.buys + fills.sells,
        "quote_volume_base": fills.volume_base,
        "pnl_quote": summary.pnl_quote,
        "max_abs_net_exposure_base": summary.max_abs_net_exposure_base,
        "markouts_bps": {h: {"mean": m, "count": n} for h, (m, n) in summary.markouts.items()},
        "hedge_fills": summary.hedge_fills.buys + summary.hedge_fills.sells,
    }


RECORDED_HEAD = (
    "variant", "fills", "volume BTC", "mean fill BTC", "P&L USDT", "spread capture", "inventory",
    "max abs(q) BTC", "markout 1 s", "5 s", "30 s", "60 s",
)  # fmt: skip


def recorded_table(rows: Sequence[dict[str, Any]], *, md: bool = False) -> str:
    lines = []
    for r in rows:
        p, mk, n = r["pnl_quote"], r["markouts_bps"], r["quote_fills"]
        lines.append(
            [
                r["variant"],
                str(n),
                f"{r['quote_volume_base']:.3f}",
                f"{r['quote_volume_base'] / n if n else 0.0:.4f}",
                f"{p['total']:+.2f}",
                f"{p['spread_capture']:+.2f}",
                f"{p['inventory']:+.2f}",
                f"{r['max_abs_net_exposure_base']:.3f}",
                *(_fmt(mk[h]["mean"], "+.2f") for h in ("1s", "5s", "30s", "60s")),
            ]
        )
    return grid(RECORDED_HEAD, lines, "l" + "r" * (len(RECORDED_HEAD) - 1), md=md)


def main_recorded(out: Path) -> None:
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        rows = pool.map(recorded_run, list(RECORDED_MODELS), chunksize=1)
    print(recorded_table(rows))
    elapsed = time.monotonic() - started
    print(f"\n{len(rows)} replays in {elapsed:.0f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "config": "config/replay.yaml",
                "elapsed_seconds": round(elapsed, 1),
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )


# -- markdown for docs/paper-vs-live.md -----------------------------------------------------------


def markdown(results: dict[str, Any], recorded: dict[str, Any] | None) -> str:
    """The doc's tables from the two result files: every run, the medians with their ratios
    to live, the targets, and the recorded data."""
    rows = [r for r in results["runs"] if "error" not in r]
    order = {label: i for i, label in enumerate(VARIANTS)}
    regimes = {regime: i for i, regime in enumerate(results["regimes"])}
    rows.sort(key=lambda r: (regimes[r["spec"]["market"]], r["spec"]["seed"], order[_label(r)]))
    targets = []
    for regime, checks in results["verdicts"].items():
        live = results["medians"][regime]["live/sim"]
        cells = [
            f"{checks[name]['ratio']:.2f}x {'met' if checks[name]['pass'] else '**missed**'}"
            for name in TARGETS
        ]
        targets.append(
            [regime, *cells, f"{live['pnl_total_min']:+.2f} to {live['pnl_total_max']:+.2f}"]
        )
    target_head = (
        "regime", "fills (±20 %)", "volume (±20 %)", "P&L (±30 % or live's range)",
        "max abs(q) (±30 %)", "live P&L range",
    )  # fmt: skip
    out = [
        table(rows, md=True),
        summary_table(results["medians"], md=True),
        grid(target_head, targets, "l" * len(target_head), md=True),
    ]
    if recorded is not None:
        out.append(recorded_table(recorded["runs"], md=True))
    return "\n\n".join(out)


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", default="calm,volatile,trending")
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", default="linear_skew")
    # 60 s is too short for a 20 % target: with the same code, live trending seed 8 filled 24
    # and 33 times in two 60 s runs, seed 7 34, 37 and 43 times (docs/paper-vs-live.md).
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    parser.add_argument("--recorded", action="store_true", help="the recorded Binance data")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--markdown", action="store_true", help="print the doc's tables from the result files"
    )
    args = parser.parse_args()
    if args.markdown:
        recorded = RESULTS / "paper_vs_live_recorded.json"
        print(
            markdown(
                json.loads((args.out or RESULTS / "paper_vs_live.json").read_text()),
                json.loads(recorded.read_text()) if recorded.exists() else None,
            )
        )
        return
    if args.recorded:
        main_recorded(args.out or RESULTS / "paper_vs_live_recorded.json")
        return
    seeds = [int(s) for s in args.seeds.split(",") if s]
    labels = [v for v in args.variants.split(",") if v]
    specs = [
        CellSpec(
            regime,
            args.model,
            hedging=False,
            seconds=args.seconds,
            mode=VARIANTS[label][0],
            fill_model=VARIANTS[label][1],
            seed=seed,
            extra={"paper": VARIANTS[label][2]} if VARIANTS[label][2] else {},
        )
        for regime in args.regimes.split(",")
        for seed in seeds
        for label in labels
    ]
    started = time.monotonic()
    rows = run_cells(specs, args.jobs)
    elapsed = time.monotonic() - started
    print(table(rows))
    summary = medians(rows)
    print("\nmedians over the seeds, and against live")
    print(summary_table(summary))
    verdicts: dict[str, Any] = {}
    for regime, variants in summary.items():
        if "paper/exposure" in variants and "live/sim" in variants:
            verdicts[regime] = verdict(variants["paper/exposure"], variants["live/sim"])
            checks = verdicts[regime]
            marks = ", ".join(
                f"{name} {c['ratio']:.2f}x {'ok' if c['pass'] else 'MISSED'}"
                for name, c in checks.items()
                if isinstance(c, dict)
            )
            print(f"  {regime}: paper/exposure against live: {marks}")
    print(f"\n{len(rows)} runs in {elapsed:.0f} s")
    out = args.out or RESULTS / "paper_vs_live.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "regimes": args.regimes.split(","),
                "model": args.model,
                "model_params": MODEL_PARAMS[args.model],
                "seconds_per_run": args.seconds,
                "seeds": seeds,
                "medians": summary,
                "verdicts": verdicts,
                "elapsed_seconds": round(elapsed, 1),
                "runs": rows,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
