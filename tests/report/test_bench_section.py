"""The bench section of the page: leaderboard with intervals and tie marks, profiles, the time-to-target plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from descentlab.bench import plan
from descentlab.bench.report import leaderboard_json, write_report
from descentlab.bench.runner import BenchmarkResult
from descentlab.report import html as rh
from descentlab.report import write_report as write_page


def _fake_result() -> BenchmarkResult:
    """Three algorithms on `tiny`, 3 studies x 2 trials, made-up times (no training): `slow` misses twice."""
    specs = plan(["adamw", "sgd_nesterov", "signsgd"], ["tiny"], trials=2, studies=3)
    times = {"adamw": [1.0, 1.4, 1.1, 1.3, 0.9, 1.2], "sgd_nesterov": [1.05, 1.5, 1.2, 1.1, 1.0, 1.6],
             "signsgd": [3.5, math.inf, 3.9, math.inf, 3.0, 3.2]}  # fmt: skip
    res = BenchmarkResult(specs)
    seen: dict[str, int] = {}
    for s in specs:
        a = s["algorithm"]["name"]
        i = seen[a] = seen.get(a, -1) + 1
        t = times[a][i]
        hist = {
            "gap": [(0, 1.0), (10, 0.005)],
            "train_time": [(0, 0.0), (10, t if math.isfinite(t) else 2.0)],
        }
        res.results[s["key"]] = {"key": s["key"], "spec": s, "status": "finished", "reached": math.isfinite(t),
                                 "time_to_target": t, "final": {"gap": 0.005}, "history": hist, "error": ""}  # fmt: skip
    return res


def test_bench_report_on_the_page(tmp_path: Path) -> None:
    res = _fake_result()
    iv = res.intervals()
    assert (
        iv.ranks["adamw"]["tie"] and "sgd_nesterov" in iv.ranks["adamw"]["tied_with"]
    )  # near-identical: tied
    assert iv.ranks["signsgd"]["rank"] == 3 and not iv.ranks["signsgd"]["tie"]
    folder = tmp_path / "bench"
    names = [p.name for p in write_report(res, folder)]
    assert names[:4] == ["leaderboard.md", "leaderboard.json", "profiles.png", "times.png"]
    md = (folder / "leaderboard.md").read_text(encoding="utf-8")
    # 3 studies: the paired analysis refuses to rank (no "=k" overlap ranks any more)
    assert (
        "| adamw | 1.000 | 1/1 | 1-3 |" in md and "| signsgd | 0.167 | 1/1 | 1-3 |" in md and "=1" not in md
    )
    assert "Too few studies for a 90 % interval" in md
    page = write_page(tmp_path / "out", bench=folder).read_text(encoding="utf-8")
    body = page.split('id="bench"', 1)[1]
    # profiles first, then the time-to-target plot, then the curves; each with its caption
    caps = [
        body.index(f"<figcaption>{c}")
        for c in ("Performance profiles:", "Time to target per workload", "curves_tiny")
    ]
    assert caps == sorted(caps)
    assert '<td>adamw</td>\n<td style="text-align:right">1.000</td>' in body and "Too few studies" in body


def test_scores_json_with_intervals(tmp_path: Path) -> None:
    data = leaderboard_json(_fake_result())
    md = rh.bench_json_markdown(json.loads(json.dumps(data)))
    rows = [line for line in md.splitlines() if line.startswith("| =") or line.startswith("| 3")]
    assert rows[0].startswith("| =1 | adamw | 1 | [") and rows[-1].startswith("| 3 | signsgd |")
    assert (
        "90 % interval" in md and "Intervals: bootstrap over studies." in md
    )  # trials not redrawn (issue 27)


def test_the_fewest_steps_track_gets_its_own_section(tmp_path: Path) -> None:
    """Two bench folders (AlgoPerf's leaderboard, the steps track) give two sections, each labelled by its unit."""
    res = _fake_result()
    write_report(res, tmp_path / "time")
    steps = BenchmarkResult(plan(["adamw", "sgd_nesterov"], ["tiny_steps"], trials=1, studies=2))
    for s in steps.specs:
        hist = {"gap": [(10, 0.5), (20, 0.005)], "train_time": [(10, 0.1), (20, 0.2)]}
        steps.results[s["key"]] = {"key": s["key"], "spec": s, "status": "finished", "reached": True,
                                   "time_to_target": 20.0, "final": {"gap": 0.005}, "history": hist, "error": ""}  # fmt: skip
    write_report(steps, tmp_path / "steps")
    assert json.loads((tmp_path / "steps" / "leaderboard.json").read_text())["unit"] == "steps"
    page = write_page(tmp_path / "out", bench=[tmp_path / "time", tmp_path / "steps"]).read_text(
        encoding="utf-8"
    )
    assert '<a href="#bench">benchmark</a>' in page and '<a href="#bench-2">fewest steps</a>' in page
    time_part, steps_part = page.split('id="bench"', 1)[1].split('id="bench-2"', 1)
    assert "<h2>Benchmark (AlgoPerf rules)</h2>" in time_part and "Steps to target" not in time_part
    assert "<h2>Fewest-steps track</h2>" in steps_part and "Steps to target (fewest-steps track" in steps_part
    assert "<figcaption>Steps to target per workload" in steps_part
    assert "tiny_steps (≤0.01 gap, 200 steps)" in steps_part
