"""The `batch-size` study: quick variant runs, writes its figures and summary.json, and every claim holds."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab import optim

NEEDED = {
    "sgd",
}
pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()), reason=f"optimizers {sorted(NEEDED)} not registered yet"
)


def test_batch_size_quick(tmp_path):
    res = studies.run("batch-size", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "batch-size"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    for stem in ["batch_size"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    assert summary["claims"], "the study checks at least one claim"
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed


def test_batch_gradient_variance_matches_finite_population_formula():
    """E||g_B - g||^2 = sigma^2 / B * (m - B) / (m - 1) for sampling without replacement (closed form)."""
    from descentlab import tasks
    from descentlab.studies.batch_size import batch_gradient_variance

    task = tasks.get("logreg", m=40, n=3)
    model = task.make_model(0)
    m = 40
    sigma2 = batch_gradient_variance(task, model, 1, m, seed=0)  # one epoch of B=1: the population variance
    # the population variance from the closed-form per-sample gradients of the task
    x = model.weight.detach().reshape(-1)
    assert sigma2 == pytest.approx(task.gradient_variance(x), rel=1e-5)
    for b in (4, 10):
        got = batch_gradient_variance(task, model, b, 3000, seed=1)
        assert got == pytest.approx(sigma2 / b * (m - b) / (m - 1), rel=0.1)
    assert batch_gradient_variance(task, model, m, 3, seed=0) == pytest.approx(0.0, abs=1e-10)
