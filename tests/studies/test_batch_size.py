"""The `batch-size` study: its statistics and decisions on hand-made numbers, the sampler identity, and one small
end-to-end run that writes well-formed output (whatever the verdicts)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import descentlab.studies as studies
from descentlab import tasks
from descentlab.studies.batch_size import (
    PREDICTIONS,
    FirstHit,
    batch_gradient_variance,
    first_hit,
    loglog_slope,
    noise_scales,
    regime_slopes,
)
from descentlab.studies.claims import judge
from descentlab.train import StepContext

P = {p.name: p for p in PREDICTIONS}


def test_batch_gradient_variance_matches_finite_population_formula():
    """E||g_B - g||^2 = sigma^2 / B * (m - B) / (m - 1) for sampling without replacement (closed form)."""
    task = tasks.get("logreg", m=40, n=3)
    model = task.make_model(0)
    m = 40
    sigma2 = batch_gradient_variance(task, model, 1, m, seed=0)  # one epoch of B=1: the population variance
    x = model.weight.detach().reshape(-1)
    assert sigma2 == pytest.approx(task.gradient_variance(x), rel=1e-5)
    for b in (4, 10):
        got = batch_gradient_variance(task, model, b, 3000, seed=1)
        assert got == pytest.approx(sigma2 / b * (m - b) / (m - 1), rel=0.1)
    assert batch_gradient_variance(task, model, m, 3, seed=0) == pytest.approx(0.0, abs=1e-10)


def test_regime_slopes_on_the_mccandlish_curve():
    """S(B) = S_min (1 + B*/B): slope ~ -1 well below B*, ~ 0 well above; a seed that never reached is nan."""
    sizes = [1, 2, 4, 16, 64, 256, 1024]
    s = {b: 10 * (1 + 20 / b) for b in sizes}
    small, large = regime_slopes(sizes, s, [1, 2, 4], [256, 1024])
    assert -1 < small < -0.8 and -0.1 < large < 0
    s[2] = math.inf
    assert math.isnan(regime_slopes(sizes, s, [1, 2, 4], [256, 1024])[0])
    with pytest.raises(ValueError, match="not in race_batch_sizes"):
        regime_slopes(sizes, s, [3], [256])
    assert loglog_slope([1, 10], [100, 10]) == pytest.approx(-1.0)


def test_first_hit_records_the_first_step_at_the_target():
    task = tasks.get("logreg", m=20, n=2)
    model = task.make_model(0)
    with torch.no_grad():
        loss = float(task.loss(model, task.train_data))
    hit = FirstHit(loss + 1.0)
    assert hit(StepContext(7, model, None, task)) == {FirstHit.METRIC: pytest.approx(loss)}  # type: ignore[arg-type]
    assert hit(StepContext(9, model, None, task)) is None  # type: ignore[arg-type]  # after the hit: nothing logged
    assert hit.step == 7
    miss = FirstHit(loss - 1.0)
    miss(StepContext(3, model, None, task))  # type: ignore[arg-type]
    assert miss.step is None


def test_first_hit_reads_the_logged_loss_back():
    from descentlab.store import Run

    run = Run("r", {}, history={FirstHit.METRIC: [(1, 0.9), (2, 0.6), (3, 0.4), (4, 0.45)]})
    assert first_hit(run, 0.5) == 3 and first_hit(run, 0.6) == 2 and first_hit(run, 0.1) is None
    assert first_hit(Run("empty", {}), 0.5) is None


def test_noise_scales_simple_is_variance_over_gradient_norm():
    from descentlab.tasks.logreg import gradient64

    task = tasks.get("logreg", m=30, n=3)
    model = task.make_model(1)
    x = model.weight.detach().double().reshape(-1)
    g = gradient64(x, task.train_data[0].double(), task.train_data[1].double(), task.mu)
    got = noise_scales(task, model)
    assert got["B_simple"] == pytest.approx(task.gradient_variance(x) / float(g.dot(g)), rel=1e-6)
    assert got["B_noise"] > 0


@pytest.mark.parametrize(
    "name, holds, fails, inconclusive",
    [
        ("steps_fall_as_1_over_B", [0.05, 0.1, 0.08], [0.8, 0.9, 0.85], [0.1, 0.5, 0.3]),
        ("steps_flatten_beyond_critical_batch", [-0.05, -0.1, 0.0], [-0.9, -1.0, -0.95], [-0.2, -0.8, -0.5]),
    ],
)
def test_each_prediction_can_hold_fail_and_be_inconclusive(name, holds, fails, inconclusive):
    assert judge(P[name], holds)["verdict"] == "holds"
    assert judge(P[name], fails)["verdict"] == "fails"
    assert judge(P[name], inconclusive)["verdict"] == "inconclusive"


def test_a_later_block_reuses_the_race_tuning(tmp_path):
    """Under a seed plan the study runs again per block; the race's lr tuning (runs whose callback only logs the full
    training loss) is reused from the store, not trained again, and the hits read back from it are the same."""
    small = dict(steps=20, batch_sizes=[1, 8, 200], draws=5, race_batch_sizes=[1, 2, 16], small_regime=[1, 2],
                 large_regime=[16], target_loss=2.0, max_steps=40, tuning_seeds=1)  # fmt: skip
    studies.run("batch-size", quick=True, out=tmp_path / "a", store=tmp_path / "s.db", progress=False,
                seed_blocks=[1, 2], **small)  # fmt: skip
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    tuned = summary["numbers"]["race"]["tuned"]
    grid_runs = sum(len(t["grid"]) for t in tuned.values())  # one tuning seed: one run per grid point and B
    assert len(summary["numbers"]["sequential_blocks"]) == 2  # the second block ran
    assert len(summary["reused_runs"]) >= grid_runs, (len(summary["reused_runs"]), grid_runs)


def test_end_to_end_small(tmp_path):
    studies.run(
        "batch-size",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=2,
        steps=20,
        batch_sizes=[1, 8, 200],
        draws=5,
        race_batch_sizes=[1, 2, 16, 64],
        small_regime=[1, 2],
        large_regime=[16, 64],
        target_loss=2.0,
        max_steps=40,
        tuning_seeds=1,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2 and c["n"] <= 2
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert {c["name"] for c in summary["checks"]} >= {"variance_1_over_B", "critical_batch_between_regimes"}
    race = summary["numbers"]["race"]
    assert set(race["tuned"]) == {"1", "2", "16", "64"} and all(
        len(v) == 2 for v in race["steps_to_target"].values()
    )
    assert (tmp_path / "batch_size.png").exists() and (tmp_path / "batch_size.svg").exists()
