"""What a board's trials cost: mean training seconds (``train_time``) of a trial per entrant and workload, read from
a store that holds the board (nothing is run), with the light / heavy split used to size the six-workload board.

    .venv/bin/python benchmarks/trial_costs.py -a nadamw,adamw -w all --studies 12 --store runs/lb6/bench.db

Entrants that only evaluate another's trainings (NAdamW's averaging entrants) show that training's cost.
``--scale`` is the budget factor the board ran with (default: the saved calibration, as ``descentlab bench`` reads it).
"""

from __future__ import annotations

import argparse
import math
import statistics

LIGHT = ("logreg", "digits", "mnist1d_mlp")


def main() -> None:
    """Print the per-trial cost table (Markdown) of the board in ``--store``."""
    from descentlab.bench import available_algorithms, available_workloads, collect, hardware_scales, plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-a", "--algorithms", default="all")
    ap.add_argument("-w", "--workloads", default="all")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--store", required=True)
    args = ap.parse_args()
    algs = available_algorithms("external") if args.algorithms == "all" else args.algorithms.split(",")
    wls = available_workloads() if args.workloads == "all" else args.workloads.split(",")
    scale = hardware_scales("runs/bench_hardware.json") if args.scale is None else args.scale
    result = collect(plan(algs, wls, "external", args.trials, args.studies, args.seed, scale), args.store)
    if result.missing():
        raise SystemExit(
            f"{len(result.missing())} trials of this board are not in {args.store} (wrong --scale?)"
        )
    cost: dict[tuple[str, str], list[float]] = {}
    for r in result.results.values():
        fin = r.get("final", {})
        if r["status"] == "failed" or fin.get("not_applicable"):
            continue
        key = (r["spec"]["algorithm"]["name"], r["spec"]["workload"]["name"])
        cost.setdefault(key, []).append(float(fin.get("train_time", 0) or 0))
    print("| entrant | " + " | ".join(wls) + " | light | heavy | heavy / light |")
    print("|---|" + "---:|" * (len(wls) + 3))
    for a in algs:
        per = {w: statistics.fmean(cost[(a, w)]) if (a, w) in cost else math.nan for w in wls}
        light = sum(v for w, v in per.items() if w in LIGHT and math.isfinite(v))
        heavy = sum(v for w, v in per.items() if w not in LIGHT and math.isfinite(v))
        cells = " | ".join("n/a" if math.isnan(v) else f"{v:.2f}" for v in per.values())
        print(f"| {a} | {cells} | {light:.2f} | {heavy:.2f} | {heavy / light:.2f} |")


if __name__ == "__main__":
    main()
