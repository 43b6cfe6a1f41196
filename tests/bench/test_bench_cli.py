"""`bench run / score / report` on the tiny workload through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from descentlab.bench.cli import bench_app


def test_run_score_report(tmp_path):
    runner = CliRunner()
    common = ["--algorithms", "sgd_nesterov,adamw", "--workloads", "tiny", "--trials", "2", "--studies", "1",
              "--store", str(tmp_path / "s.db"), "--scale", "1"]  # fmt: skip
    res = runner.invoke(bench_app, ["run", *common, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "4 trials run, 0 cached" in res.output
    again = runner.invoke(bench_app, ["run", *common, "--no-progress"])
    assert "0 trials run, 4 cached" in again.output
    scored = runner.invoke(bench_app, ["score", *common, "--json"])
    assert scored.exit_code == 0, scored.output
    data = json.loads(scored.output)
    assert set(data["scores"]) == {"sgd_nesterov", "adamw"} and data["missing"] == 0
    assert max(data["scores"].values()) == 1.0
    assert data["board"]["studies"] == 1 and data["board"]["speedup_interval"] is None  # 1 study: no interval
    out = tmp_path / "report"
    rep = runner.invoke(bench_app, ["report", *common, "--out", str(out)])
    assert rep.exit_code == 0, rep.output
    md = (out / "leaderboard.md").read_text()
    assert "| 1-2 |" in md and "tiny" in md and "Too few studies" in md and "=1" not in md  # 1 study: no rank
    assert (out / "profiles.png").stat().st_size > 0 and (out / "curves_tiny.png").stat().st_size > 0


def test_bad_names_raise_valueerror(tmp_path):
    res = CliRunner().invoke(
        bench_app, ["run", "--algorithms", "adamww", "--workloads", "tiny", "--store", str(tmp_path / "s.db")]
    )
    assert res.exit_code != 0
    assert isinstance(res.exception, ValueError) and "did you mean 'adamw'" in str(res.exception)
