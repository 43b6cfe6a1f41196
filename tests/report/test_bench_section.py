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
        hist = {"gap": [(0, 1.0), (10, 0.005)], "train_time": [(0, 0.0), (10, t if math.isfinite(t) else 2.0)]}
        res.results[s["key"]] = {"key": s["key"], "spec": s, "status": "finished", "reached": math.isfinite(t),
                                 "time_to_target": t, "final": {"gap": 0.005}, "history": hist, "error": ""}  # fmt: skip
    return res


def test_bench_report_on_the_page(tmp_path: Path) -> None:
    res = _fake_result()
    iv = res.intervals()
    assert iv.ranks["adamw"]["tie"] and "sgd_nesterov" in iv.ranks["adamw"]["tied_with"]  # near-identical: tied
    assert iv.ranks["signsgd"]["rank"] == 3 and not iv.ranks["signsgd"]["tie"]
    folder = tmp_path / "bench"
    names = [p.name for p in write_report(res, folder)]
    assert names[:4] == ["leaderboard.md", "leaderboard.json", "profiles.png", "times.png"]
    md = (folder / "leaderboard.md").read_text(encoding="utf-8")
    assert "| =1 | adamw |" in md and "| =1 | sgd_nesterov |" in md and "| 3 | signsgd |" in md
    page = write_page(tmp_path / "out", bench=folder).read_text(encoding="utf-8")
    body = page.split('id="bench"', 1)[1]
    # profiles first, then the time-to-target plot, then the curves; each with its caption
    caps = [body.index(f"<figcaption>{c}") for c in ("Performance profiles:", "Time to target per workload", "curves_tiny")]
    assert caps == sorted(caps)
    assert '<td style="text-align:right">=1</td>\n<td>adamw</td>' in body and "90 % interval" in body


def test_scores_json_with_intervals(tmp_path: Path) -> None:
    data = leaderboard_json(_fake_result())
    md = rh.bench_json_markdown(json.loads(json.dumps(data)))
    rows = [line for line in md.splitlines() if line.startswith("| =") or line.startswith("| 3")]
    assert rows[0].startswith("| =1 | adamw | 1 | [") and rows[-1].startswith("| 3 | signsgd |")
    assert "90 % interval" in md and "bootstrap over studies and trials within studies" in md
