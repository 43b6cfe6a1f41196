"""heavy-tail: the quick variant's claims hold; the sparse-features problem is what it says."""

from __future__ import annotations

import json

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.heavy_tail import char_groups_task, sparse_features_task


def test_small_setting_runs_end_to_end(tmp_path):
    """The whole study on a few steps (figure, summary, four claims evaluated); the claims themselves need the quick
    variant below (a slow test; `make demo` checks them too)."""
    res = studies.run("heavy-tail", quick=True, out=tmp_path, store=False, progress=False, steps=30,
                      sparse_steps=40, charlm_steps=20, classes=64, samples=2048, eval_every=10,
                      sgd_lrs=[1.0, 3.0], adam_lrs=[1e-2, 3e-2], sparse_n=500, sparse_d=50,
                      sparse_sgd_lrs=[1.0], sparse_adagrad_lrs=[1.0], charlm_width=16)  # fmt: skip
    assert len(res.claims) == 4 and all(c["evidence"] for c in res.claims)
    assert (tmp_path / "heavy_tail.png").exists() and (tmp_path / "summary.json").exists()


@pytest.mark.slow  # ~80 s on 2 cores
def test_quick_claims_hold(tmp_path):
    studies.run("heavy-tail", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 4
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "heavy_tail.png").exists()
    assert summary["numbers"]["charlm_rarest_drop_ratio_adam_over_sgd"] > 1.0


def test_char_groups_split_the_text_and_the_loss():
    task = char_groups_task(depth=1, width=16, heads=2, context=8, group_windows=64)
    tokens = task.train_data[0]
    share = torch.bincount(task.char_group[tokens], minlength=10).double() / len(tokens)
    # frequency_groups: each group ~10 % of the text, unless one character alone is bigger than that (the space)
    assert float(share.sum()) == pytest.approx(1.0)
    assert float(share[1:].max()) < 0.2
    model = task.make_model(0)
    groups = task.loss_by_group(model)
    # the count-weighted mean of the per-group losses is the plain cross-entropy on the same windows
    starts = torch.linspace(0, len(tokens) - 9, 64).long()
    idx = starts[:, None] + torch.arange(9)
    x, y = tokens[idx][:, :-1], tokens[idx][:, 1:]
    with torch.no_grad():
        per = torch.nn.functional.cross_entropy(model(x).reshape(-1, 96), y.reshape(-1), reduction="none")
    g = task.char_group[y.reshape(-1)]
    weighted = sum(groups[j] * int((g == j).sum()) for j in groups) / g.numel()
    assert weighted == pytest.approx(float(per.mean()), rel=1e-5)
    metrics = task.evaluate(model)
    assert {f"train_loss_g{j}" for j in groups} <= set(metrics)


def test_sparse_features_follow_zipf_and_the_linear_model():
    task = sparse_features_task(n=20000, d=20, p_max=0.5, noise=0.0, seed=1)
    freq = torch.tensor(task.config["frequency"])
    expected = 0.5 / torch.arange(1, 21)
    assert torch.allclose(freq, expected, atol=0.015)
    x, y = task.train_data
    assert torch.allclose(x @ torch.tensor(task.config["w_star"]), y, atol=1e-5)
    model = task.make_model(0)
    assert float(model.weight.detach().abs().sum()) == 0.0  # started at zero


def test_sparse_features_bad_input():
    with pytest.raises(ValueError, match="p_max"):
        sparse_features_task(p_max=0.0)
