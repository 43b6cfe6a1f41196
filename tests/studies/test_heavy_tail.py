"""heavy-tail: the quick variant's claims hold; the sparse-features problem is what it says."""

from __future__ import annotations

import json

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.heavy_tail import sparse_features_task


def test_quick_claims_hold(tmp_path):
    studies.run("heavy-tail", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 3
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "heavy_tail.png").exists()


def test_sparse_features_follow_zipf_and_the_linear_model():
    task = sparse_features_task(n=20000, d=20, p_max=0.5, noise=0.0, seed=1)
    freq = torch.tensor(task.config["frequency"])
    expected = 0.5 / torch.arange(1, 21)
    assert torch.allclose(freq, expected, atol=0.015)
    x, y = task.train_data
    assert torch.allclose(x @ torch.tensor(task.config["w_star"]), y, atol=1e-5)
    model = task.make_model(0)
    assert float(model.weight.abs().sum()) == 0.0  # started at zero


def test_sparse_features_bad_input():
    with pytest.raises(ValueError, match="p_max"):
        sparse_features_task(p_max=0.0)
