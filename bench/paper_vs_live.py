"""Paper fills against the simulator's own matching: the same strategy and seed, three ways.

(a) paper mode, queue fill model; (b) paper mode, touch fill model; (c) live: real orders resting
in the simulator's book, filled by its price-time matching engine. Each run starts a fresh
synthetic simulator with the same seed and runs the daemon in-process against it (URL endpoints,
the ccxt.pro path of a testnet), quoting BTC/USDT with hedging off so only the maker side's fills
are compared. Several seeds; each (seed, variant) runs in its own process.

    .venv/bin/python bench/paper_vs_live.py            # writes bench/results/paper_vs_live.json
    .venv/bin/python bench/paper_vs_live.py --seeds 7 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from study import MODEL_PARAMS, RESULTS, CellSpec, run_cells  # the script beside this one

VARIANTS = (("paper", "queue"), ("paper", "touch"), ("live", "queue"))
LABELS = {
    ("paper", "queue"): "paper/queue",
    ("paper", "touch"): "paper/touch",
    ("live", "queue"): "live/sim",
}


def _label(row: dict[str, Any]) -> str:
    spec = row["spec"]
    return LABELS[(spec["mode"], spec["fill_model"])]


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'seed':>4} {'variant':<12} {'fills':>6} {'vol BTC':>8} {'P&L':>8} {'spread':>8} "
        f"{'inv':>8} {'max|q|':>7} {'mk 1s':>6} {'mk 5s':>6} {'placed':>7} {'repl':>6} "
        f"{'rejects':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        spec = r["spec"]
        if "error" in r:
            lines.append(f"{spec['seed']:>4} {_label(r):<12} error: {r['error']}")
            continue
        p, mk = r["pnl_quote"], r["markouts_bps"]
        actions, rejects = r["order_actions"], r["order_rejects"]
        m1, m5 = mk["1s"]["mean"], mk["5s"]["mean"]
        lines.append(
            f"{spec['seed']:>4} {_label(r):<12} {r['quote_fills']:>6} "
            f"{r['quote_volume_base']:>8.4f} {p['total']:>8.2f} {p['spread_capture']:>8.2f} "
            f"{p['inventory']:>8.2f} {r['max_abs_net_exposure_base']:>7.3f} "
            f"{'n/a' if m1 is None else f'{m1:.2f}':>6} {'n/a' if m5 is None else f'{m5:.2f}':>6} "
            f"{actions.get('place', 0):>7.0f} {actions.get('replace', 0):>6.0f} "
            f"{sum(rejects.values()):>7.0f}"
        )
    return "\n".join(lines)


def medians(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per variant: median fills, volume and P&L over the seeds."""
    out: dict[str, dict[str, float]] = {}
    for label in LABELS.values():
        mine = [r for r in rows if "error" not in r and _label(r) == label]
        if not mine:
            continue
        out[label] = {
            "fills": statistics.median(r["quote_fills"] for r in mine),
            "volume_base": statistics.median(r["quote_volume_base"] for r in mine),
            "pnl_total": statistics.median(r["pnl_quote"]["total"] for r in mine),
            "spread_capture": statistics.median(r["pnl_quote"]["spread_capture"] for r in mine),
            "markout_1s_bps": statistics.median(
                r["markouts_bps"]["1s"]["mean"] or 0.0 for r in mine
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--regime", default="calm")
    parser.add_argument("--model", default="linear_skew")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "paper_vs_live.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    specs = [
        CellSpec(
            args.regime,
            args.model,
            hedging=False,
            seconds=args.seconds,
            mode=mode,
            fill_model=fill_model,
            seed=seed,
        )
        for seed in seeds
        for mode, fill_model in VARIANTS
    ]
    started = time.monotonic()
    rows = run_cells(specs, args.jobs)
    elapsed = time.monotonic() - started
    print(table(rows))
    summary = medians(rows)
    print("\nmedian over seeds")
    for label, values in summary.items():
        print(
            f"  {label:<12} fills {values['fills']:>6.0f}  volume {values['volume_base']:.4f} BTC"
            f"  P&L {values['pnl_total']:>7.2f}  spread capture {values['spread_capture']:>6.2f}"
            f"  markout 1s {values['markout_1s_bps']:>6.2f} bps"
        )
    live = summary.get("live/sim")
    if live and live["fills"]:
        for label in ("paper/queue", "paper/touch"):
            if label in summary:
                ratio = summary[label]["fills"] / live["fills"]
                print(f"  {label} fills / live fills: {ratio:.2f}x")
    print(f"\n{len(rows)} runs in {elapsed:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "regime": args.regime,
                "model": args.model,
                "model_params": MODEL_PARAMS[args.model],
                "seconds_per_run": args.seconds,
                "seeds": seeds,
                "medians": summary,
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
