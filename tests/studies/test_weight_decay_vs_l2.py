"""The `weight-decay-vs-l2` study: quick variant runs, writes its figures and summary.json, and every claim holds."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab import optim

NEEDED = {
    "sgd",
    "adam",
    "adamw",
}
pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()), reason=f"optimizers {sorted(NEEDED)} not registered yet"
)


def test_weight_decay_vs_l2_quick(tmp_path):
    res = studies.run("weight-decay-vs-l2", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "weight-decay-vs-l2"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    for stem in ["weight_decay_vs_l2"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    assert summary["claims"], "the study checks at least one claim"
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed


def test_decoupled_decay_is_shrink_then_step():
    """DecoupledDecay(SGD) follows x <- (1 - lr wd) x - lr grad f(x), written plainly (seed 003, eq. 11)."""
    import torch

    from descentlab.studies.weight_decay_vs_l2 import DecoupledDecay

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    target = torch.randn(5)
    opt = DecoupledDecay(torch.optim.SGD([w], lr=0.1), weight_decay=0.5)
    x = w.detach().clone()
    for _ in range(3):

        def closure():
            opt.zero_grad()
            loss = ((w - target) ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        x = (1 - 0.1 * 0.5) * x - 0.1 * 2 * (x - target)
        assert torch.allclose(w.detach(), x, atol=1e-6)
    with pytest.raises(ValueError, match="weight_decay"):
        DecoupledDecay(torch.optim.SGD([w], lr=0.1), weight_decay=-1.0)
    with pytest.raises(TypeError):
        DecoupledDecay("sgd", weight_decay=0.1)
