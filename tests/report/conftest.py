"""Fabricated but realistic study, benchmark and store outputs for the report tests (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _png(path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    t = np.linspace(0, 4, 50)
    ax.semilogy(t, np.exp(-t) + 0.01, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def rosenbrock_path(lr: float, n: int = 40) -> list[list[float]]:
    """Plain GD on Rosenbrock from (-1.5, 2): a real (short) trajectory to draw."""
    x, y = -1.5, 2.0
    out = [[x, y]]
    for _ in range(n):
        gx = -2 * (1 - x) - 400 * x * (y - x * x)
        gy = 200 * (y - x * x)
        x, y = x - lr * gx, y - lr * gy
        out.append([round(x, 5), round(y, 5)])
    return out


def make_study(root: Path, name: str, slide: str, holds: list[bool], trajectories: bool = False) -> Path:
    """A study folder as ``descentlab.studies.run`` writes it: a PNG figure and summary.json (+ trajectories)."""
    folder = root / name
    folder.mkdir(parents=True)
    _png(folder / f"{name}.png", name)
    numbers = {
        "final_loss": {"sgd": 0.0123, "adam": 1.5e-5},
        "ratio": 3.2,
        "steps": 200,
        "curve": list(range(20)),
    }
    if trajectories:
        xs, ys = np.linspace(-2, 2, 41), np.linspace(-1, 3, 41)
        xx, yy = np.meshgrid(xs, ys)
        zz = (1 - xx) ** 2 + 100 * (yy - xx**2) ** 2
        methods = {"gd": [3e-4, 1e-3], "heavy_ball": [1e-4, 3e-4], "adam": [1e-2, 3e-2]}
        traj = {
            "functions": {
                "rosenbrock": {
                    "function": "rosenbrock",
                    "options": {"noise": 0.0},
                    "start": [-1.5, 2.0],
                    "contours": {
                        "x": xs.round(4).tolist(),
                        "y": ys.round(4).tolist(),
                        "z": zz.round(4).tolist(),
                        "levels": np.logspace(-1, 3.5, 10).round(5).tolist(),
                    },
                    "labels": {"gd": "GD", "heavy_ball": "heavy ball", "adam": "Adam"},
                    "runs": {
                        m: {f"{lr:g}": rosenbrock_path(lr / 30) for lr in lrs} for m, lrs in methods.items()
                    },
                }
            }
        }
        (folder / "trajectories.json").write_text(json.dumps(traj))
        numbers["trajectories"] = "trajectories.json"
        from PIL import Image

        frames = [Image.new("RGB", (60, 40), (40 * k, 120, 200)) for k in range(4)]
        frames[0].save(folder / "race.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
        numbers["gif"] = "race.gif"
        numbers["rosenbrock"] = {
            m: {"final_loss": {f"{lr:g}": 0.5 / (i + 1) for i, lr in enumerate(lrs)}, "best_lr": lrs[-1]}
            for m, lrs in methods.items()
        }
    summary = {
        "study": name,
        "slide": slide,
        "quick": True,
        "config": {"steps": 200, "seeds": 1},
        "numbers": numbers,
        "claims": [
            {"claim": f"Claim {i} of {name} <with markup>", "holds": h, "evidence": f"measured {i}.5 vs {i}"}
            for i, h in enumerate(holds)
        ],
        "figures": [f"{name}.png"],
        "runs": [f"{name}-1", f"{name}-2"],
        "seconds": 1.25,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def fabricated(tmp_path: Path) -> dict[str, Path]:
    """Three study folders (one with trajectories), one failed study, a bench folder and a store with runs."""
    root = tmp_path / "studies"
    make_study(root, "methods-race", "seed 002, 'Много методов'", [True, True], trajectories=True)
    make_study(root, "sgd-noise-floor", "seed 001, 'SGD noise floor'", [True, False])
    make_study(root, "lookahead", "seed 003, 'Lookahead'", [True])
    failed = root / "broken-study"
    failed.mkdir()
    (failed / "failed.json").write_text(
        json.dumps({"study": "broken-study", "error": "RuntimeError: boom", "seconds": 0.5})
    )
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "leaderboard.md").write_text(
        "| rank | algorithm | score | workloads within 4x |\n|---:|---|---:|---:|\n| 1 | adamw | 0.900 | 2/2 |\n"
        "| 2 | sgd_nesterov | 0.400 | 1/2 |\n\nTime to target (seconds of training time; — = missed):\n"
    )
    _png(bench / "profiles.png", "profiles")
    (bench / "command.txt").write_text(
        "descentlab bench run -a adamw,sgd_nesterov -w digits,logreg --trials 2\n"
    )
    from descentlab.store import Store

    store_path = tmp_path / "s.db"
    with Store(store_path) as st:
        for i in range(3):
            st.create_run(
                f"run-{i}", {"task": "logreg", "optimizer": "sgd", "lr": 0.1 * (i + 1), "steps": 100}
            )
            st.set_status(
                f"run-{i}", "finished", final={"loss": 0.5 / (i + 1), "accuracy": 0.9, "train_time": 1.0}
            )
            st.log_metrics(
                f"run-{i}",
                [(k * 10, "loss", 0.5 / (i + 1) * 0.9**k) for k in range(11)]
                + [(k * 10, "accuracy", 0.5 + 0.04 * k) for k in range(11)],
            )
        st.create_run("other-0", {"task": "digits", "optimizer": "adam", "lr": 1e-3, "steps": 10})
    return {"studies": root, "bench": bench, "store": store_path, "tmp": tmp_path}


@pytest.fixture
def study_maker() -> Any:
    """``make_study(root, name, slide, holds, trajectories=False)`` for tests that fabricate their own folders."""
    return make_study


def verdict_claim(name: str, verdict: str, values: list[float], predicted: str = "> 0") -> dict[str, Any]:
    """A claim as the current summary.json schema writes it (interval and n hand-computed, not judged)."""
    n = len(values)
    mean = sum(values) / n
    half = 0.5 * (max(values) - min(values))
    return {
        "name": name,
        "claim": f"The {name} effect shows up",
        "source": f"seed 003, slide '{name}'",
        "quantity": f"{name} gap per seed",
        "predicted": predicted,
        "values": values,
        "n": n,
        "mean": mean,
        "interval": [mean - half, mean + half],
        "interval_method": "t, 95 %",
        "verdict": verdict,
        "holds": verdict == "holds",
        "evidence": f"{name}: mean gap {mean:.3g}",
    }


def make_verdict_study(
    root: Path,
    name: str,
    slide: str,
    verdicts: list[str],
    checks: list[bool] = (),  # type: ignore[assignment]
    anchors: list[dict[str, Any]] | None = None,
) -> Path:
    """A study folder in the three-valued schema: claims with values/interval/n/verdict, checks, anchors, seeds."""
    folder = root / name
    folder.mkdir(parents=True)
    _png(folder / f"{name}.png", name)
    values = {"holds": [0.4, 0.5, 0.6], "fails": [-0.6, -0.5, -0.4], "inconclusive": [-0.3, 0.1, 0.5]}
    summary = {
        "study": name,
        "slide": slide,
        "quick": True,
        "config": {"seeds": 3},
        "seeds": {"evaluation": [0, 1, 2], "tuning": [1000, 1001]},
        "numbers": {"gap": 0.5},
        "claims": [verdict_claim(f"{name}-c{i}", v, values[v]) for i, v in enumerate(verdicts)],
        "checks": [
            {
                "name": f"check-{i}",
                "check": f"identity {i} of {name}",
                "passed": p,
                "evidence": f"error {i}e-12",
            }
            for i, p in enumerate(checks)
        ],
        "anchors": anchors or [],
        "figures": [f"{name}.png"],
        "runs": [f"{name}-1"],
        "seconds": 2.5,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


ANCHORS = [
    {"quantity": "median test MSE at d = 15", "published": 6.7e6, "source": "Schaeffer et al. 2023, fig. 2",
     "mean": 5.9e6, "interval": [3.1e6, 8.7e6], "n": 5, "ratio": 0.88, "verdict": "reproduced", "note": ""},
    {"quantity": "MLP test error at h = 47 (%)", "published": 54.05, "source": "Greydanus 2020",
     "mean": 31.0, "interval": [29.5, 32.5], "n": 3, "ratio": 0.574, "verdict": "partly",
     "note": "quick variant: 4000 samples"},
    {"quantity": "Grokfast speed-up (x)", "published": 50.0, "source": "Lee et al. 2024",
     "mean": 1.6, "interval": [0.9, 2.3], "n": 3, "ratio": 0.032, "verdict": "not reproduced", "note": ""},
]  # fmt: skip


@pytest.fixture
def verdict_maker() -> Any:
    """``make_verdict_study(root, name, slide, verdicts, checks=(), anchors=None)`` (three-valued schema)."""
    return make_verdict_study


@pytest.fixture
def anchors() -> list[dict[str, Any]]:
    """Three hand-made anchors (reproduced, partly, not reproduced) in summary.json's ``anchors`` schema."""
    return [dict(a) for a in ANCHORS]
