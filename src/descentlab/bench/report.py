"""Benchmark output: the leaderboard with intervals and ties (Markdown + JSON), performance profiles, the
time-to-target strip/box plot per workload and algorithm, and convergence curves."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from descentlab.bench.runner import BenchmarkResult
from descentlab.bench.scoring import performance_profiles, ratios
from descentlab.bench.tuning import study_time
from descentlab.bench.uncertainty import ScoreIntervals
from descentlab.bench.workloads import Workload
from descentlab.safe_write import save_figure, write_text


def _fmt_time(t: float, steps: bool = False) -> str:
    return "—" if not math.isfinite(t) else f"{t:.0f}" if steps else f"{t:.2f}"


def _fmt_interval(lo: float, hi: float, steps: bool = False) -> str:
    return f"[{_fmt_time(lo, steps)}, {_fmt_time(hi, steps) if math.isfinite(hi) else '∞'}]"


def protocol_line(result: BenchmarkResult) -> str:
    """One sentence on what was run: entrants x workloads x studies x trials, tuning, what a time is."""
    studies = {s["study"] for s in result.specs}
    trials = {s["trial"] for s in result.specs}
    what = ("gradient evaluations to target" if result.unit == "steps" else
            "modeled seconds to target (steps to target x the cell's pooled step cost)")  # fmt: skip
    return (f"Protocol: {len(result.algorithms)} entrants x {len(result.workloads)} workloads x {len(studies)} "
            f"studies x {len(trials)} trials ({result.tuning} tuning); a trial's cost is {what}.")  # fmt: skip


def leaderboard_markdown(
    result: BenchmarkResult,
    tau_max: float = 4.0,
    intervals: ScoreIntervals | None = None,
    board: dict[str, Any] | None = None,
) -> str:
    """Markdown: the protocol; AlgoPerf's score as the descriptive headline (no interval, no "=k": ranks are the
    paired analysis' rank intervals); the paired analysis with its self-checks and time-model audit
    (``bench.board.board_report``, computed here unless given as ``board``); then the time to target per workload
    (AlgoPerf's median over studies of the best trial, "—" for a miss, "n/a" where the entrant does not apply).
    ``intervals`` is accepted for compatibility and unused."""
    from descentlab.bench.board import board_report
    from descentlab.bench.scoring import score

    rep = board if board is not None else board_report(result)
    bd = rep["board"]
    data = rep["data"]
    steps = result.unit == "steps"
    modeled = {a: {w: study_time(st) for w, st in row.items()} for a, row in data["modeled"].items()}
    scores = score(modeled, tau_max)
    r = ratios(modeled, tau_max)
    wls = result.workloads
    na = set(data["not_applicable"])
    lines = [protocol_line(result), "", f"### AlgoPerf score (descriptive headline, tau_max = {tau_max:g})", "",
             "| entrant | AlgoPerf score | workloads within " + f"{tau_max:g}x | rank interval (paired analysis) |",
             "|---|---:|---:|---|"]  # fmt: skip
    for a in sorted(scores, key=lambda x: (-scores[x], x)):
        ok = sum(math.isfinite(x) for x in r[a].values())
        ri = bd.rank_interval.get(a)
        rk = "n/a" if ri is None else (f"{ri[0]}" if ri[0] == ri[1] else f"{ri[0]}-{ri[1]}")
        lines.append(f"| {a} | {scores[a]:.3f} | {ok}/{len(wls)} | {rk} |")
    lines += ["", "The score is AlgoPerf's area under the performance profile of the per-workload times below: a "
              "description of this run. What the data can conclude is the paired analysis.", "", rep["markdown"]]  # fmt: skip
    specs = {s["workload"]["name"]: s["workload"] for s in result.specs}
    head = [f"{w} ({'≥' if specs[w]['higher_is_better'] else '≤'}{specs[w]['target']:g} {specs[w]['metric']}, "
            + (f"{specs[w]['step_hint']} steps)" if steps else f"{specs[w]['budget']:.3g} s)") for w in wls]  # fmt: skip
    what = (
        "Steps to target (fewest-steps track: gradient evaluations at the first evaluation meeting the target"
        if steps
        else "Time to target (modeled seconds of training time"
    )
    lines += ["", f"{what}, median over studies of the best trial; — = missed; n/a = nothing to act on):", ""]
    lines.append("| entrant | " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * len(wls))
    for a in sorted(scores, key=lambda x: (-scores[x], x)):
        cells = ["n/a" if (a, w) in na else _fmt_time(modeled[a][w], steps) for w in wls]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    missing = result.missing()
    if missing:
        lines += ["", f"{len(missing)} trials have no result yet (counted as misses)."]
    return "\n".join(lines) + "\n"


def leaderboard_json(result: BenchmarkResult, intervals: ScoreIntervals | None = None) -> dict[str, Any]:
    """The leaderboard as JSON: ``ScoreIntervals.to_dict()`` plus the per-study times, the workloads' targets and
    budgets, and the number of missing trials (the ``bench score --json`` format, extended)."""
    iv = intervals if intervals is not None else result.intervals()
    tt = result.trial_times()
    data = iv.to_dict()
    data["trial_times"] = {a: {w: [[t if math.isfinite(t) else None for t in s] for s in st] for w, st in row.items()}
                           for a, row in tt.items()}  # fmt: skip
    data["workloads"] = {s["workload"]["name"]: {k: s["workload"][k] for k in ("target", "metric", "budget",
                         "step_hint", "higher_is_better")} for s in result.specs}  # fmt: skip
    data["tuning"] = result.tuning
    data["unit"] = result.unit
    data["missing"] = len(result.missing())
    return data


def plot_profiles(result: BenchmarkResult, path: str | os.PathLike[str], tau_max: float = 4.0) -> Path:
    """Step plot of every algorithm's performance profile rho(tau) on [1, tau_max] (AlgoPerf fig. style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = performance_profiles(result.times(), tau_max)
    scores = result.scores(tau_max)
    fig, ax = plt.subplots(figsize=(6, 4))
    for a in sorted(prof, key=lambda a: -scores[a]):
        taus, rho = prof[a]
        ax.step(taus, rho, where="post", label=f"{a} ({scores[a]:.2f})")
    ax.set_xlabel("tau (steps / fewest steps)" if result.unit == "steps" else "tau (time / fastest time)")
    ax.set_ylabel("fraction of workloads within tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(1, tau_max)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Performance profiles (score in parentheses)")
    fig.tight_layout()
    out = Path(path)
    try:  # atomic; a symbolic link at the path is refused, never written through
        save_figure(fig, out, dpi=120)
    finally:
        plt.close(fig)
    return out


def plot_times(result: BenchmarkResult, path: str | os.PathLike[str]) -> Path:
    """Per workload (one panel each): time to target of every trial (small dots), every study's best (large dots,
    with a box over them) per algorithm, on a log axis; misses drawn as crosses above the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker

    tt = result.trial_times()
    algs, wls = result.algorithms, result.workloads
    specs = {s["workload"]["name"]: s["workload"] for s in result.specs}
    cols = min(3, len(wls))
    rows = math.ceil(len(wls) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(5.5, 4.2 * cols), 1.2 + 0.28 * len(algs) * rows + 1.2 * rows),
                             squeeze=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for k, w in enumerate(wls):
        ax = axes[k // cols][k % cols]
        steps = result.unit == "steps"
        budget = float(specs[w]["step_hint"] if steps else specs[w]["budget"])
        miss_at = budget * 1.6
        for i, a in enumerate(algs):
            studies = tt[a][w]
            trials = [t for s in studies for t in s]
            bests = [min(s) for s in studies]
            y = i + rng.uniform(-0.18, 0.18, len(trials))
            ax.scatter([t if math.isfinite(t) else miss_at for t in trials], y, s=6, alpha=0.35, color="0.4",
                       marker="o", linewidths=0)  # fmt: skip
            fin = [b for b in bests if math.isfinite(b)]
            if len(fin) >= 2:
                ax.boxplot([fin], positions=[i], orientation="horizontal", widths=0.5, manage_ticks=False, showfliers=False,
                           medianprops={"color": "C1"})  # fmt: skip
            ax.scatter([b if math.isfinite(b) else miss_at for b in bests], [i] * len(bests), s=28,
                       c=["C0" if math.isfinite(b) else "C3" for b in bests],
                       marker="o", zorder=3)  # fmt: skip
            if not all(math.isfinite(b) for b in bests):
                ax.scatter([miss_at] * sum(not math.isfinite(b) for b in bests), [i] * sum(not math.isfinite(b) for b in bests),
                           marker="x", color="C3", s=36, zorder=4)  # fmt: skip
        ax.axvline(budget, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(range(len(algs)))
        ax.set_yticklabels(algs if k % cols == 0 else [""] * len(algs), fontsize=7)
        ax.set_ylim(len(algs) - 0.5, -0.5)
        ax.set_title(f"{w} (budget {budget:.3g} {result.unit})", fontsize=9)
        ax.set_xlabel("steps to target" if steps else "time to target (s)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for k in range(len(wls), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{'Steps' if result.unit == 'steps' else 'Time'} to target. Small dots: trials; large: each study's best (box over studies);\n"
                 "red x: a study that missed (drawn beyond the dashed budget line)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    out = Path(path)
    try:  # atomic; a symbolic link at the path is refused, never written through
        save_figure(fig, out, dpi=110)
    finally:
        plt.close(fig)
    return out


def plot_curves(result: BenchmarkResult, outdir: str | os.PathLike[str]) -> list[Path]:
    """Per workload: validation metric against training time (steps on the steps track) for each algorithm's best
    trial, with the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = result.best_trials()
    specs = {s["workload"]["name"]: s["workload"] for s in result.specs}
    paths = []
    for w in result.workloads:
        wspec = specs[w]
        fig, ax = plt.subplots(figsize=(6, 4))
        for a in result.algorithms:
            res: dict[str, Any] | None = best.get((a, w))
            if res is None:
                continue
            clock = Workload(**wspec).clock(res["history"])
            pts = [(clock[s], v) for s, v in res["history"].get(wspec["metric"], []) if s in clock]
            if pts:
                ax.plot(*zip(*pts), label=a, lw=1.2)
        ax.axhline(wspec["target"], color="k", ls="--", lw=0.8, label="target")
        ax.set_xlabel("step" if result.unit == "steps" else "training time (s)")
        ax.set_ylabel(f"validation {wspec['metric']}")
        if wspec["metric"] == "gap":
            ax.set_yscale("log")
        ax.set_title(f"{w}: best trial per algorithm")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out = Path(outdir) / f"curves_{w}.png"
        try:
            save_figure(fig, out, dpi=110)
        finally:
            plt.close(fig)
        paths.append(out)
    return paths


def _json_safe(x: Any) -> Any:
    """``x`` with non-finite floats as None and numpy scalars / tuples / float keys as plain JSON."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def write_report(
    result: BenchmarkResult, outdir: str | os.PathLike[str], tau_max: float = 4.0, ci: float = 0.9
) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.json``, ``profiles.png``, ``times.png`` and ``curves_<workload>.png``
    into ``outdir``; returns the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    from descentlab.bench.board import board_report

    iv = result.intervals(ci=ci, tau_max=tau_max)
    rep = board_report(result, ci=ci)
    md = out / "leaderboard.md"
    write_text(md, leaderboard_markdown(result, tau_max, iv, board=rep))
    js = out / "leaderboard.json"
    data = leaderboard_json(result, iv)
    data["board"] = _json_safe(
        {
            **rep["board"].to_dict(),
            "checks": rep["checks"],
            "audit": rep["data"]["audit"],
            "clock_cuts": rep["cuts"],
        }
    )
    write_text(js, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return [md, js, plot_profiles(result, out / "profiles.png", tau_max), plot_times(result, out / "times.png"),
            *plot_curves(result, out)]  # fmt: skip
