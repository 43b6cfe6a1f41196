"""muon-vs-adamw: the speed-up statistic and its verdicts, the update-spectrum callback, one small end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import descentlab.studies as studies
from descentlab.studies.claims import judge
from descentlab.studies.muon_vs_adamw import (
    PREDICTIONS,
    UpdateSpectrum,
    bulk_ratio,
    first_step_below,
    speedup,
    tracked_matrix,
)
from descentlab.train import StepContext


def test_end_to_end_small(tmp_path):
    studies.run(
        "muon-vs-adamw",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=2,
        tasks=["softmax_digits"],
        steps={"softmax_digits": 20},
        muon_lrs=[0.03, 0.1],
        adamw_lrs=[0.01, 0.03],
        tuning_seeds=1,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2 and c["n"] <= 2
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert {c["name"] for c in summary["checks"]} == {"muon_update_isotropic", "adamw_update_spread"}
    assert set(summary["numbers"]["tuned"]) == {"softmax_digits/muon", "softmax_digits/adamw"}
    assert (tmp_path / "muon_vs_adamw.png").exists()


def test_speedup():
    curve = [(0, 2.0), (10, 1.0), (20, 0.5), (30, 0.4)]
    assert speedup(curve, 0.5, 40) == pytest.approx(math.log10(2))  # AdamW's final reached at step 20 of 40
    assert speedup(curve, 0.1, 30) == pytest.approx(math.log10(30 / 31))  # never: counted as T + 1
    assert speedup(curve, math.inf, 30) < 0  # AdamW diverged: no target, no speed-up claimed


@pytest.mark.parametrize(
    "values, verdict",
    [([0.3, 0.5, 0.4], "holds"), ([-0.1, -0.2, -0.15], "fails"), ([0.3, -0.2, 0.05], "inconclusive")],
)
def test_prediction_verdicts(values, verdict):
    assert judge(PREDICTIONS[0], values)["verdict"] == verdict


def test_update_spectrum_is_the_svd_of_the_weight_difference():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    w = tracked_matrix(model)
    assert w is model[2].weight
    spec = UpdateSpectrum([2])
    spec(StepContext(1, model, None, None))  # type: ignore[arg-type]
    before = w.detach().clone()
    delta = torch.randn_like(w)
    with torch.no_grad():
        w.add_(delta)
    spec(StepContext(2, model, None, None))  # type: ignore[arg-type]
    expected = np.linalg.svd((w.detach() - before).double().numpy(), compute_uv=False)
    assert np.allclose(spec.spectra[2], expected, rtol=1e-6)


def test_bulk_ratio():
    assert bulk_ratio(np.ones(10)) == 1.0
    assert bulk_ratio(np.linspace(1, 10, 1001)) == np.percentile(
        np.linspace(1, 10, 1001), 90
    ) / np.percentile(np.linspace(1, 10, 1001), 10)


def test_first_step_below():
    series = [(0, 2.0), (10, 1.0), (20, 0.5), (30, 0.7)]
    assert first_step_below(series, 0.6) == 20
    assert first_step_below(series, 1.0) == 10
    assert first_step_below(series, 0.1) == float("inf")


def test_reach_counts_directions_of_the_muon_input_above_the_ns_reach():
    """The reach is the number of singular values of Muon's Newton-Schulz input >= NS_REACH of its norm."""
    from descentlab.optim import Muon
    from descentlab.studies.muon_vs_adamw import NS_REACH, optimizer_direction

    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    w = tracked_matrix(model)
    opt = Muon([w], lr=0.01, momentum=0.9, nesterov=True)
    spec = UpdateSpectrum([2])
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(4, 1, generator=g), torch.randn(1, 5, generator=g)
    tiny = 1e-5 * torch.randn(4, 5, generator=g)  # a rank-1 gradient plus noise far below the reach
    for step in (1, 2):
        w.grad = u @ v + tiny
        opt.step()
        spec(StepContext(step, model, opt, None))  # type: ignore[arg-type]
    d = optimizer_direction(opt, w)
    buf = opt.state[w]["momentum_buffer"]
    torch.testing.assert_close(d, w.grad + 0.9 * (buf - w.grad))
    sv = torch.linalg.svdvals(d.double())
    assert spec.reach[2] == int((sv >= NS_REACH * sv.norm()).sum()) == 1
    assert len(spec.spectra[2]) == 4
