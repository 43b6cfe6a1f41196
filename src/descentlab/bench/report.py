"""Benchmark output: leaderboard and time-to-target table in Markdown, performance-profile plot, convergence curves."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from descentlab.bench.runner import BenchmarkResult
from descentlab.bench.scoring import performance_profiles, ratios


def _fmt_time(t: float) -> str:
    return f"{t:.2f}" if math.isfinite(t) else "—"


def leaderboard_markdown(result: BenchmarkResult, tau_max: float = 4.0) -> str:
    """Markdown: the leaderboard (score, workloads within ``tau_max``) then time-to-target per workload (seconds,
    "—" for a miss) with the workload targets and budgets."""
    times = result.times()
    scores = result.scores(tau_max)
    r = ratios(times, tau_max)
    wls = result.workloads
    lines = ["| rank | algorithm | score | workloads within 4x |", "|---:|---|---:|---:|"]
    order = sorted(scores, key=lambda a: (-scores[a], a))
    for i, a in enumerate(order, 1):
        ok = sum(math.isfinite(x) for x in r[a].values())
        lines.append(f"| {i} | {a} | {scores[a]:.3f} | {ok}/{len(wls)} |")
    specs = {s["workload"]["name"]: s["workload"] for s in result.specs}
    head = [f"{w} ({'≥' if specs[w]['higher_is_better'] else '≤'}{specs[w]['target']:g} {specs[w]['metric']}, "
            f"{specs[w]['budget']:g}s)" for w in wls]  # fmt: skip
    lines += ["", "Time to target (seconds of training time; — = missed):", ""]
    lines.append("| algorithm | " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * len(wls))
    for a in order:
        lines.append(f"| {a} | " + " | ".join(_fmt_time(times[a][w]) for w in wls) + " |")
    return "\n".join(lines) + "\n"


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
    ax.set_xlabel("tau (time / fastest time)")
    ax.set_ylabel("fraction of workloads within tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(1, tau_max)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Performance profiles (score in parentheses)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_curves(result: BenchmarkResult, outdir: str | os.PathLike[str]) -> list[Path]:
    """Per workload: validation metric against training time for each algorithm's best trial, with the target."""
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
            clock = dict(res["history"].get("train_time", []))
            pts = [(clock[s], v) for s, v in res["history"].get(wspec["metric"], []) if s in clock]
            if pts:
                ax.plot(*zip(*pts), label=a, lw=1.2)
        ax.axhline(wspec["target"], color="k", ls="--", lw=0.8, label="target")
        ax.set_xlabel("training time (s)")
        ax.set_ylabel(f"validation {wspec['metric']}")
        if wspec["metric"] == "gap":
            ax.set_yscale("log")
        ax.set_title(f"{w}: best trial per algorithm")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out = Path(outdir) / f"curves_{w}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        paths.append(out)
    return paths


def write_report(result: BenchmarkResult, outdir: str | os.PathLike[str], tau_max: float = 4.0) -> list[Path]:
    """Write ``leaderboard.md``, ``profiles.png`` and ``curves_<workload>.png`` into ``outdir``; returns the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "leaderboard.md"
    md.write_text(leaderboard_markdown(result, tau_max))
    return [md, plot_profiles(result, out / "profiles.png", tau_max), *plot_curves(result, out)]
